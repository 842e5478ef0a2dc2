// The actor role of a training run: subscribes to the policy, generates groups for its share of
// the prompt positions, pushes them to the reward workers, until the learner's stop policy.
//   sync:  for policy version v, positions v * B + j for the slots j with j % num_actors == index;
//          then waits for version v + 1.
//   async: never waits: keeps generating ceil(B / num_actors) prompts at a time with the newest
//          policy it has, at positions index, index + num_actors, ... (elastic actors use their own
//          position space, so they never collide with the job's actors).
// A tensor-parallel actor group (actor.tensor_parallel = N ranks) acts as one actor: its leader
// talks to the learner and the reward workers, and hands each batch to the other ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/actor.h"
#include "comm/transport.h"
#include "core/run_context.h"

namespace rlkv {

class Collectives;

struct ActorRoleOptions {
  RunIdentity id;  // run_id empty: taken from the first policy received (elastic)
  std::string actor_id;
  int64_t index = 0, num_actors = 1;
  bool sync = true;
  bool elastic = false;
  // Seconds without a policy message before failing with a one-line error, for the first policy and
  // for every later one (a learner republishes its policy every half second while a step runs, so a
  // live one is heard within a step, and the latest message waits in the subscriber while a batch is
  // generated). 0: wait until stopped (actors started with the job, which the job ends).
  double policy_timeout_s = 0;
  int64_t prompts_per_step = 8;
  int64_t data_seed = 0;
  ActorOptions actor;
  // Tensor-parallel actor group: this rank is its rank 0 (the leader); the other ranks run
  // run_actor_follower. Null or size 1: a whole-model actor.
  std::shared_ptr<Collectives> group;
  // Fault injection for tests of actor loss: after delivering this many groups (>= 0), the actor
  // claims its next batch, writes `halt_marker` (when set) and then sends nothing more until the
  // run stops or the process is killed. Negative: off.
  int64_t halt_after_groups = -1;
  std::string halt_marker;
};

struct ActorRoleStats {
  int64_t groups = 0, rollouts = 0, tokens = 0, push_failures = 0;
  double generate_seconds = 0;
};

ActorRoleStats run_actor_role(Context& ctx, const RunEndpoints& ep, const Model& model, const Tokenizer& tok,
                              const std::vector<Problem>& problems, const ActorRoleOptions& opts);

// The other ranks of a tensor-parallel actor group: receive each batch the leader generates
// (policy version, theta, positions) by broadcast over `group`, run the same generation so that the
// model's collectives pair up (the leader alone sends the results), until the leader says stop.
// Returns the number of batches run.
int64_t run_actor_follower(Collectives& group, const Model& model, const Tokenizer& tok,
                           const std::vector<Problem>& problems, const ActorOptions& opts);

// Converts an actor's group into the wire message.
RolloutGroupMsg to_message(const ActorGroup& g, const Problem& p, const RunIdentity& id, const std::string& actor_id);

}  // namespace rlkv
