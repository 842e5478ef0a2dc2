// Token sampling on one row of fp32 logits, torch-free: greedy, temperature, top-k, top-p.
// Each sequence draws from its own counter-free PRNG stream (xoshiro256** seeded by splitmix64 of
// (seed, stream)), so a sequence's tokens do not depend on which other sequences share its batch.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace rlkv {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax, first index on ties)
  double top_p = 1.0;
  int64_t top_k = 0;
  // Greedy at 0 and at a temperature so small that 1 / temperature is infinite (a subnormal): the
  // limit of sampling as the temperature falls, where 0 x inf would make every mass NaN.
  bool greedy() const { return !(temperature > 0) || std::isinf(1.0 / temperature); }
};

class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits
  const uint64_t* state() const { return s_; }
  void set_state(const uint64_t s[4]);

 private:
  uint64_t s_[4];
};

// Buffers reused between calls, so sampling allocates nothing per token.
struct SamplingScratch {
  std::vector<std::pair<float, int32_t>> candidates;
  std::vector<double> probs;
};

// Samples an index in [0, n).
int32_t sample_token(const float* logits, int64_t n, const SamplingParams& p, Rng& rng, SamplingScratch& scratch);

}  // namespace rlkv
