#include "runtime/eviction.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>

#include "core/config.h"
#include "core/error.h"

namespace rlkv {

EvictionMethod parse_eviction_method(const std::string& name, const std::string& what) {
  if (name == "h2o") return EvictionMethod::kH2O;
  if (name == "snapkv") return EvictionMethod::kSnapKV;
  if (name == "rkv") return EvictionMethod::kRKV;
  throw UserError(str_cat(what, ": expected h2o, snapkv or rkv, got '", name, "'"));
}

const char* eviction_method_name(EvictionMethod m) {
  switch (m) {
    case EvictionMethod::kH2O:
      return "h2o";
    case EvictionMethod::kSnapKV:
      return "snapkv";
    case EvictionMethod::kRKV:
      return "rkv";
  }
  return "?";
}

int64_t min_eviction_budget(EvictionMethod m, const EvictionParams& p) {
  const int64_t b = p.sink + std::max(p.window, p.rkv_queries) + 1;
  return m == EvictionMethod::kH2O ? std::max(b, 2 * p.sink + 1) : b;
}

void check_eviction_params(EvictionMethod m, const EvictionParams& p, const std::string& what) {
  for (const auto& [name, n, least] : {std::tuple<const char*, int64_t, int64_t>{"budget", p.budget, 1},
                                       {"sink", p.sink, 0},
                                       {"window", p.window, 1},
                                       {"SnapKV every", p.snap_every, 1},
                                       {"SnapKV queries", p.snap_queries, 1},
                                       {"SnapKV pool", p.snap_pool, 1},
                                       {"R-KV buffer", p.rkv_buffer, 1},
                                       {"R-KV queries", p.rkv_queries, 1},
                                       {"R-KV pool", p.rkv_pool, 1}})
    RLKV_CHECK(n >= least && n <= kMaxCacheSlots, what, ": ", name, " must be in ", least, "..", kMaxCacheSlots,
               ", got ", n);
  RLKV_CHECK(p.snap_pool % 2 == 1 && p.rkv_pool % 2 == 1, what, ": the pooling kernels must be odd");
  RLKV_CHECK(p.rkv_lambda >= 0 && p.rkv_lambda <= 1, what, ": R-KV lambda must be in [0, 1]");
  const int64_t least = min_eviction_budget(m, p);
  if (m == EvictionMethod::kH2O && least > p.sink + std::max(p.window, p.rkv_queries) + 1)
    RLKV_CHECK(p.budget >= least, what, ": H2O keeps the most recent half of a budget of ", p.budget,
               " tokens, which leaves nothing beyond the sink (", p.sink, ") to evict; give at least ", least);
  RLKV_CHECK(p.budget >= least, what, ": a budget of ", p.budget, " tokens leaves nothing beyond the sink (", p.sink,
             ") and the window (", std::max(p.window, p.rkv_queries), "); give more than their sum");
}

int64_t eviction_capacity(EvictionMethod m, const EvictionParams& p) {
  switch (m) {
    case EvictionMethod::kH2O:
      return p.budget;
    case EvictionMethod::kSnapKV:
      return p.budget + p.snap_every;
    case EvictionMethod::kRKV:
      return p.budget + p.rkv_buffer;
  }
  return p.budget;
}

namespace {

// Entries at the start holding sink positions (entries are in position order).
int64_t sink_entries(const std::vector<int64_t>& positions, int64_t sink) {
  return int64_t(std::lower_bound(positions.begin(), positions.end(), sink) - positions.begin());
}

// The sink entries, the last `window` entries, and the `budget - both` best-scored entries between
// them (`score[i]` for entry i; ties go to the more recent entry), ascending. Everything when the
// cache is within the budget.
std::vector<int64_t> keep_protected_and_top(const std::vector<double>& score, const std::vector<int64_t>& positions,
                                            int64_t budget, int64_t sink, int64_t window) {
  const int64_t n = int64_t(positions.size());
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (n <= budget) return all;
  const int64_t s = std::min(sink_entries(positions, sink), n);
  const int64_t w = std::min(window, n - s);
  std::vector<int64_t> middle(all.begin() + s, all.end() - w);
  const int64_t take = std::clamp<int64_t>(budget - s - w, 0, int64_t(middle.size()));
  std::stable_sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) {
    if (score[size_t(a)] != score[size_t(b)]) return score[size_t(a)] > score[size_t(b)];
    return a > b;
  });
  std::vector<int64_t> kept(all.begin(), all.begin() + s);
  kept.insert(kept.end(), middle.begin(), middle.begin() + take);
  kept.insert(kept.end(), all.end() - w, all.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Sliding pooling over x (stride 1, `kernel` odd, centred). Average: zero padding counted (the
// PyTorch default, count_include_pad); maximum: padding never wins.
std::vector<double> pool1d(const std::vector<double>& x, int64_t kernel, bool average) {
  const int64_t n = int64_t(x.size()), half = kernel / 2;
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double acc = average ? 0.0 : -std::numeric_limits<double>::infinity();
    for (int64_t j = i - half; j <= i + half; ++j) {
      if (j < 0 || j >= n) continue;
      acc = average ? acc + x[size_t(j)] : std::max(acc, x[size_t(j)]);
    }
    out[size_t(i)] = average ? acc / double(kernel) : acc;
  }
  return out;
}

std::vector<double> softmax(const std::vector<double>& x) {
  if (x.empty()) return {};
  const double m = *std::max_element(x.begin(), x.end());
  std::vector<double> e(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += e[i] = std::exp(x[i] - m);
  for (double& v : e) v /= sum;
  return e;
}

}  // namespace

int64_t h2o_victim(const std::vector<double>& acc, const std::vector<int64_t>& positions, const EvictionParams& p) {
  const int64_t n = int64_t(positions.size());
  RLKV_ASSERT(int64_t(acc.size()) == n && n >= 1, "h2o_victim: ", acc.size(), " scores for ", n, " entries");
  const int64_t s = sink_entries(positions, p.sink);
  const int64_t recent = std::max(p.window, p.budget / 2);
  const int64_t last = n - recent;  // entries [s, last) may go
  RLKV_ASSERT(last > s, "h2o_victim: no evictable entry (budget ", p.budget, ", ", n, " entries)");
  int64_t victim = s;
  for (int64_t i = s + 1; i < last; ++i)
    if (acc[size_t(i)] < acc[size_t(victim)]) victim = i;
  return victim;
}

std::vector<int64_t> snapkv_keep(const std::vector<std::vector<double>>& probs, const std::vector<int64_t>& positions,
                                 const EvictionParams& p) {
  const size_t n = positions.size();
  std::vector<double> mean(n, 0.0);
  for (const auto& row : probs) {
    RLKV_ASSERT(row.size() == n, "snapkv_keep: an attention row of ", row.size(), " for ", n, " entries");
    for (size_t i = 0; i < n; ++i) mean[i] += row[i] / double(probs.size());
  }
  return keep_protected_and_top(pool1d(mean, p.snap_pool, true), positions, p.budget, p.sink, p.window);
}

std::vector<double> rkv_redundancy(const std::vector<std::vector<float>>& keys, double threshold) {
  const size_t n = keys.size();
  std::vector<std::vector<double>> unit(n);
  for (size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (float v : keys[i]) norm += double(v) * double(v);
    norm = std::sqrt(norm) + 1e-8;
    for (float v : keys[i]) unit[i].push_back(double(v) / norm);
  }
  std::vector<double> column_mean(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> sim(n, 0.0);
    size_t latest_duplicate = 0;  // as the reference: 0 when none exceeds the threshold
    for (size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      double d = 0;
      for (size_t k = 0; k < unit[i].size(); ++k) d += unit[i][k] * unit[j][k];
      sim[j] = d;
      if (d > threshold) latest_duplicate = j;
    }
    sim[latest_duplicate] = 0.0;
    for (size_t j = 0; j < n; ++j) column_mean[j] += sim[j] / double(n);
  }
  return softmax(column_mean);
}

std::vector<int64_t> rkv_keep(const std::vector<std::vector<double>>& logits,
                              const std::vector<std::vector<float>>& keys, const std::vector<int64_t>& positions,
                              const EvictionParams& p) {
  const int64_t n = int64_t(positions.size()), obs = std::min<int64_t>(p.rkv_queries, n);
  RLKV_ASSERT(int64_t(keys.size()) == n, "rkv_keep: ", keys.size(), " keys for ", n, " entries");
  const int64_t past = n - obs;
  // Importance of the past tokens: each query's softmax over them, averaged, then max-pooled.
  std::vector<double> importance(size_t(past), 0.0);
  for (const auto& row : logits) {
    RLKV_ASSERT(int64_t(row.size()) == n, "rkv_keep: a logit row of ", row.size(), " for ", n, " entries");
    const std::vector<double> w = softmax(std::vector<double>(row.begin(), row.begin() + past));
    for (int64_t i = 0; i < past; ++i) importance[size_t(i)] += w[size_t(i)] / double(logits.size());
  }
  importance = pool1d(importance, p.rkv_pool, false);
  const std::vector<double> redundancy = rkv_redundancy(keys, p.rkv_threshold);
  std::vector<double> score(size_t(n), 0.0);  // the observation window is kept whatever its score
  for (int64_t i = 0; i < past; ++i)
    score[size_t(i)] = p.rkv_lambda * importance[size_t(i)] - (1 - p.rkv_lambda) * redundancy[size_t(i)];
  return keep_protected_and_top(score, positions, p.budget, p.sink, std::max(p.window, obs));
}

}  // namespace rlkv
