#include "learner/learner_role.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <variant>

#include "core/coding.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/finish_reason.h"
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
                         const std::string& rollouts_endpoint, int64_t position_base) {
  PolicyMsg m;
  m.position_base = position_base;
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
    put_fixed64(&out, f.size());
    out += f;
  }
  return out;
}

std::vector<ScoredGroupMsg> unpack(const std::string& bytes) {
  std::vector<ScoredGroupMsg> out;
  size_t off = 0;
  while (off + 8 <= bytes.size()) {
    const uint64_t n = decode_fixed64(bytes.data() + off);
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
  write_file_atomic(path, kept);  // the old file stays whole if this fails (a full disk)
}

std::string eta_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  const int s = int(seconds);
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", s / 60, s % 60);
  return buf;
}

// Rank 0's view of a step's rollouts, for the metrics line and the progress line.
struct RolloutTotals {
  double rollouts = 0, tokens = 0;
  double length_ratio = 0;    // mean of length / ref_len over the rollouts of groups with a ref_len
  double truncated_rate = 0;  // fraction of rollouts that hit the length cap
};

RolloutTotals rollout_totals(const std::vector<ScoredGroupMsg>& groups) {
  double len_ratio = 0, truncated = 0, tokens = 0, rollouts = 0, n_ratio = 0;
  for (const auto& g : groups)
    for (const auto& r : g.rollouts) {
      rollouts += 1;
      tokens += double(r.length);
      truncated += parse_finish_reason(r.finish_reason) == FinishReason::kLength ? 1 : 0;
      if (g.ref_len > 0) {
        len_ratio += double(r.length) / g.ref_len;
        n_ratio += 1;
      }
    }
  RolloutTotals t;
  t.rollouts = rollouts;
  t.tokens = tokens;
  t.length_ratio = n_ratio > 0 ? len_ratio / n_ratio : 0;
  t.truncated_rate = rollouts > 0 ? truncated / rollouts : 0;
  return t;
}

// This rank's share of the step's groups: group i goes to learner rank i % size.
std::vector<PolicyGroup> rank_share(const std::vector<ScoredGroupMsg>& groups, const Collectives& learners) {
  std::vector<PolicyGroup> mine;
  for (size_t i = 0; i < groups.size(); ++i)
    if (int(i % size_t(learners.size())) == learners.rank()) mine.push_back(policy_group(groups[i]));
  return mine;
}

// The sum of every rank's partial gradient and counters, in one all-reduce (the same on every rank).
HeadPolicy::Partial sum_over_ranks(const HeadPolicy::Partial& part, Collectives& learners) {
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
  return total;
}

// Learner rank 0 must hold both sockets; true on rank 0.
bool root_with_sockets(const Collectives& learners, const Publisher* pub, const Puller* pull) {
  const bool root = learners.rank() == 0;
  RLKV_ASSERT(!root || (pub && pull), "learner rank 0 needs its sockets");
  return root;
}

// One run of the learner role: the policy, the step collector, the actor book, the metrics stream
// and the result. Every rank resumes, shares the step's groups and computes the same update; rank 0
// alone talks to the actors, writes metrics and checkpoints, and publishes the stop policy.
class LearnerRun {
 public:
  LearnerRun(Publisher* pub, Puller* pull, Collectives& learners, const LearnerRoleOptions& o)
      : pub_(pub),
        pull_(pull),
        learners_(learners),
        o_(o),
        id_(o.id),
        root_(root_with_sockets(learners, pub, pull)),
        policy_(id_.num_layers, id_.num_kv_heads, o.policy),
        collector_(o.sync, o.prompts_per_step, o.max_staleness),
        actors_(o.actor_timeout),
        expect_{id_.run_id, id_.num_layers, id_.num_kv_heads} {}

