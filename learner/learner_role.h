// The learner role of a training run (docs/design.md sections 2, 3, 7): owns the head-gate policy; each
// step gathers the step's scored groups (learner/step_collector.h), shares them among the learner
// ranks, sums their partial gradients with an all-reduce, applies the update on every rank (the
// same arithmetic in the same order, so the ranks stay identical without broadcasting theta), then
// rank 0 publishes the new policy, appends a metrics line and checkpoints every N steps.
// Resume: from a checkpoint (or the newest valid one in the output directory with "auto"), theta,
// Adam state, controller weight, step, version and history are restored; the data position follows
// from the step, so a sync run resumed continues exactly as the uninterrupted one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "comm/collectives.h"
#include "comm/transport.h"
#include "core/run_context.h"
#include "learner/policy.h"
#include "learner/step_collector.h"

namespace rlkv {

struct LearnerRoleOptions {
  RunIdentity id;
  std::string model;  // recorded in checkpoints
  int64_t sink = 0, window = 0;
  std::string config_text;  // the run's INI text with its overrides (effective_config_text), for checkpoints
  int64_t steps = 1, prompts_per_step = 8, group_size = 4;
  bool sync = true;
  int64_t max_staleness = 2;
  std::string output_dir;
  int64_t checkpoint_every = 10, keep_checkpoints = 3;
  double step_timeout = 600;
  double actor_timeout = 30;  // an actor silent this long is presumed dead (its claims: lost)
  std::string resume;         // "", a checkpoint path, or "auto"
  int64_t data_seed = 0;
  PolicyOptions policy;
  bool progress = false;          // one-line live display (rank 0 on a terminal)
  std::string rollouts_endpoint;  // announced in policy messages for elastic actors
};

struct LearnerRoleResult {
  int64_t first_step = 0, last_step = 0;
  std::vector<float> theta;
  CheckpointHistory history;
  std::string last_checkpoint;
  // Wall time, and the time spent sharing the step's groups, in gradients and in the update.
  double seconds = 0, learner_seconds = 0;
  int64_t dropped_messages = 0;
  int64_t groups_lost = 0;
  bool interrupted = false;                     // stopped by a signal before train.steps (the last checkpoint is kept)
  std::map<std::string, int64_t> actor_groups;  // groups delivered per actor id
  std::vector<int64_t> positions;               // prompt positions of the groups used, step by step (rank 0)
  CollectorCounts groups;
};

// pub and pull are bound sockets on learner rank 0 and nullptr on the other learner ranks.
LearnerRoleResult run_learner_role(Publisher* pub, Puller* pull, Collectives& learners, const LearnerRoleOptions& o);

}  // namespace rlkv
