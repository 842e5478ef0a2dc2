#include "learner/learner_role.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <sstream>
#include <variant>

#include "core/error.h"
#include "core/log.h"
#include "learner/step_collector.h"

namespace rlkv {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Which actors claimed and delivered what (HelloMsg claims, scored groups). An actor silent for
// longer than the timeout is presumed dead; its claims not delivered are lost groups.
class ActorBook {
 public:
  explicit ActorBook(double timeout_s) : timeout_(timeout_s) {}
  void claim(const std::string& id, int64_t n) {
    auto& a = book_[id];
    a.claimed += n;
    a.seen = Clock::now();
  }
  void delivered(const std::string& id) {
    auto& a = book_[id];
    ++a.delivered;
    a.seen = Clock::now();
  }
  int64_t lost() const {
    int64_t n = 0;
    for (const auto& [id, a] : book_)
      if (silent(a)) n += std::max<int64_t>(0, a.claimed - a.delivered);
    return n;
  }
  int64_t live() const {
    int64_t n = 0;
    for (const auto& [id, a] : book_) n += silent(a) ? 0 : 1;
    return n;
  }
  std::map<std::string, int64_t> delivered_counts() const {
    std::map<std::string, int64_t> out;
    for (const auto& [id, a] : book_) out[id] = a.delivered;
    return out;
  }

 private:
  struct Entry {
    int64_t claimed = 0, delivered = 0;
    Clock::time_point seen;
  };
  bool silent(const Entry& a) const { return std::chrono::duration<double>(Clock::now() - a.seen).count() > timeout_; }
  double timeout_;
  std::map<std::string, Entry> book_;
};

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

PolicyMsg policy_message(const HeadPolicy& pol, const RunIdentity& id, int64_t step, bool stop,
                         const std::string& rollouts_endpoint) {
  PolicyMsg m;
  m.rollouts_endpoint = rollouts_endpoint;
  m.run_id = id.run_id;
  m.policy_version = step;
  m.step = step;
  m.num_layers = id.num_layers;
  m.num_kv_heads = id.num_kv_heads;
  m.theta = pol.theta();
  m.stop = stop;
  return m;
}

PolicyGroup policy_group(const ScoredGroupMsg& g) {
  PolicyGroup pg;
  pg.behaviour_p = g.behaviour_keep_prob;
  for (const auto& r : g.rollouts) {
    PolicyRollout pr;
    pr.keep = r.mask;
    pr.reward = r.score ? r.score->reward : 0.0;
    pr.correct = r.score ? r.score->correct : 0.0;
    pg.rollouts.push_back(std::move(pr));
  }
  return pg;
}

// Frames of the step's groups, length-prefixed, for the broadcast to the other learner ranks.
std::string pack(const std::vector<ScoredGroupMsg>& groups) {
  std::string out;
  for (const auto& g : groups) {
    const std::string f = encode(g);
    const uint64_t n = f.size();
    out.append(reinterpret_cast<const char*>(&n), 8);
    out += f;
  }
  return out;
}

std::vector<ScoredGroupMsg> unpack(const std::string& bytes) {
  std::vector<ScoredGroupMsg> out;
  size_t off = 0;
  while (off + 8 <= bytes.size()) {
    uint64_t n = 0;
    std::memcpy(&n, bytes.data() + off, 8);
    off += 8;
    RLKV_ASSERT(off + n <= bytes.size(), "learner broadcast truncated");
    out.push_back(decode_scored_group(bytes.data() + off, size_t(n)));
    off += n;
  }
  return out;
}

// Keeps metrics.jsonl consistent with a resumed run: lines of steps after the checkpoint go.
void truncate_metrics(const std::string& path, int64_t keep_through_step) {
  std::ifstream in(path);
  if (!in.good()) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t(0)) <= keep_through_step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      // a torn last line of a killed run: dropped
    }
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  out << kept;
}

std::string eta_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  const int s = int(seconds);
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", s / 60, s % 60);
  return buf;
}

}  // namespace

