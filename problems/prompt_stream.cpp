#include "problems/prompt_stream.h"

#include <random>

#include "core/error.h"

namespace rlkv {

PromptStream::PromptStream(int64_t num_problems, uint64_t seed) : n_(num_problems), seed_(seed) {
  RLKV_CHECK(num_problems >= 1, "prompt stream: the dataset has no problems");
}

int64_t PromptStream::problem_at(int64_t position) {
  RLKV_ASSERT(position >= 0, "negative prompt position");
  const int64_t epoch = position / n_;
  if (epoch != epoch_) {
    perm_.resize(size_t(n_));
    for (int64_t i = 0; i < n_; ++i) perm_[size_t(i)] = i;
    // Fisher-Yates with a generator seeded by (seed, epoch): std::shuffle's algorithm is not
    // specified by the standard, this one is the same everywhere.
    std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull + uint64_t(epoch) + 1);
    for (int64_t i = n_ - 1; i > 0; --i) {
      const int64_t j = int64_t(rng() % uint64_t(i + 1));
      std::swap(perm_[size_t(i)], perm_[size_t(j)]);
    }
    epoch_ = epoch;
  }
  return perm_[size_t(position % n_)];
}

}  // namespace rlkv
