// Which scored groups a learner step uses (docs/design.md section 2, "Modes"):
//   sync:  step s uses exactly the groups of positions [s * B, (s + 1) * B) generated with policy
//          version s; the step is complete when all B are in. Anything else is dropped and counted
//          (late: an older version; duplicate: a position already in; foreign: a position outside
//          the step). Groups are returned ordered by position, so the gradient sums run in the same
//          order on every run: sync training is bit-reproducible for given seeds and placement.
//   async: step s takes the first B groups whose version is at least s - max_staleness (the actors
//          never wait); older groups are dropped and counted as stale. The staleness (s - version)
//          of every used group is histogrammed; the estimator's per-head importance ratios correct
//          for the behaviour policy. A group equal in identity to one already taken (same version,
//          actor, position and rollout masks: a copy delivered twice, e.g. a recorded rollout group
//          replayed to a second reward worker) is dropped as a duplicate; identities are kept only
//          while their version is fresh enough to be taken.
// Thread safety: none; the learner's receive loop owns it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "comm/messages.h"

namespace rlkv {

struct CollectorCounts {
  int64_t used = 0, stale = 0, duplicate = 0, foreign = 0;
};

class StepCollector {
 public:
  StepCollector(bool sync, int64_t prompts_per_step, int64_t max_staleness)
      : sync_(sync), B_(prompts_per_step), max_staleness_(max_staleness) {}

  void begin_step(int64_t step);
  // Offers a group (already validated against run and shape); true when it was taken.
  bool offer(ScoredGroupMsg&& g, int64_t position);
  bool complete() const { return int64_t(taken_.size()) >= B_; }
  // The step's groups (ordered by position in sync mode, by arrival in async mode).
  std::vector<ScoredGroupMsg> take();
  const CollectorCounts& counts() const { return counts_; }
  // Staleness histogram of the groups of the last take(): staleness -> count.
  const std::map<int64_t, int64_t>& staleness() const { return staleness_; }
  int64_t step() const { return step_; }

 private:
  bool sync_;
  int64_t B_, max_staleness_;
  int64_t step_ = 0;
  std::map<int64_t, ScoredGroupMsg> taken_;  // keyed by position (sync) or arrival index (async)
  // Async: (version, actor, position, masks' hash) of every group taken while its version is fresh.
  using Identity = std::tuple<int64_t, std::string, int64_t, uint64_t>;
  std::set<Identity> seen_;
  int64_t arrivals_ = 0;
  CollectorCounts counts_;
  std::map<int64_t, int64_t> staleness_;
};

}  // namespace rlkv
