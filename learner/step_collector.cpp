#include "learner/step_collector.h"

namespace rlkv {

void StepCollector::begin_step(int64_t step) {
  step_ = step;
  // Async: groups that arrived beyond the previous step's B stay for this one if still fresh.
  if (!sync_) {
    for (auto it = taken_.begin(); it != taken_.end();) {
      if (it->second.policy_version < step_ - max_staleness_) {
        ++counts_.stale;
        it = taken_.erase(it);
      } else {
        ++it;
      }
    }
  } else {
    taken_.clear();
  }
}

bool StepCollector::offer(ScoredGroupMsg&& g, int64_t position) {
  if (sync_) {
    if (g.policy_version < step_) {
      ++counts_.stale;
      return false;
    }
    if (g.policy_version != step_ || position < step_ * B_ || position >= (step_ + 1) * B_) {
      ++counts_.foreign;
      return false;
    }
    if (taken_.count(position)) {
      ++counts_.duplicate;
      return false;
    }
    taken_.emplace(position, std::move(g));
    return true;
  }
  if (g.policy_version < step_ - max_staleness_) {
    ++counts_.stale;
    return false;
  }
  if (g.policy_version > step_) {  // from a future version: cannot be (versions come from us)
    ++counts_.foreign;
    return false;
  }
  taken_.emplace(arrivals_++, std::move(g));
  return true;
}

std::vector<ScoredGroupMsg> StepCollector::take() {
  std::vector<ScoredGroupMsg> out;
  staleness_.clear();
  for (auto it = taken_.begin(); it != taken_.end() && int64_t(out.size()) < B_;) {
    ++staleness_[step_ - it->second.policy_version];
    out.push_back(std::move(it->second));
    it = taken_.erase(it);
  }
  counts_.used += int64_t(out.size());
  return out;
}

}  // namespace rlkv
