// From a Config to the options of every role of a training run (the one place that maps config
// keys onto role options), plus the small files and reports around a run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/actor_role.h"
#include "comm/collectives.h"
#include "comm/frame_auth.h"
#include "core/config.h"
#include "launch/cli.h"
#include "learner/learner_role.h"
#include "problems/dataset.h"
#include "rewards/reward_worker.h"

namespace rlkv {

struct TrainSetup {
  RunIdentity id;
  std::shared_ptr<const RunKey> key;  // resolve_run_key (cmd_train); null: frames unauthenticated
  std::vector<Problem> problems;
  LearnerRoleOptions learner;
  ActorRoleOptions actor;
  RewardWorkerOptions reward;
};

// Reads the model's config.json and the dataset; the run id comes from rank 0 of `world`. With
// check_prompts, rank 0 tokenizes every prompt and refuses one longer than the model's context before
// the run starts (the job's launcher does; an elastic actor joining a checked run does not, and still
// checks each prompt it samples).
TrainSetup make_train_setup(const Config& cfg, Collectives& world, bool check_prompts = true);

// True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost).
bool is_loopback(const std::string& address);

// The run's key, the same on every rank of `world`: placement.key_file, else the file named by the
// environment variable RLKV_KEY_FILE, read by rank 0; else, when placement.bind_address is not
// loopback and placement.insecure is false, made by rank 0 and written to OUTPUT_DIR/run.key (mode
// 0600) for elastic actors (`rlkv actor --key-file`); else null (loopback: only this machine reaches
// the ports; or insecure, which rank 0 logs as a warning). Handed to the other ranks over MPI; never
// logged, never in a checkpoint.
std::shared_ptr<const RunKey> resolve_run_key(const Config& cfg, Collectives& world);

// The key an elastic actor uses: --key-file, else placement.key_file, else RLKV_KEY_FILE; null if none.
std::shared_ptr<const RunKey> actor_run_key(const std::string& key_file_option, const Config& cfg);

// OUTPUT_DIR/endpoints.json: where an elastic actor connects.
void write_endpoints_file(const std::string& output_dir, const std::string& policy,
                          const std::vector<std::string>& rollouts);

void report_train_result(const LearnerRoleResult& r, const TrainSetup& s);

}  // namespace rlkv
