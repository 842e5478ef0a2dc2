// From a Config to the options of every role of a training run (the one place that maps config
// keys onto role options), plus the small files and reports around a run.
#pragma once

#include <string>
#include <vector>

#include "actors/actor_role.h"
#include "comm/collectives.h"
#include "core/config.h"
#include "launch/cli.h"
#include "learner/learner_role.h"
#include "problems/dataset.h"
#include "rewards/reward_worker.h"

namespace rlkv {

struct TrainSetup {
  RunIdentity id;
  std::vector<Problem> problems;
  LearnerRoleOptions learner;
  ActorRoleOptions actor;
  RewardWorkerOptions reward;
};

// Reads the model's config.json and the dataset; the run id comes from rank 0 of `world`.
TrainSetup make_train_setup(const Config& cfg, Collectives& world);

// OUTPUT_DIR/endpoints.json: where an elastic actor connects.
void write_endpoints_file(const std::string& output_dir, const std::string& policy,
                          const std::vector<std::string>& rollouts);

void report_train_result(const LearnerRoleResult& r, const TrainSetup& s);

}  // namespace rlkv