  LearnerRoleResult run() {
    resume();
    if (root_) open_metrics();
    t_run_ = Clock::now();
    for (int64_t step = start_; step < o_.steps; ++step) {
      const auto t_step = Clock::now();
      std::vector<ScoredGroupMsg> groups;
      if (root_) {
        groups = collect_step(step, t_step);
        for (const ScoredGroupMsg& g : groups) {
          res_.positions.push_back(g.position);
          next_position_ = std::max(next_position_, g.position % kPositionSpace + 1);
        }
      }
      if (stopped_on_any_rank()) {
        if (root_)
          log_warn("interrupted during step " + std::to_string(step + 1) + "; stopping after step " +
                   std::to_string(step));
        break;
      }
      const auto t_learn = Clock::now();
      share_groups(groups);
      const StepStats st = compute_update(groups);
      res_.learner_seconds += secs_since(t_learn);
      res_.last_step = step + 1;
      if (root_) end_step(step, t_step, groups, st);
    }
    if (root_) finish_run();
    return result();
  }

 private:
  // Restores the policy, the Adam state and the history from o.resume ("auto": the newest valid
  // checkpoint in the output directory; none there: from scratch; only damaged ones: refused).
  void resume() {
    std::string resume_path = o_.resume;
    if (resume_path == "auto") {
      std::vector<std::string> skipped;
      auto latest = latest_checkpoint(o_.output_dir, &skipped);
      for (const auto& s : skipped) log_warn("resume: skipping a damaged checkpoint (" + s + ")");
      // Starting over would replace the earlier run's metrics and its checkpoints one by one.
      RLKV_CHECK(latest || skipped.empty(), "--resume auto: every checkpoint in ", o_.output_dir, " is damaged (",
                 skipped.size(), ", the newest: ", skipped.front(),
                 "); resume from a copy with --resume CKPT, or move the directory away to start over");
      resume_path = latest ? *latest : "";
      if (!latest && root_) log_info("resume auto: no checkpoint in " + o_.output_dir + ", starting from scratch");
    }
    if (!resume_path.empty()) {
      CheckpointState s = read_checkpoint(resume_path);
      RLKV_CHECK(s.num_layers == id_.num_layers && s.num_kv_heads == id_.num_kv_heads, resume_path,
                 ": checkpoint is for ", s.num_layers, " x ", s.num_kv_heads, " heads, the model has ", id_.num_layers,
                 " x ", id_.num_kv_heads);
      policy_.mutable_theta() = s.logits;
      policy_.adam_m() = s.adam_m;
      policy_.adam_v() = s.adam_v;
      policy_.set_adam_step(s.adam_step);
      policy_.set_penalty_beta(s.penalty_beta);
      res_.history = s.history;
      start_ = s.step;
      // Async actors start past every position the checkpoint's steps used (a sync run's positions
      // follow from the step).
      position_base_ = next_position_ = std::clamp<int64_t>(s.data_position, 0, kPositionSpace - 1);
      if (root_) log_info("resumed from " + resume_path + " at step " + std::to_string(start_));
      // A run resumed under other windows or another model optimises another objective from here on.
      if (root_ && (s.sink != o_.sink || s.window != o_.window))
        log_warn(str_cat("resume: the checkpoint was trained with S = ", s.sink, ", W = ", s.window,
                         "; this run uses S = ", o_.sink, ", W = ", o_.window));
      // The prompt stream and the optimiser continue as the checkpoint has them only under the same
      // seed and settings: another value is taken, with a warning.
      const auto seed = s.rng_states.find("data");
      const std::string want_seed = "seed=" + std::to_string(o_.data_seed);
      if (root_ && seed != s.rng_states.end() && seed->second != want_seed)
        log_warn(str_cat("resume: the checkpoint's prompt stream has ", seed->second, "; this run uses ", want_seed,
                         " (train.seed): other prompts and masks from here on"));
      const std::vector<std::pair<const char*, std::pair<double, double>>> adam = {
          {"policy.lr", {s.lr, o_.policy.lr}},
          {"policy.beta1", {s.beta1, o_.policy.beta1}},
          {"policy.beta2", {s.beta2, o_.policy.beta2}},
          {"policy.adam_eps", {s.eps, o_.policy.adam_eps}},
          {"policy.weight_decay", {s.weight_decay, o_.policy.weight_decay}}};
      for (const auto& [key, v] : adam)
        if (root_ && v.first != v.second)
          log_warn(
              str_cat("resume: the checkpoint was trained with ", key, " = ", v.first, "; this run uses ", v.second));
      std::error_code ec;  // the same directory under another spelling is the same model
      if (root_ && !s.model.empty() && s.model != o_.model && !std::filesystem::equivalent(s.model, o_.model, ec))
        log_warn(str_cat("resume: the checkpoint was trained on model ", s.model, "; this run uses ", o_.model));
      if (root_ && start_ >= o_.steps)
        log_info(str_cat("the checkpoint is at step ", start_, ", train.steps is ", o_.steps, ": nothing to train"));
    }
    res_.first_step = start_;
    res_.last_step = start_;  // until a step is trained
  }

