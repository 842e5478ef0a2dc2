// Token sampling: greedy ties, top-k / top-p supports, and the empirical distribution.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "runtime/sampling.h"

using namespace rlkv;

TEST_CASE("greedy takes the first maximum") {
  Rng rng(1, 0);
  SamplingScratch s;
  std::vector<float> l = {0.f, 3.f, 1.f, 3.f};
  REQUIRE(sample_token(l.data(), 4, {0.0, 1.0, 0}, rng, s) == 1);
  // A NaN never wins, not even at index 0 (it used to: comparisons against NaN are all false).
  std::vector<float> n = {std::nanf(""), -2.f, 5.f, std::nanf("")};
  REQUIRE(sample_token(n.data(), 4, {0.0, 1.0, 0}, rng, s) == 2);
}

TEST_CASE("a temperature whose inverse is infinite samples greedily") {
  // 1e-310 is a subnormal: 1 / T is +inf, and 0 x inf would make every mass NaN (the last candidate
  // used to win); 1e-300 is tiny but finite, and the largest logit takes all the mass.
  Rng rng(2, 0);
  SamplingScratch s;
  std::vector<float> l = {0.f, 3.f, 1.f, 2.5f, -1.f};
  for (const double t : {1e-310, 5e-324, 1e-300})
    for (const SamplingParams p : {SamplingParams{t, 1.0, 0}, SamplingParams{t, 0.9, 0}, SamplingParams{t, 1.0, 3}}) {
      INFO("temperature " << t << " top_p " << p.top_p << " top_k " << p.top_k);
      for (int i = 0; i < 20; ++i) REQUIRE(sample_token(l.data(), 5, p, rng, s) == 1);
    }
  CHECK(SamplingParams{1e-310, 1.0, 0}.greedy());
  CHECK(!SamplingParams{1e-300, 1.0, 0}.greedy());
}

TEST_CASE("an infinite logit wins under every rule, wherever it stands") {
  Rng rng(3, 0);
  SamplingScratch s;
  std::vector<float> l = {1.f, 2.f, 0.5f, INFINITY, 3.f};
  for (const SamplingParams p : {SamplingParams{0.0, 1.0, 0}, SamplingParams{1.0, 1.0, 0}, SamplingParams{0.8, 0.9, 0},
                                 SamplingParams{1.0, 1.0, 2}})
    for (int i = 0; i < 50; ++i) REQUIRE(sample_token(l.data(), 5, p, rng, s) == 3);
}

TEST_CASE("top-k and top-p restrict the support") {
  SamplingScratch s;
  std::vector<float> l = {5.f, 4.f, 3.f, 2.f, 1.f, 0.f};
  Rng rng(7, 0);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sample_token(l.data(), 6, {1.0, 1.0, 2}, rng, s));
  REQUIRE(seen == std::set<int32_t>{0, 1});
  // Softmax of the logits: p0 = 0.636, p0 + p1 = 0.87: top-p 0.8 keeps ids 0 and 1.
  seen.clear();
  for (int i = 0; i < 2000; ++i) seen.insert(sample_token(l.data(), 6, {1.0, 0.8, 0}, rng, s));
  REQUIRE(seen == std::set<int32_t>{0, 1});
  // Tokens tied with the k-th logit stay, as in Hugging Face's top-k (exactly k kept only ids 0, 1).
  const std::vector<float> tied = {2.f, 1.f, 1.f, 1.f, 0.f};
  seen.clear();
  for (int i = 0; i < 2000; ++i) seen.insert(sample_token(tied.data(), 5, {1.0, 1.0, 2}, rng, s));
  REQUIRE(seen == std::set<int32_t>{0, 1, 2, 3});
}

TEST_CASE("sampling frequencies follow softmax(logits / T)") {
  SamplingScratch s;
  std::vector<float> l = {1.f, 0.f, -1.f};
  Rng rng(11, 3);
  const double T = 0.7;
  std::vector<int> counts(3);
  const int N = 60000;
  for (int i = 0; i < N; ++i) ++counts[size_t(sample_token(l.data(), 3, {T, 1.0, 0}, rng, s))];
  double z = 0;
  for (float x : l) z += std::exp(x / T);
  for (int i = 0; i < 3; ++i) {
    const double p = std::exp(l[size_t(i)] / T) / z;
    // 5 standard deviations of a binomial proportion.
    REQUIRE(std::abs(double(counts[size_t(i)]) / N - p) <= 5 * std::sqrt(p * (1 - p) / N));
  }
}
