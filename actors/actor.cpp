#include "actors/actor.h"

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/keep_prob.h"
#include "problems/dataset.h"
#include "runtime/model.h"
#include "runtime/sampling.h"
#include "runtime/tokenizer.h"

namespace rlkv {

std::vector<uint8_t> sample_mask(const std::vector<float>& keep_p, uint64_t seed, int64_t position, int64_t rollout) {
  Rng rng(seed ^ 0x6d61736b6d61736bull, uint64_t(position) * 1000003ull + uint64_t(rollout));
  std::vector<uint8_t> keep(keep_p.size());
  for (size_t h = 0; h < keep_p.size(); ++h) keep[h] = rng.uniform() < double(keep_p[h]) ? 1 : 0;
  return keep;
}

Actor::Actor(const Model& model, const Tokenizer& tok, const std::vector<Problem>& problems, ActorOptions opts)
    : model_(model), tok_(tok), problems_(problems), opts_(std::move(opts)) {
  RLKV_CHECK(opts_.group_size >= 1, "config key rollout.group_size: expected >= 1, got ", opts_.group_size);
  RLKV_CHECK(opts_.prompt_template.find("{prompt}") != std::string::npos, "prompt template must contain {prompt}");
  gen_ = std::make_unique<Generator>(model_, &tok_, opts_.generation);
  encoded_.resize(problems_.size());
}

Actor::~Actor() = default;

const GenerationStats& Actor::stats() const { return gen_->stats(); }

std::vector<ActorGroup> Actor::generate(int64_t policy_version, const std::vector<float>& theta,
                                        const std::vector<std::pair<int64_t, int64_t>>& positions) {
  const ModelConfig& c = model_.config();
  RLKV_CHECK(int64_t(theta.size()) == c.num_layers * c.num_kv_heads, "policy has ", theta.size(),
             " logits, the model has ", c.num_layers * c.num_kv_heads, " KV heads");
  std::vector<float> p(theta.size());
  for (size_t h = 0; h < p.size(); ++h) p[h] = keep_prob(theta[h]);
  std::vector<ActorGroup> groups;
  std::vector<GenerationRequest> reqs;
  for (const auto& [position, problem] : positions) {
    RLKV_ASSERT(problem >= 0 && problem < int64_t(problems_.size()), "problem index out of range");
    auto& ids = encoded_[size_t(problem)];
    if (ids.empty()) {
      std::vector<int32_t> encoded = tok_.encode(
          apply_prompt_template(opts_.prompt_template, problems_[size_t(problem)].prompt), opts_.add_special_tokens);
      check_prompt_length(problems_[size_t(problem)], encoded.size(), c.max_position_embeddings);
      ids = std::move(encoded);  // cached once it passed
    }
    ActorGroup g;
    g.position = position;
    g.problem = problem;
    g.policy_version = policy_version;
    g.behaviour_p = p;
    for (int64_t i = 0; i < opts_.group_size; ++i) {
      GenerationRequest r;
      r.id = int64_t(reqs.size());
      r.prompt = ids;
      r.keep = sample_mask(p, opts_.seed, position, i);
      r.stream = uint64_t(position) * uint64_t(opts_.group_size) + uint64_t(i);
      ActorRollout ro;
      ro.keep = r.keep;
      ro.prompt_tokens = int64_t(ids.size());
      g.rollouts.push_back(std::move(ro));
      reqs.push_back(std::move(r));
    }
    groups.push_back(std::move(g));
  }
  const auto results = gen_->run(reqs);
  for (size_t k = 0; k < results.size(); ++k) {
    ActorRollout& ro = groups[k / size_t(opts_.group_size)].rollouts[k % size_t(opts_.group_size)];
    ro.tokens = results[k].tokens;
    ro.text = results[k].text;
    ro.finish = results[k].finish;
  }
  return groups;
}

}  // namespace rlkv