  // Rank 0: metrics.jsonl, cut back to the resumed step (emptied when starting from scratch), for appending.
  void open_metrics() {
    const std::string metrics_path = o_.output_dir + "/metrics.jsonl";
    std::filesystem::create_directories(o_.output_dir);
    truncate_metrics(metrics_path, start_);
    if (start_ == 0) write_file_atomic(metrics_path, "");
    metrics_.open(metrics_path, std::ios::app);
    RLKV_CHECK(metrics_.good(), metrics_path, ": cannot open for writing");
  }

  // Rank 0: publishes the step's policy and receives until the step is complete, republishing for
  // late subscribers. Returns the step's groups; stopped by a signal first: none, and res_.interrupted.
  std::vector<ScoredGroupMsg> collect_step(int64_t step, Clock::time_point t_step) {
    collector_.begin_step(step);
    const std::string frame = encode(policy_message(policy_, id_, step, false, o_.rollouts_endpoint, position_base_));
    pub_->send(frame, milliseconds(0));
    auto last_pub = Clock::now();
    while (!collector_.complete() && !run_stop_flag().load()) {
      RLKV_CHECK(secs_since(t_step) < o_.step_timeout, "step ", step, ": only ", collector_.counts().used,
                 " groups used so far and the step is still incomplete after ", o_.step_timeout,
                 " s (train.step_timeout); are the actors and reward workers running?");
      // Republish for subscribers that joined late (PUB/SUB drops what was sent before them).
      if (secs_since(last_pub) > 0.5) {
        pub_->send(frame, milliseconds(0));
        last_pub = Clock::now();
      }
      auto msg = receive_message(*pull_, milliseconds(100), expect_, drops_);
      if (msg) take_message(std::move(*msg));
    }
    if (!collector_.complete()) {  // interrupted (SIGINT / SIGTERM): keep what is done
      res_.interrupted = true;
      return {};
    }
    return collector_.take();
  }

  // An actor's claim (HelloMsg) goes to the actor book, a scored group to the collector as well.
  void take_message(Message&& msg) {
    if (auto* hello = std::get_if<HelloMsg>(&msg)) {
      actors_.claim(hello->actor_id, hello->in_flight);
    } else if (auto* g = std::get_if<ScoredGroupMsg>(&msg)) {
      actors_.delivered(g->actor_id);
      const int64_t pos = g->position;
      collector_.offer(std::move(*g), pos);
    } else {
      ++wrong_type_;
    }
  }

  // Every learner rank learns whether rank 0 stopped.
  bool stopped_on_any_rank() {
    if (learners_.size() > 1) {
      std::vector<double> flag{res_.interrupted ? 1.0 : 0.0};
      learners_.allreduce_sum(flag);
      res_.interrupted = flag[0] > 0;
    }
    return res_.interrupted;
  }

  // Rank 0's groups, broadcast to the other learner ranks.
  void share_groups(std::vector<ScoredGroupMsg>& groups) {
    if (learners_.size() <= 1) return;
    std::string bytes = root_ ? pack(groups) : std::string();
    learners_.broadcast(bytes, 0);
    if (!root_) groups = unpack(bytes);
  }

