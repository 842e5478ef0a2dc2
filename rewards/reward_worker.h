// The reward worker of the training pipeline (docs/design.md section 2): takes rollout groups from the
// actors, scores every rollout (rewards/reward.h) on a small thread pool, and hands scored groups on
// to the learner, through a callback or a queue.
//
// Shape of the data: a RolloutGroup is one prompt (its id, reference answer and full-cache reference
// length) and its G rollouts (response text, length in tokens, finish reason). Both the group and each
// rollout carry an opaque `payload` (std::any) that the worker never looks at and passes through
// untouched: the trainer puts there what it needs back (head masks, policy version, token ids).
//
// Never blocked by one slow item: every rollout (and every reference) is scored within a fixed WORK
// budget (RewardOptions::work_budget, rewards/work_budget.h); an item that runs out scores as wrong
// and is counted in stats().budget_hits. Because the budget counts work, not time, scores are
// deterministic: the same group scores the same on any machine, at any load.
//
// Feeding and draining (transport-agnostic; the ZeroMQ reward role, rewards/reward_role.h, wraps these):
//   - push(group): blocks while `max_pending` groups wait (back-pressure); false after close().
//   - output: either a Sink callback given at construction, called from the pool threads but never
//     concurrently (calls are serialised; a sink must not call push(), which may wait on the pool), or,
//     without a sink, an unbounded output queue read with pop() (blocks; nullopt once closed and
//     everything was delivered) or try_pop().
//   - close(): no more input; queued groups are still scored and delivered.
//   - drain(): close(), wait for the pool to finish, rethrow the first exception a sink threw (a
//     throwing sink loses that group only; the worker keeps going).
//   - destructor: cancels: waiting groups are dropped, groups being scored are finished, threads
//     joined.
// Groups come out in completion order, not push order (match them by prompt_id / payload).
//
// Thread safety: push, pop, try_pop, close, stats may be called from any threads; drain and the
// destructor from one thread.
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rewards/blocking_queue.h"
#include "rewards/reward.h"

namespace rlkv {

struct RolloutGroup {
  struct Rollout {
    std::string response;
    int64_t length = 0;                 // generated tokens
    std::string finish_reason = "eos";  // eos | stop | length | repetition
    std::any payload;                   // opaque to the worker (e.g. the head mask used)
  };
  std::string prompt_id;
  std::string answer;  // reference answer as in the dataset (bare, "#### 42", or a boxed solution)
  double ref_len = 0;  // full-cache reference length in tokens (<= 0: unknown)
  std::vector<Rollout> rollouts;
  std::any payload;  // opaque to the worker (e.g. policy version)
};

struct ScoredGroup {
  RolloutGroup group;               // as pushed, payloads untouched
  std::vector<RewardScore> scores;  // scores[i] belongs to group.rollouts[i]
  std::string reference_why;        // how the reference was read (or why it could not be)
  bool reference_budget_hit = false;
  int64_t reference_work = 0;  // steps spent on the reference
};

// Scores one group on the calling thread (what each pool thread does).
ScoredGroup score_group(RolloutGroup group, const RewardOptions& options);

struct RewardWorkerOptions {
  RewardOptions reward;
  int num_threads = 2;      // pool size
  size_t max_pending = 64;  // groups waiting before push() blocks
};

struct RewardWorkerStats {
  int64_t groups_in = 0, groups_out = 0, rollouts = 0, correct = 0;
  int64_t extracted = 0;    // rollouts with an answer the task's checker could find
  int64_t budget_hits = 0;  // items (rollouts or references) that ran out of work budget
  int64_t work_steps = 0;   // total steps used, references included
  int64_t sink_errors = 0;
};

class RewardWorker {
 public:
  using Sink = std::function<void(ScoredGroup&&)>;

  // Throws UserError on bad options (naming the field).
  explicit RewardWorker(const RewardWorkerOptions& options, Sink sink = {});
  ~RewardWorker();
  RewardWorker(const RewardWorker&) = delete;
  RewardWorker& operator=(const RewardWorker&) = delete;

  bool push(RolloutGroup group);
  // push() waiting at most `timeout` for room: false (group untouched) when none came or closed.
  bool push_for(RolloutGroup& group, std::chrono::milliseconds timeout);
  std::optional<ScoredGroup> pop();
  std::optional<ScoredGroup> try_pop();
  void close();
  void drain();
  RewardWorkerStats stats() const;

 private:
  // Counts a group in, then runs `enqueue`; a group it does not queue is counted out again.
  bool counted_in(const std::function<bool()>& enqueue);
  void run();
  void join();

  const RewardWorkerOptions options_;
  const Sink sink_;
  BlockingQueue<RolloutGroup> in_;
  BlockingQueue<ScoredGroup> out_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;  // stats_, error_, running_
  std::mutex sink_mu_;     // one sink call at a time
  std::mutex join_mu_;
  RewardWorkerStats stats_;
  bool warned_nothing_extracted_ = false;
  std::exception_ptr error_;
  int running_ = 0;
};

}  // namespace rlkv
