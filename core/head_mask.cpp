#include "core/head_mask.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>

#include "core/error.h"

namespace rlkv {

HeadScores parse_head_scores(const std::string& text, const std::string& origin) {
  HeadScores s;
  s.source = origin;
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream row(line);
    std::string cell;
    int64_t cols = 0;
    while (row >> cell) {
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      RLKV_CHECK(end && *end == '\0' && std::isfinite(v), origin, ":", lineno, ": '", cell.substr(0, 40),
                 "' is not a finite number");
      s.values.push_back(v);
      ++cols;
    }
    RLKV_CHECK(s.num_kv_heads == 0 || cols == s.num_kv_heads, origin, ":", lineno, ": ", cols,
               " columns, earlier rows have ", s.num_kv_heads);
    s.num_kv_heads = cols;
    ++s.num_layers;
  }
  RLKV_CHECK(s.num_layers > 0, origin, ": no scores (expected one row per layer)");
  return s;
}

HeadScores load_head_scores(const std::string& path) {
  struct stat st {};
  RLKV_CHECK(::stat(path.c_str(), &st) == 0, path, ": no such file or directory");
  std::string file = path;
  if (S_ISDIR(st.st_mode)) {
    file.clear();
    for (const char* name : {"adapter_weights.tsv", "full_attention_heads.tsv"}) {
      const std::string f = path + "/" + name;
      if (::stat(f.c_str(), &st) == 0) {
        file = f;
        break;
      }
    }
    RLKV_CHECK(!file.empty(), path, ": no adapter_weights.tsv or full_attention_heads.tsv in the directory");
  }
  std::ifstream f(file, std::ios::binary);
  RLKV_CHECK(f.good(), file, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_head_scores(ss.str(), file);
}

double quantile_linear(std::vector<double> v, double q) {
  RLKV_ASSERT(!v.empty(), "quantile of nothing");
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  const double frac = pos - double(lo);
  return v[lo] + frac * (v[hi] - v[lo]);
}

std::vector<uint8_t> mask_at_sparsity(const HeadScores& s, double sparsity, uint64_t noise_seed) {
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "sparsity must be in [0, 1], got ", sparsity);
  std::mt19937_64 rng(noise_seed);
  std::uniform_real_distribution<double> noise(0.0, 1e-6);
  std::vector<double> v(s.values.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::clamp(s.values[i], 0.0, 1.0) + noise(rng);
  std::vector<uint8_t> keep(v.size(), 1);
  if (sparsity <= 0) return keep;
  const double thr = quantile_linear(v, sparsity);
  for (size_t i = 0; i < v.size(); ++i) keep[i] = v[i] >= thr ? 1 : 0;
  return keep;
}

std::vector<uint8_t> random_mask(int64_t n, double sparsity, uint64_t seed) {
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "sparsity must be in [0, 1], got ", sparsity);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t drop = int64_t(std::llround(sparsity * double(n)));
  std::vector<uint8_t> keep(size_t(n), 1);
  for (int64_t i = 0; i < drop; ++i) keep[size_t(order[size_t(i)])] = 0;
  return keep;
}

}  // namespace rlkv
