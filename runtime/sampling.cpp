#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>

namespace rlkv {
namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

void Rng::set_state(const uint64_t s[4]) {
  for (int i = 0; i < 4; ++i) s_[i] = s[i];
}

int32_t sample_token(const float* logits, int64_t n, const SamplingParams& p, Rng& rng, SamplingScratch& ss) {
  auto& scratch = ss.candidates;
  if (p.greedy()) {
    int64_t best = -1;  // NaN never wins (not even at index 0); first index on ties; all NaN: 0
    for (int64_t i = 0; i < n; ++i)
      if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    return int32_t(best < 0 ? 0 : best);
  }
  // Candidates sorted by logit, descending; only as many as top-k needs.
  scratch.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) scratch[size_t(i)] = {std::isnan(logits[i]) ? -INFINITY : logits[i], int32_t(i)};
  auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int64_t k = (p.top_k > 0 && p.top_k < n) ? p.top_k : n;
  if (k < n) {
    std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), by_logit);
    // Every token tied with the k-th logit stays a candidate, as Hugging Face's and vLLM's top-k
    // keep them (only logits below the k-th go): bf16 logits tie often.
    const float kth = scratch[size_t(k - 1)].first;
    const auto tied_end = std::partition(scratch.begin() + k, scratch.end(),
                                         [&](const std::pair<float, int32_t>& c) { return c.first == kth; });
    std::sort(scratch.begin() + k, tied_end, by_logit);
    k = int64_t(tied_end - scratch.begin());
  } else if (p.top_p < 1.0) {
    std::sort(scratch.begin(), scratch.end(), by_logit);
  }
  // Softmax over the k candidates at the temperature (max-subtracted).
  float mx = -INFINITY;
  for (int64_t i = 0; i < k; ++i) mx = std::max(mx, scratch[size_t(i)].first);
  if (!std::isfinite(mx)) {
    // All candidates -inf: the first; some +inf: the first of those (exp would make every mass NaN).
    for (int64_t i = 0; i < k; ++i)
      if (scratch[size_t(i)].first == mx) return scratch[size_t(i)].second;
  }
  const double inv_t = 1.0 / p.temperature;
  double total = 0;
  auto& probs = ss.probs;
  probs.resize(size_t(k));
  for (int64_t i = 0; i < k; ++i) {
    probs[size_t(i)] = std::exp(double(scratch[size_t(i)].first - mx) * inv_t);
    total += probs[size_t(i)];
  }
  // Nucleus: the smallest prefix whose mass reaches top_p (the first candidate always stays).
  int64_t keep = k;
  if (p.top_p < 1.0) {
    double cum = 0;
    for (int64_t i = 0; i < k; ++i) {
      cum += probs[size_t(i)] / total;
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (int64_t i = 0; i < keep; ++i) total += probs[size_t(i)];
  }
  const double u = rng.uniform() * total;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[size_t(i)];
    if (u < acc) return scratch[size_t(i)].second;
  }
  return scratch[size_t(keep - 1)].second;
}

}  // namespace rlkv
