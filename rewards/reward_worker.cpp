#include "rewards/reward_worker.h"

#include "core/error.h"
#include "core/log.h"

namespace rlkv {

ScoredGroup score_group(RolloutGroup group, const RewardOptions& options) {
  ScoredGroup out;
  const Reference ref = prepare_reference(group.answer, options);
  out.reference_why = ref.why;
  out.reference_budget_hit = ref.budget_hit;
  out.reference_work = ref.work;
  out.scores.reserve(group.rollouts.size());
  for (const auto& r : group.rollouts)
    out.scores.push_back(score_response(r.response, r.length, r.finish_reason, ref, group.ref_len, options));
  out.group = std::move(group);
  return out;
}

RewardWorker::RewardWorker(const RewardWorkerOptions& options, Sink sink)
    : options_(options), sink_(std::move(sink)), in_(options.max_pending) {
  check_reward_options(options_.reward);
  RLKV_CHECK(options_.num_threads >= 1 && options_.num_threads <= 256,
             "reward worker: num_threads must be in [1, 256], got ", options_.num_threads);
  RLKV_CHECK(options_.max_pending >= 1, "reward worker: max_pending must be >= 1");
  running_ = options_.num_threads;
  threads_.reserve(size_t(options_.num_threads));
  for (int i = 0; i < options_.num_threads; ++i) threads_.emplace_back([this] { run(); });
}

RewardWorker::~RewardWorker() {
  in_.close();
  in_.clear();
  join();
}

bool RewardWorker::push(RolloutGroup group) {
  return counted_in([&] { return in_.push(std::move(group)); });
}

bool RewardWorker::push_for(RolloutGroup& group, std::chrono::milliseconds timeout) {
  return counted_in([&] { return in_.push_for(group, timeout); });
}

bool RewardWorker::counted_in(const std::function<bool()>& enqueue) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.groups_in;  // before the pool can count the group out
  }
  if (enqueue()) return true;
  std::lock_guard<std::mutex> lock(mu_);
  --stats_.groups_in;
  return false;
}

std::optional<ScoredGroup> RewardWorker::pop() { return out_.pop(); }
std::optional<ScoredGroup> RewardWorker::try_pop() { return out_.try_pop(); }
void RewardWorker::close() { in_.close(); }

void RewardWorker::drain() {
  close();
  join();
  std::lock_guard<std::mutex> lock(mu_);
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

RewardWorkerStats RewardWorker::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void RewardWorker::join() {
  std::lock_guard<std::mutex> lock(join_mu_);
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void RewardWorker::run() {
  while (auto group = in_.pop()) {
    ScoredGroup scored = score_group(std::move(*group), options_.reward);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.groups_out;
      stats_.rollouts += int64_t(scored.scores.size());
      stats_.work_steps += scored.reference_work;
      stats_.budget_hits += scored.reference_budget_hit ? 1 : 0;
      for (const auto& s : scored.scores) {
        stats_.correct += s.correct ? 1 : 0;
        stats_.extracted += s.extracted.empty() ? 0 : 1;
        stats_.work_steps += s.work;
        stats_.budget_hits += s.budget_hit ? 1 : 0;
      }
      // Not one answer the checker can find in the first responses: the rewards are all 0 by
      // construction, which a wrong task explains more often than a hopeless model.
      constexpr int64_t kWarnAfter = 64;
      if (!warned_nothing_extracted_ && stats_.rollouts >= kWarnAfter && stats_.extracted == 0) {
        warned_nothing_extracted_ = true;
        log_warn(str_cat("reward worker: none of the first ", stats_.rollouts, " responses has an answer the '",
                         reward_task_name(options_.reward.task),
                         "' checker can extract; is the task right? (config key reward.task = toy|math)"));
      }
    }
    if (sink_) {
      std::lock_guard<std::mutex> lock(sink_mu_);
      try {
        sink_(std::move(scored));
      } catch (...) {
        std::lock_guard<std::mutex> stats_lock(mu_);
        ++stats_.sink_errors;
        if (!error_) error_ = std::current_exception();
      }
    } else {
      out_.push(std::move(scored));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (--running_ == 0) out_.close();  // the last thread out: pop() may now return nullopt
}

}  // namespace rlkv
