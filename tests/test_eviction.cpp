// The token-dropping rules (runtime/eviction.h) on hand-made attention patterns (the token that must
// go, goes) and on random caches against a float64 transcription of each published rule written
// here independently (H2O's heavy hitters, kvpress's SnapKV scores, R-KV's compute_scores and
// cal_similarity); budgets never exceeded, sink and window always kept.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "runtime/eviction.h"

using namespace rlkv;

namespace {

std::vector<int64_t> iota_positions(int64_t n, int64_t first = 0) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), first);
  return p;
}

// Positions of a cache that has already dropped tokens: sink 0..s-1, then a gappy run.
std::vector<int64_t> gappy_positions(int64_t n, int64_t sink, std::mt19937& rng) {
  std::vector<int64_t> p = iota_positions(std::min(n, sink));
  int64_t at = sink;
  while (int64_t(p.size()) < n) {
    at += 1 + int64_t(rng() % 3);
    p.push_back(at);
  }
  return p;
}

// The kept set every rule must respect.
void check_protected(const std::vector<int64_t>& kept, const std::vector<int64_t>& positions, const EvictionParams& p,
                     int64_t window) {
  const int64_t n = int64_t(positions.size());
  REQUIRE(int64_t(kept.size()) == std::min(n, p.budget));
  REQUIRE(std::is_sorted(kept.begin(), kept.end()));
  const std::set<int64_t> k(kept.begin(), kept.end());
  REQUIRE(k.size() == kept.size());
  for (int64_t i = 0; i < n; ++i) {
    if (positions[size_t(i)] < p.sink) CHECK(k.count(i));  // sink
    if (i >= n - window) CHECK(k.count(i));                // window
  }
}

// float64 transcriptions of the published scores, written as the references write them.
std::vector<double> ref_avg_pool(const std::vector<double>& x, int kernel) {
  std::vector<double> padded(size_t(kernel / 2), 0.0);
  padded.insert(padded.end(), x.begin(), x.end());
  padded.insert(padded.end(), size_t(kernel / 2), 0.0);
  std::vector<double> out;
  for (size_t i = 0; i + size_t(kernel) <= padded.size(); ++i)
    out.push_back(std::accumulate(padded.begin() + long(i), padded.begin() + long(i) + kernel, 0.0) / kernel);
  return out;
}

std::vector<double> ref_cal_similarity(const std::vector<std::vector<float>>& keys, double threshold) {
  const size_t n = keys.size();
  std::vector<std::vector<double>> s(n, std::vector<double>(n, 0.0));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double dot = 0, ni = 0, nj = 0;
      for (size_t k = 0; k < keys[i].size(); ++k) {
        dot += double(keys[i][k]) * keys[j][k];
        ni += double(keys[i][k]) * keys[i][k];
        nj += double(keys[j][k]) * keys[j][k];
      }
      s[i][j] = i == j ? 0.0 : dot / ((std::sqrt(ni) + 1e-8) * (std::sqrt(nj) + 1e-8));
    }
  for (size_t i = 0; i < n; ++i) {  // indices = arange * mask; retain = max over the row
    size_t retain = 0;
    for (size_t j = 0; j < n; ++j) retain = std::max(retain, s[i][j] > threshold ? j : size_t(0));
    s[i][retain] = 0.0;
  }
  std::vector<double> mean(n, 0.0);
  for (size_t j = 0; j < n; ++j)
    for (size_t i = 0; i < n; ++i) mean[j] += s[i][j] / double(n);
  const double m = *std::max_element(mean.begin(), mean.end());
  double z = 0;
  for (double& v : mean) z += v = std::exp(v - m);
  for (double& v : mean) v /= z;
  return mean;
}

}  // namespace

TEST_CASE("H2O: the lightest entry between the sink and the recent half goes") {
  EvictionParams p;
  p.budget = 8;
  p.sink = 1;
  p.window = 2;  // the recent part is max(window, budget / 2) = 4 entries
  const std::vector<int64_t> pos = {0, 3, 4, 9, 10, 11, 12, 13};
  // The sink and the four most recent have the smallest scores, and must stay anyway.
  CHECK(h2o_victim({0.0, 5.0, 1.0, 7.0, 0.0, 0.0, 0.0, 0.0}, pos, p) == 2);
  CHECK(h2o_victim({0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0}, pos, p) == 1);  // ties: the oldest
  p.window = 5;  // a window larger than half the budget protects more
  CHECK(h2o_victim({0.0, 5.0, 6.0, 0.5, 0.0, 0.0, 0.0, 0.0}, pos, p) == 1);
}

