#include "actors/actor_role.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "comm/collectives.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"
#include "problems/prompt_stream.h"
#include "runtime/model_thread.h"

namespace rlkv {

using std::chrono::milliseconds;

RolloutGroupMsg to_message(const ActorGroup& g, const Problem& p, const RunIdentity& id, const std::string& actor_id) {
  RolloutGroupMsg m;
  m.run_id = id.run_id;
  m.actor_id = actor_id;
  m.prompt_id = p.id;
  m.prompt_index = g.problem;
  m.position = g.position;
  m.policy_version = g.policy_version;
  m.answer = p.answer;
  m.ref_len = p.ref_len;
  m.num_layers = id.num_layers;
  m.num_kv_heads = id.num_kv_heads;
  m.behaviour_keep_prob = g.behaviour_p;
  for (const auto& r : g.rollouts) {
    Rollout w;
    w.mask = r.keep;
    w.tokens = r.tokens;
    w.text = r.text;
    w.length = int64_t(r.tokens.size());
    w.finish_reason = finish_reason_name(r.finish);
    w.prompt_tokens = r.prompt_tokens;
    m.rollouts.push_back(std::move(w));
  }
  return m;
}

namespace {

// A batch for the followers of a tensor-parallel group: the policy version, theta and the
// (position, problem) pairs, or stop.
struct GroupJob {
  bool stop = true;
  int64_t version = 0;
  std::vector<float> theta;
  std::vector<std::pair<int64_t, int64_t>> positions;
};
static_assert(sizeof(std::pair<int64_t, int64_t>) == 2 * sizeof(int64_t), "positions travel as raw int64 pairs");

// The group's rank 0 passes its job; every other rank receives it into `j`.
void share_job(Collectives& group, GroupJob& j) {
  int64_t head[4] = {j.stop ? 0 : 1, j.version, int64_t(j.theta.size()), int64_t(j.positions.size())};
  group.broadcast(head, sizeof head, 0);
  j.stop = head[0] == 0;
  j.version = head[1];
  j.theta.resize(size_t(head[2]));
  j.positions.resize(size_t(head[3]));
  group.broadcast(j.theta.data(), j.theta.size() * sizeof(float), 0);
  group.broadcast(j.positions.data(), j.positions.size() * sizeof(j.positions[0]), 0);
}

// Tells the followers to stop when the leader leaves its loop, however it leaves it.
struct StopFollowers {
  Collectives* group;
  ~StopFollowers() {
    if (!group) return;
    try {
      GroupJob stop;
      share_job(*group, stop);
    } catch (const std::exception& e) {
      log_warn(std::string("actor group: could not stop the followers: ") + e.what());
    }
  }
};

// The fault-injection halt: the batch just claimed is never delivered.
void halt_until_stopped(const ActorRoleOptions& o) {
  log_warn(str_cat("actor ", o.actor_id, ": halted after ", o.halt_after_groups, " groups (fault injection)"));
  if (!o.halt_marker.empty()) write_file_atomic(o.halt_marker, "halted\n");
  while (!run_stop_flag().load()) std::this_thread::sleep_for(milliseconds(20));
}

}  // namespace

int64_t run_actor_follower(Collectives& group, const Model& model, const Tokenizer& tok,
                           const std::vector<Problem>& problems, const ActorOptions& opts) {
  const ModelThread model_thread(model, opts.generation.num_threads);  // its share of the cores; its own GPU stream
  Actor actor(model, tok, problems, opts);
  int64_t batches = 0;
  for (;;) {
    GroupJob job;
    share_job(group, job);
    if (job.stop) break;
    actor.generate(job.version, job.theta, job.positions);
    ++batches;
  }
  return batches;
}

ActorRoleStats run_actor_role(Context& ctx, const RunEndpoints& ep, const Model& model, const Tokenizer& tok,
                              const std::vector<Problem>& problems, const ActorRoleOptions& o) {
  ActorRoleStats st;
  Subscriber sub(ctx);
  sub.connect(ep.policy);
  Pusher push(ctx);
  sub.set_key(ep.key);
  push.set_key(ep.key);
  for (const auto& r : ep.rollouts) push.connect(r);
  bool connected = !ep.rollouts.empty();
  DropCounter drops("actor " + o.actor_id + " policy");
  RunIdentity id = o.id;
  const ModelThread model_thread(model, o.actor.generation.num_threads);  // its share of the cores; its own GPU stream
  Actor actor(model, tok, problems, o.actor);
  Collectives* group = o.group && o.group->size() > 1 ? o.group.get() : nullptr;
  RLKV_CHECK(!group || group->rank() == 0, "actor role: only the group's rank 0 talks to the learner");
  StopFollowers stop_followers{group};
  PromptStream stream(int64_t(problems.size()), uint64_t(o.data_seed));
  std::optional<PolicyMsg> current;
  int64_t done_version = -1;
  int64_t async_round = 0;
  // Elastic actors draw positions from their own space (one of 2^22 spaces of 2^40 positions, by a
  // hash of the actor id) so that their prompts do not repeat the job's order or, but for a chance of
  // about n^2 / 2^23 among n elastic actors, each other's (with 4,096 spaces, 50 actors shared one
  // in a quarter of runs, and two such actors generate the same groups).
  const int64_t elastic_base =
      o.elastic ? (int64_t(std::hash<std::string>{}(o.actor_id) % (uint64_t(1) << 22)) + 1) * kPositionSpace : 0;
  const int64_t per_round = std::max<int64_t>(1, (o.prompts_per_step + o.num_actors - 1) / o.num_actors);

  const auto started = std::chrono::steady_clock::now();
  auto heard = started;     // the last policy message received
  bool stop_seen = false;   // the learner's stop policy
  double next_note_s = 30;  // an elastic actor still waiting for its first policy says so every 30 s
  // Takes the latest policy message, if any arrives within `wait`: the run it names, where its reward
  // workers listen, a newer version, or the stop. A learner silent for policy_timeout_s is gone.
  auto take_policy = [&](milliseconds wait) {
    const ReceiveExpect expect{id.run_id, id.num_layers, id.num_kv_heads};
    auto pol = receive_policy(sub, wait, expect, drops);
    const auto now = std::chrono::steady_clock::now();
    if (pol) {
      heard = now;
      if (id.run_id.empty()) id.run_id = pol->run_id;  // an elastic actor joins whatever run it finds
      if (!connected && !pol->rollouts_endpoint.empty()) {
        push.connect(pol->rollouts_endpoint);  // where the run's reward workers listen
        connected = true;
      }
      if (pol->stop) stop_seen = true;
      if (!pol->stop && (!current || pol->policy_version > current->policy_version)) current = std::move(pol);
      return;
    }
    const double silent = std::chrono::duration<double>(now - heard).count();
    if (o.policy_timeout_s > 0 && silent > o.policy_timeout_s) {
      if (!current)
        throw UserError(str_cat("no policy received in ", o.policy_timeout_s,
                                " s: no learner publishes at the endpoint, or it is of another run or key (rlkv "
                                "train prints its policy endpoint and writes it to OUTPUT_DIR/endpoints.json)"));
      throw UserError(str_cat("no policy heard for ", o.policy_timeout_s, " s since version ", current->policy_version,
                              ": the learner stopped or can no longer be reached"));
    }
    if (!current && o.policy_timeout_s > 0 && silent > next_note_s) {
      log_info(str_cat("actor ", o.actor_id, ": no policy yet after ", int64_t(silent), " s (giving up after ",
                       o.policy_timeout_s, " s, train.step_timeout)"));
      next_note_s += 30;
    }
  };

  // Sends each group, retrying every second while no reward worker takes it and reading the policy
  // between tries; returns at the learner's stop policy or the run's stop flag (take_policy throws
  // once no policy has come for policy_timeout_s).
  auto send_all = [&](const std::vector<ActorGroup>& groups) {
    for (const auto& g : groups) {
      const std::string frame = encode(to_message(g, problems[size_t(g.problem)], id, o.actor_id));
      bool sent = false;
      while (!sent && !stop_seen && !run_stop_flag().load()) {
        sent = push.send(frame, milliseconds(1000));
        if (!sent) {
          ++st.push_failures;
          take_policy(milliseconds(0));
        }
      }
      if (!sent) return;
      ++st.groups;
      st.rollouts += int64_t(g.rollouts.size());
      for (const auto& r : g.rollouts) st.tokens += int64_t(r.tokens.size());
    }
  };

  while (!stop_seen && !run_stop_flag().load()) {
    // Sync actors wait for the next version; async actors only look for a newer one.
    const bool waiting = !current || (o.sync && current->policy_version <= done_version);
    take_policy(milliseconds(waiting ? 200 : 0));
    if (stop_seen) break;
    if (!current || !connected || (o.sync && current->policy_version <= done_version)) continue;

    std::vector<std::pair<int64_t, int64_t>> positions;
    if (o.sync) {
      const int64_t v = current->policy_version;
      for (int64_t j = 0; j < o.prompts_per_step; ++j)
        if (j % o.num_actors == o.index) {
          const int64_t pos = v * o.prompts_per_step + j;
          positions.emplace_back(pos, stream.problem_at(pos));
        }
    } else {
      for (int64_t k = 0; k < per_round; ++k) {
        // A resumed run's learner sends the base past the positions its checkpoint used.
        const int64_t pos =
            elastic_base + current->position_base + (async_round * per_round + k) * o.num_actors + o.index;
        positions.emplace_back(pos, stream.problem_at(pos));
      }
      ++async_round;
    }
    // Claim the batch first: if this actor dies now, the learner counts these groups as lost.
    HelloMsg hello;
    hello.run_id = id.run_id;
    hello.actor_id = o.actor_id;
    hello.pid = int64_t(getpid());
    hello.in_flight = int64_t(positions.size());
    push.send(encode(hello), milliseconds(1000));
    if (o.halt_after_groups >= 0 && st.groups >= o.halt_after_groups) {
      halt_until_stopped(o);
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (group) {
      GroupJob job;
      job.stop = false;
      job.version = current->policy_version;
      job.theta = current->theta;
      job.positions = positions;
      share_job(*group, job);
    }
    auto groups = actor.generate(current->policy_version, current->theta, positions);
    st.generate_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    send_all(groups);
    done_version = current->policy_version;
  }
  push.close();
  sub.close();
  if (drops.total() > 0) log_warn("actor " + o.actor_id + " dropped policy messages: " + drops.summary());
  log_refusals(sub, "actor " + o.actor_id + " policy");
  return st;
}

}  // namespace rlkv
