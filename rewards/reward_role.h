// The reward-worker role of a training run: pulls rollout groups from the actors, scores them on the
// RewardWorker's pool (rewards/reward_worker.h), and pushes scored groups to the learner, until the
// learner's stop policy. Malformed and foreign messages are dropped and counted.
#pragma once

#include "comm/transport.h"
#include "core/run_context.h"
#include "rewards/reward_worker.h"

namespace rlkv {

struct RewardRoleStats {
  RewardWorkerStats worker;
  int64_t push_failures = 0;
  int64_t dropped = 0;
};

// `pull` is already bound (its endpoint is one of ep.rollouts).
RewardRoleStats run_reward_role(Context& ctx, Puller& pull, const RunEndpoints& ep, const RunIdentity& id,
                                const RewardWorkerOptions& opts);

// Scores attached to the group, as the learner receives them.
ScoredGroupMsg to_scored_message(const ScoredGroup& sg);

}  // namespace rlkv