TEST_CASE("SnapKV: average-pooled attention of the last queries chooses the middle tokens") {
  EvictionParams p;
  p.budget = 6;
  p.sink = 1;
  p.window = 2;
  p.snap_pool = 3;
  // 10 entries; the queries attend to entry 5 heavily and to entry 2 a little.
  std::vector<double> a(10, 0.01);
  a[5] = 0.6;
  a[2] = 0.2;
  const auto kept = snapkv_keep({a, a}, iota_positions(10), p);
  // Kept: sink 0, window 8 and 9, and the 3 best pooled: 5's neighbours 4 and 6 outrank 2's.
  CHECK(kept == std::vector<int64_t>{0, 4, 5, 6, 8, 9});
}

TEST_CASE("SnapKV matches the float64 reference on random caches") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    EvictionParams p;
    p.sink = int64_t(rng() % 4);
    p.window = 1 + int64_t(rng() % 8);
    p.budget = p.sink + p.window + 1 + int64_t(rng() % 20);
    p.snap_pool = 5;
    const int64_t n = p.budget + 1 + int64_t(rng() % 40);
    const auto pos = gappy_positions(n, p.sink, rng);
    std::vector<std::vector<double>> probs(3, std::vector<double>(size_t(n)));
    for (auto& r : probs) {
      double z = 0;
      for (auto& v : r) z += v = u(rng);
      for (auto& v : r) v /= z;
    }
    const auto kept = snapkv_keep(probs, pos, p);
    check_protected(kept, pos, p, p.window);
    // Reference: mean over queries, avg-pool, then the top of the middle by score.
    std::vector<double> mean(size_t(n), 0.0);
    for (const auto& r : probs)
      for (int64_t i = 0; i < n; ++i) mean[size_t(i)] += r[size_t(i)] / 3.0;
    const auto pooled = ref_avg_pool(mean, 5);
    double lowest_kept = 1e9, highest_dropped = -1e9;
    const std::set<int64_t> k(kept.begin(), kept.end());
    for (int64_t i = 0; i < n - p.window; ++i) {
      if (pos[size_t(i)] < p.sink) continue;
      if (k.count(i))
        lowest_kept = std::min(lowest_kept, pooled[size_t(i)]);
      else
        highest_dropped = std::max(highest_dropped, pooled[size_t(i)]);
    }
    CHECK(lowest_kept >= highest_dropped - 1e-12);
  }
}

TEST_CASE("R-KV: redundancy equals the float64 transcription of cal_similarity") {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (int trial = 0; trial < 50; ++trial) {
    const size_t n = 2 + rng() % 30, d = 1 + rng() % 8;
    std::vector<std::vector<float>> keys(n, std::vector<float>(d));
    for (auto& k : keys)
      for (auto& v : k) v = nd(rng);
    if (n > 3) keys[n - 1] = keys[1];  // a near-duplicate pair
    const auto got = rkv_redundancy(keys, 0.5), want = ref_cal_similarity(keys, 0.5);
    for (size_t j = 0; j < n; ++j) CHECK(got[j] == Approx(want[j]).epsilon(1e-12));
  }
}

TEST_CASE("R-KV: of duplicate keys the older go, and importance keeps what queries read") {
  EvictionParams p;
  p.budget = 6;
  p.sink = 1;
  p.window = 2;
  p.rkv_queries = 2;
  p.rkv_pool = 1;
  p.rkv_lambda = 0.5;
  // Entries 2, 4 and 5 carry the same key; everything else is orthogonal; the queries read nothing in
  // particular (equal logits), so redundancy decides. Each entry's latest duplicate is exempt from
  // its similarity mass, so 2 collects it from 4 and 5, 4 from 5 only, and 5, the latest, from none.
  const int64_t n = 9, d = 9;
  std::vector<std::vector<float>> keys(n, std::vector<float>(d, 0.f));
  for (int64_t i = 0; i < n; ++i) keys[size_t(i)][size_t(i)] = 1.f;
  keys[4] = keys[2];
  keys[5] = keys[2];
  const std::vector<std::vector<double>> flat(2, std::vector<double>(size_t(n), 0.0));
  auto kept = rkv_keep(flat, keys, iota_positions(n), p);
  check_protected(kept, iota_positions(n), p, 2);
  CHECK(kept == std::vector<int64_t>{0, 3, 5, 6, 7, 8});  // 2 and 4 go; ties go to the more recent
  // The queries read entry 2 heavily: importance outweighs its redundancy and it stays.
  std::vector<std::vector<double>> reads(2, std::vector<double>(size_t(n), 0.0));
  for (auto& r : reads) r[2] = 8.0;
  kept = rkv_keep(reads, keys, iota_positions(n), p);
  CHECK(std::find(kept.begin(), kept.end(), 2) != kept.end());
}

