#include "learner/step_collector.h"

namespace rlkv {
namespace {

// FNV-1a over the rollouts' masks: with the version, actor and position, a group's identity.
uint64_t masks_hash(const ScoredGroupMsg& g) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& r : g.rollouts) {
    for (uint8_t b : r.mask) h = (h ^ b) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;  // rollout boundary
  }
  return h;
}

}  // namespace

void StepCollector::begin_step(int64_t step) {
  step_ = step;
  // Async: groups that arrived beyond the previous step's B stay for this one if still fresh.
  if (!sync_) {
    // Identities of versions too old to be taken again need not be remembered: the set is ordered by
    // version first.
    seen_.erase(seen_.begin(), seen_.lower_bound(Identity(step_ - max_staleness_, "", INT64_MIN, 0)));
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
  if (!seen_.emplace(g.policy_version, g.actor_id, position, masks_hash(g)).second) {
    ++counts_.duplicate;
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