  // Reward moments and partial gradients of this rank's share, summed over the ranks, then applied.
  StepStats compute_update(const std::vector<ScoredGroupMsg>& groups) {
    const std::vector<PolicyGroup> mine = rank_share(groups, learners_);
    std::vector<double> moments = HeadPolicy::reward_moments(mine);
    learners_.allreduce_sum(moments);
    const HeadPolicy::Partial part = policy_.partial_gradient(mine, &moments);
    return policy_.apply(sum_over_ranks(part, learners_));
  }

  // Rank 0 after a step's update: history, metrics line, checkpoint every N steps, progress.
  void end_step(int64_t step, Clock::time_point t_step, const std::vector<ScoredGroupMsg>& groups,
                const StepStats& st) {
    const RolloutTotals t = rollout_totals(groups);
    const double dt = secs_since(t_step);
    record_history(step, st, t);
    write_metrics(step, st, t, dt);
    if (o_.checkpoint_every > 0 && (step + 1) % o_.checkpoint_every == 0) checkpoint(step + 1);
    report_progress(step, st, t, dt);
  }

  // The step's row of the history kept in checkpoints (theta after the update included).
  void record_history(int64_t step, const StepStats& st, const RolloutTotals& t) {
    auto& h = res_.history;
    h.step.push_back(step + 1);
    h.reward_mean.push_back(st.reward_mean);
    h.correct_mean.push_back(st.correct_mean);
    h.sparsity_expected.push_back(st.sparsity_expected);
    h.penalty_weight.push_back(st.penalty_weight);
    h.length_ratio.push_back(t.length_ratio);
    h.truncated_rate.push_back(t.truncated_rate);
    h.logits.insert(h.logits.end(), policy_.theta().begin(), policy_.theta().end());
  }

  // One line of metrics.jsonl, flushed.
  void write_metrics(int64_t step, const StepStats& st, const RolloutTotals& t, double dt) {
    nlohmann::json stale = nlohmann::json::object();
    for (const auto& [k, v] : collector_.staleness()) stale[std::to_string(k)] = v;
    const auto& cc = collector_.counts();
    nlohmann::json j = {{"step", step + 1},
                        {"policy_version", step + 1},
                        {"reward_mean", st.reward_mean},
                        {"correct_mean", st.correct_mean},
                        {"length_ratio", t.length_ratio},
                        {"truncated_rate", t.truncated_rate},
                        {"sparsity_expected", st.sparsity_expected},
                        {"penalty_weight", st.penalty_weight},
                        {"grad_norm", st.grad_norm},
                        {"clipped_fraction", st.clipped_fraction},
                        {"staleness", stale},
                        {"groups_dropped", {{"stale", cc.stale}, {"duplicate", cc.duplicate}, {"foreign", cc.foreign}}},
                        {"messages_dropped", drops_.total() + wrong_type_},
                        {"groups_lost", actors_.lost()},
                        {"actors_live", actors_.live()},
                        {"rollouts", int64_t(t.rollouts)},
                        {"rollouts_per_s", t.rollouts / dt},
                        {"tokens_per_s", t.tokens / dt},
                        {"step_seconds", dt},
                        {"elapsed_seconds", secs_since(t_run_)}};
    metrics_ << j.dump() << "\n";
    metrics_.flush();
    RLKV_CHECK(metrics_.good(), o_.output_dir, "/metrics.jsonl: cannot write step ", step,
               "'s line (is the disk full?)");
  }

