// The rollout actor's work (docs/design.md section 2), independent of transport: given the policy logits
// and a set of prompt positions, sample one head mask per rollout from Bernoulli(sigmoid(theta)),
// generate G rollouts per prompt in one continuously-batched run (compressed-cache attention for the
// heads a mask compresses), and return one group per prompt with its masks, the behaviour
// probabilities and the policy version.
//
// Determinism: the mask of rollout i of position g and its sampling stream depend only on
// (seed, g, i), never on which actor or which batch produced them, so a sync run is reproducible for
// any placement. Not thread safe (owns a Generator); one Actor per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "problems/dataset.h"
#include "runtime/generator.h"

namespace rlkv {

class Model;
class Tokenizer;

struct ActorOptions {
  int64_t group_size = 4;       // G rollouts per prompt
  GeneratorOptions generation;  // sampling, caps, cache windows, batch, threads
  std::string prompt_template = "{prompt}";
  bool add_special_tokens = true;
  uint64_t seed = 0;
};

struct ActorRollout {
  std::vector<uint8_t> keep;  // [L * H] 1 = full cache
  std::vector<int32_t> tokens;
  std::string text;
  int64_t prompt_tokens = 0;
  FinishReason finish = FinishReason::kLength;
};

struct ActorGroup {
  int64_t position = 0;  // global prompt position (step * prompts_per_step + slot)
  int64_t problem = 0;   // index into the dataset
  int64_t policy_version = 0;
  std::vector<float> behaviour_p;  // [L * H] sigmoid(theta) the masks were drawn from
  std::vector<ActorRollout> rollouts;
};

class Actor {
 public:
  Actor(const Model& model, const Tokenizer& tok, const std::vector<Problem>& problems, ActorOptions opts);
  ~Actor();

  // positions[i] = (global position, problem index)
  std::vector<ActorGroup> generate(int64_t policy_version, const std::vector<float>& theta,
                                   const std::vector<std::pair<int64_t, int64_t>>& positions);
  const GenerationStats& stats() const;

 private:
  const Model& model_;
  const Tokenizer& tok_;
  const std::vector<Problem>& problems_;
  ActorOptions opts_;
  std::unique_ptr<Generator> gen_;
  std::vector<std::vector<int32_t>> encoded_;  // prompt ids per problem, encoded on first use
};

// Mask of rollout i at position g: head h is full iff uniform(seed, g, i, h) < p_h.
std::vector<uint8_t> sample_mask(const std::vector<float>& keep_p, uint64_t seed, int64_t position, int64_t rollout);

}  // namespace rlkv