TEST_CASE("every rule keeps the sink and the window and never exceeds its budget") {
  std::mt19937 rng(13);
  std::normal_distribution<float> nd;
  for (int trial = 0; trial < 100; ++trial) {
    EvictionParams p;
    p.sink = int64_t(rng() % 5);
    p.window = 1 + int64_t(rng() % 10);
    p.rkv_queries = 1 + int64_t(rng() % 8);
    p.budget = p.sink + std::max(p.window, p.rkv_queries) + 1 + int64_t(rng() % 30);
    const int64_t n = p.budget + int64_t(rng() % 50);
    const auto pos = gappy_positions(n, p.sink, rng);
    std::vector<std::vector<double>> rows(size_t(p.rkv_queries), std::vector<double>(size_t(n)));
    for (auto& r : rows)
      for (auto& v : r) v = nd(rng);
    std::vector<std::vector<float>> keys(size_t(n), std::vector<float>(4));
    for (auto& k : keys)
      for (auto& v : k) v = nd(rng);
    check_protected(rkv_keep(rows, keys, pos, p), pos, p, std::max(p.window, p.rkv_queries));
    for (auto& r : rows)
      for (auto& v : r) v = std::abs(v);
    check_protected(snapkv_keep(rows, pos, p), pos, p, p.window);
    if (n == p.budget) {
      std::vector<double> acc(static_cast<size_t>(n));
      for (auto& v : acc) v = std::abs(nd(rng));
      const int64_t victim = h2o_victim(acc, pos, p);
      CHECK(pos[size_t(victim)] >= p.sink);
      CHECK(victim < n - std::max(p.window, p.budget / 2));
    }
  }
}

TEST_CASE("a budget that leaves nothing beyond the sink and the window is a user error") {
  EvictionParams p;
  p.sink = 16;
  p.window = 64;
  p.budget = 80;
  for (const EvictionMethod m : {EvictionMethod::kH2O, EvictionMethod::kSnapKV, EvictionMethod::kRKV}) {
    CHECK(min_eviction_budget(m, p) == 81);
    CHECK_THROWS_WITH(check_eviction_params(m, p, "--budget"),
                      Catch::Matchers::Contains("--budget") && Catch::Matchers::Contains("80"));
  }
  p.budget = 81;
  for (const EvictionMethod m : {EvictionMethod::kH2O, EvictionMethod::kSnapKV, EvictionMethod::kRKV})
    CHECK_NOTHROW(check_eviction_params(m, p, "--budget"));
  CHECK_THROWS_WITH(parse_eviction_method("streamingllm", "--method"), Catch::Matchers::Contains("--method"));
  CHECK(parse_eviction_method("rkv", "--method") == EvictionMethod::kRKV);
}

TEST_CASE("H2O refuses a budget whose recent half leaves no entry to evict, and h2o_victim finds one at its least") {
  // A sink of 16 and a window of 8: the common rule accepts 25, but H2O keeps the last 12 of a full
  // cache of 25 entries besides the 16 sink ones, and nothing is left to evict.
  EvictionParams p;
  p.sink = 16;
  p.window = 8;
  p.budget = 25;
  CHECK_NOTHROW(check_eviction_params(EvictionMethod::kSnapKV, p, "--budget"));
  CHECK_THROWS_WITH(check_eviction_params(EvictionMethod::kH2O, p, "--budget"),
                    Catch::Matchers::Contains("H2O") && Catch::Matchers::Contains("at least 33"));
  for (int64_t b = min_eviction_budget(EvictionMethod::kH2O, p); b < 40; ++b) {
    p.budget = b;
    CHECK_NOTHROW(check_eviction_params(EvictionMethod::kH2O, p, "--budget"));
    std::vector<int64_t> positions(static_cast<size_t>(b));
    std::iota(positions.begin(), positions.end(), 0);
    const std::vector<double> acc(positions.size(), 1.0);
    const int64_t v = h2o_victim(acc, positions, p);
    CHECK(v >= p.sink);
    CHECK(v < b - std::max(p.window, b / 2));
  }
}

TEST_CASE("every count of the token-dropping rules is bounded, so that no capacity overflows") {
  EvictionParams p;
  p.sink = 4;
  p.window = 16;
  p.budget = int64_t(1) << 40;
  CHECK_THROWS_WITH(check_eviction_params(EvictionMethod::kSnapKV, p, "--budget"),
                    Catch::Matchers::Contains("budget must be in 1..16777216"));
  p.budget = 64;
  p.snap_every = std::numeric_limits<int64_t>::max() - 8;
  CHECK_THROWS_WITH(check_eviction_params(EvictionMethod::kSnapKV, p, "--budget"),
                    Catch::Matchers::Contains("SnapKV every"));
  p.snap_every = 128;
  p.rkv_queries = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_WITH(check_eviction_params(EvictionMethod::kRKV, p, "--budget"),
                    Catch::Matchers::Contains("R-KV queries"));
  p.rkv_queries = 8;
  p.budget = kMaxCacheSlots;
  p.rkv_buffer = kMaxCacheSlots;
  CHECK_NOTHROW(check_eviction_params(EvictionMethod::kRKV, p, "--budget"));
  CHECK(eviction_capacity(EvictionMethod::kRKV, p) == 2 * kMaxCacheSlots);
}