  // The live line on a terminal (o.progress), else a log line every 10 steps, at the first and the last.
  void report_progress(int64_t step, const StepStats& st, const RolloutTotals& t, double dt) {
    const double per_step = secs_since(t_run_) / double(step + 1 - start_);
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld  reward %.3f  correct %.3f  sparsity %.3f  %.1f rollouts/s  %.0f tok/s  ETA %s",
                  (long long)(step + 1), (long long)o_.steps, st.reward_mean, st.correct_mean, st.sparsity_expected,
                  t.rollouts / dt, t.tokens / dt, eta_text(per_step * double(o_.steps - step - 1)).c_str());
    if (o_.progress) {
      std::fprintf(stderr, "\r%s\x1b[K", line);
      std::fflush(stderr);
    } else if ((step + 1) % 10 == 0 || step + 1 == o_.steps || step == start_) {
      log_info(line);
    }
  }

  // Rank 0 after the last step (or the stop): a checkpoint of the last step, then the stop policy.
  void finish_run() {
    if (o_.progress) std::fprintf(stderr, "\n");
    if (last_ckpt_step_ != res_.last_step && res_.last_step > start_) checkpoint(res_.last_step);
    publish_stop();
  }

  // Writes the checkpoint after `step` steps (keeping o.keep_checkpoints of them).
  void checkpoint(int64_t step) {
    res_.last_checkpoint = write_checkpoint(o_.output_dir, checkpoint_state(step), o_.keep_checkpoints);
    last_ckpt_step_ = step;
  }

  CheckpointState checkpoint_state(int64_t step) {
    CheckpointState s;
    s.run_id = id_.run_id;
    s.model = o_.model;
    s.num_layers = id_.num_layers;
    s.num_kv_heads = id_.num_kv_heads;
    s.sink = o_.sink;
    s.window = o_.window;
    s.step = step;
    s.policy_version = step;
    s.config = o_.config_text;
    s.logits = policy_.theta();
    s.adam_m = policy_.adam_m();
    s.adam_v = policy_.adam_v();
    s.adam_step = policy_.adam_step();
    s.lr = o_.policy.lr;
    s.beta1 = o_.policy.beta1;
    s.beta2 = o_.policy.beta2;
    s.eps = o_.policy.adam_eps;
    s.weight_decay = o_.policy.weight_decay;
    s.penalty_beta = policy_.penalty_beta();
    s.history = res_.history;
    // Masks and sampling streams are functions of (train.seed, position); positions of step s
    // follow from s, so the seed and the position are the whole random state of a sync run.
    s.rng_states["data"] = "seed=" + std::to_string(o_.data_seed);
    // One past the highest position (within its actor's space) a step used: step x B in a sync run.
    s.data_position = next_position_;
    s.data_epoch = 0;
    return s;
  }

  // The stop policy (with the final theta), sent 5 times 100 ms apart: actors and reward workers
  // finish and exit.
  void publish_stop() {
    const std::string frame = encode(policy_message(policy_, id_, res_.last_step > 0 ? res_.last_step : start_, true,
                                                    o_.rollouts_endpoint, position_base_));
    for (int i = 0; i < 5; ++i) {
      pub_->send(frame, milliseconds(0));
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  // The result: final theta, wall time, and the counts of drops, lost groups and delivered groups.
  LearnerRoleResult result() {
    res_.theta = policy_.theta();
    res_.seconds = secs_since(t_run_);
    res_.dropped_messages = drops_.total() + wrong_type_;
    if (pull_) log_refusals(*pull_, "learner scored groups");
    res_.groups_lost = actors_.lost();
    res_.actor_groups = actors_.delivered_counts();
    res_.groups = collector_.counts();
    return std::move(res_);
  }

  Publisher* pub_;
  Puller* pull_;
  Collectives& learners_;
  const LearnerRoleOptions& o_;
  const RunIdentity& id_;
  const bool root_;
  HeadPolicy policy_;
  LearnerRoleResult res_;
  int64_t start_ = 0;  // the step resumed at
  // Async prompt positions: where this run's actors start, and one past the highest a step used.
  int64_t position_base_ = 0, next_position_ = 0;
  std::ofstream metrics_;
  StepCollector collector_;
  ActorBook actors_;
  int64_t wrong_type_ = 0;  // good frames of a type the learner does not take
  DropCounter drops_{"learner scored groups"};
  const ReceiveExpect expect_;
  Clock::time_point t_run_;
  int64_t last_ckpt_step_ = -1;
};

}  // namespace

LearnerRoleResult run_learner_role(Publisher* pub, Puller* pull, Collectives& learners, const LearnerRoleOptions& o) {
  return LearnerRun(pub, pull, learners, o).run();
}

}  // namespace rlkv
