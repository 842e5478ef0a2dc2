// The order in which training visits the problems: epoch e is a seeded permutation of [0, n), and
// global position g (= step * prompts_per_step + slot) is problem perm_{g / n}[g % n]. Any process
// computes the same problem for the same position, so actors need no coordination to shard a step,
// and a resumed run continues exactly where it stopped (the position is step * prompts_per_step).
// Thread safety: problem_at is const but caches the last epoch's permutation; use one stream per thread.
#pragma once

#include <cstdint>
#include <vector>

namespace rlkv {

class PromptStream {
 public:
  PromptStream(int64_t num_problems, uint64_t seed);
  int64_t problem_at(int64_t position);
  static int64_t epoch_of(int64_t position, int64_t num_problems) { return position / num_problems; }

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace rlkv