LearnerRoleResult run_learner_role(Publisher* pub, Puller* pull, Collectives& learners, const LearnerRoleOptions& o) {
  const bool root = learners.rank() == 0;
  RLKV_ASSERT(!root || (pub && pull), "learner rank 0 needs its sockets");
  const RunIdentity& id = o.id;
  HeadPolicy policy(id.num_layers, id.num_kv_heads, o.policy);
  LearnerRoleResult res;
  int64_t start = 0;
  std::string resume_path = o.resume;
  if (resume_path == "auto") {
    std::vector<std::string> skipped;
    auto latest = latest_checkpoint(o.output_dir, &skipped);
    for (const auto& s : skipped) log_warn("resume: skipping damaged checkpoint " + s);
    resume_path = latest ? *latest : "";
    if (!latest && root) log_info("resume auto: no checkpoint in " + o.output_dir + ", starting from scratch");
  }
  if (!resume_path.empty()) {
    CheckpointState s = read_checkpoint(resume_path);
    RLKV_CHECK(s.num_layers == id.num_layers && s.num_kv_heads == id.num_kv_heads, resume_path, ": checkpoint is for ",
               s.num_layers, " x ", s.num_kv_heads, " heads, the model has ", id.num_layers, " x ", id.num_kv_heads);
    policy.mutable_theta() = s.logits;
    policy.adam_m() = s.adam_m;
    policy.adam_v() = s.adam_v;
    policy.set_adam_step(s.adam_step);
    policy.set_penalty_beta(s.penalty_beta);
    res.history = s.history;
    start = s.step;
    if (root) log_info("resumed from " + resume_path + " at step " + std::to_string(start));
  }
  res.first_step = start;
  const std::string metrics_path = o.output_dir + "/metrics.jsonl";
  std::ofstream metrics;
  if (root) {
    std::filesystem::create_directories(o.output_dir);
    truncate_metrics(metrics_path, start);
    if (start == 0) std::ofstream(metrics_path, std::ios::trunc);
    metrics.open(metrics_path, std::ios::app);
    RLKV_CHECK(metrics.good(), metrics_path, ": cannot open for writing");
  }

  StepCollector collector(o.sync, o.prompts_per_step, o.max_staleness);
  ActorBook actors(o.actor_timeout);
  int64_t wrong_type = 0;
  DropCounter drops("learner scored groups");
  const ReceiveExpect expect{id.run_id, id.num_layers, id.num_kv_heads};
  const auto t_run = Clock::now();
  int64_t last_ckpt_step = -1;

  auto checkpoint = [&](int64_t step) {
    CheckpointState s;
    s.run_id = id.run_id;
    s.model = o.model;
    s.num_layers = id.num_layers;
    s.num_kv_heads = id.num_kv_heads;
    s.sink = o.sink;
    s.window = o.window;
    s.step = step;
    s.policy_version = step;
    s.config = o.config_text;
    s.logits = policy.theta();
    s.adam_m = policy.adam_m();
    s.adam_v = policy.adam_v();
    s.adam_step = policy.adam_step();
    s.lr = o.policy.lr;
    s.beta1 = o.policy.beta1;
    s.beta2 = o.policy.beta2;
    s.eps = o.policy.adam_eps;
    s.weight_decay = o.policy.weight_decay;
    s.penalty_beta = policy.penalty_beta();
    s.history = res.history;
    // Masks and sampling streams are functions of (train.seed, position); positions of step s
    // follow from s, so the seed and the position are the whole random state of a sync run.
    s.rng_states["data"] = "seed=" + std::to_string(o.data_seed);
    s.data_position = step * o.prompts_per_step;
    s.data_epoch = 0;
    res.last_checkpoint = write_checkpoint(o.output_dir, s, int(o.keep_checkpoints));
    last_ckpt_step = step;
  };

  for (int64_t step = start; step < o.steps; ++step) {
    const auto t_step = Clock::now();
    std::vector<ScoredGroupMsg> groups;
    if (root) {
      collector.begin_step(step);
      const std::string frame = encode(policy_message(policy, id, step, false, o.rollouts_endpoint));
      pub->send(frame, milliseconds(0));
      auto last_pub = Clock::now();
      while (!collector.complete() && !run_stop_flag().load()) {
        RLKV_CHECK(secs_since(t_step) < o.step_timeout, "step ", step, ": only ", collector.counts().used,
                   " groups used so far and the step is still incomplete after ", o.step_timeout,
                   " s (train.step_timeout); are the actors and reward workers running?");
        // Republish for subscribers that joined late (PUB/SUB drops what was sent before them).
        if (secs_since(last_pub) > 0.5) {
          pub->send(frame, milliseconds(0));
          last_pub = Clock::now();
        }
        auto msg = receive_message(*pull, milliseconds(100), expect, drops);
        if (!msg) continue;
        if (auto* hello = std::get_if<HelloMsg>(&*msg)) {
          actors.claim(hello->actor_id, hello->in_flight);
        } else if (auto* g = std::get_if<ScoredGroupMsg>(&*msg)) {
          actors.delivered(g->actor_id);
          const int64_t pos = g->position;
          collector.offer(std::move(*g), pos);
        } else {
          ++wrong_type;
        }
      }
      if (!collector.complete()) {  // interrupted (SIGINT / SIGTERM): keep what is done
        res.interrupted = true;
      } else {
        groups = collector.take();
      }
    }
    // Every learner rank learns whether rank 0 stopped.
    if (learners.size() > 1) {
      std::vector<double> flag{res.interrupted ? 1.0 : 0.0};
      learners.allreduce_sum(flag);
      res.interrupted = flag[0] > 0;
    }
    if (res.interrupted) {
      if (root) log_warn("interrupted during step " + std::to_string(step + 1) + "; stopping after step " +
                         std::to_string(step));
      break;
    }
    const auto t_learn = Clock::now();
    // Each learner rank takes its share of the step's groups.
    if (learners.size() > 1) {
      std::string bytes = root ? pack(groups) : std::string();
      learners.broadcast(bytes, 0);
      if (!root) groups = unpack(bytes);
    }
    std::vector<PolicyGroup> mine;
    for (size_t i = 0; i < groups.size(); ++i)
      if (int(i % size_t(learners.size())) == learners.rank()) mine.push_back(policy_group(groups[i]));
    std::vector<double> moments = HeadPolicy::reward_moments(mine);
    learners.allreduce_sum(moments);
    HeadPolicy::Partial part = policy.partial_gradient(mine, &moments);
    std::vector<double> buf = part.grad_sum;
    for (double x : {part.rollouts, part.reward_sum, part.correct_sum, part.clipped, part.terms}) buf.push_back(x);
    learners.allreduce_sum(buf);
    HeadPolicy::Partial total;
    const size_t n = part.grad_sum.size();
    total.grad_sum.assign(buf.begin(), buf.begin() + int64_t(n));
    total.rollouts = buf[n];
    total.reward_sum = buf[n + 1];
    total.correct_sum = buf[n + 2];
    total.clipped = buf[n + 3];
    total.terms = buf[n + 4];
    const StepStats st = policy.apply(total);
    res.learner_seconds += secs_since(t_learn);
    res.last_step = step + 1;
    if (!root) continue;

    // Metrics of the step (rank 0 sees every group).
    double len_ratio = 0, truncated = 0, tokens = 0, rollouts = 0, n_ratio = 0;
    for (const auto& g : groups)
      for (const auto& r : g.rollouts) {
        rollouts += 1;
        tokens += double(r.length);
        truncated += r.finish_reason == "length" ? 1 : 0;
        if (g.ref_len > 0) {
          len_ratio += double(r.length) / g.ref_len;
          n_ratio += 1;
        }
      }
    len_ratio = n_ratio > 0 ? len_ratio / n_ratio : 0;
    truncated = rollouts > 0 ? truncated / rollouts : 0;
    const double dt = secs_since(t_step);
    auto& h = res.history;
    h.step.push_back(step + 1);
    h.reward_mean.push_back(st.reward_mean);
    h.correct_mean.push_back(st.correct_mean);
    h.sparsity_expected.push_back(st.sparsity_expected);
    h.penalty_weight.push_back(st.penalty_weight);
    h.length_ratio.push_back(len_ratio);
    h.truncated_rate.push_back(truncated);
    h.logits.insert(h.logits.end(), policy.theta().begin(), policy.theta().end());
    nlohmann::json stale = nlohmann::json::object();
    for (const auto& [k, v] : collector.staleness()) stale[std::to_string(k)] = v;
    const auto& cc = collector.counts();
    nlohmann::json j = {{"step", step + 1},
                        {"policy_version", step + 1},
                        {"reward_mean", st.reward_mean},
                        {"correct_mean", st.correct_mean},
                        {"length_ratio", len_ratio},
                        {"truncated_rate", truncated},
                        {"sparsity_expected", st.sparsity_expected},
                        {"penalty_weight", st.penalty_weight},
                        {"grad_norm", st.grad_norm},
                        {"clipped_fraction", st.clipped_fraction},
                        {"staleness", stale},
                        {"groups_dropped", {{"stale", cc.stale}, {"duplicate", cc.duplicate}, {"foreign", cc.foreign}}},
                        {"messages_dropped", drops.total() + wrong_type},
                        {"groups_lost", actors.lost()},
                        {"actors_live", actors.live()},
                        {"rollouts", int64_t(rollouts)},
                        {"rollouts_per_s", rollouts / dt},
                        {"tokens_per_s", tokens / dt},
                        {"step_seconds", dt},
                        {"elapsed_seconds", secs_since(t_run)}};
    metrics << j.dump() << "\n";
    metrics.flush();
    if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) checkpoint(step + 1);
    const double per_step = secs_since(t_run) / double(step + 1 - start);
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld  reward %.3f  correct %.3f  sparsity %.3f  %.1f rollouts/s  %.0f tok/s  ETA %s",
                  (long long)(step + 1), (long long)o.steps, st.reward_mean, st.correct_mean, st.sparsity_expected,
                  rollouts / dt, tokens / dt, eta_text(per_step * double(o.steps - step - 1)).c_str());
    if (o.progress) {
      std::fprintf(stderr, "\r%s\x1b[K", line);
      std::fflush(stderr);
    } else if ((step + 1) % 10 == 0 || step + 1 == o.steps || step == start) {
      log_info(line);
    }
  }
  if (root) {
    if (o.progress) std::fprintf(stderr, "\n");
    if (last_ckpt_step != res.last_step && res.last_step > start) checkpoint(res.last_step);
    // The stop policy (with the final theta): actors and reward workers finish and exit.
    const std::string frame = encode(policy_message(policy, id, res.last_step > 0 ? res.last_step : start, true, o.rollouts_endpoint));
    for (int i = 0; i < 5; ++i) {
      pub->send(frame, milliseconds(0));
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  res.theta = policy.theta();
  res.seconds = secs_since(t_run);
  res.dropped_messages = drops.total() + wrong_type;
  res.groups_lost = actors.lost();
  res.actor_groups = actors.delivered_counts();
  res.groups = collector.counts();
  return res;
}

}  // namespace rlkv
