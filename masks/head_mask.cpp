#include "masks/head_mask.h"

#include <sys/stat.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"

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
    std::istringstream row(line);
    std::string cell;
    int64_t cols = 0;
    while (row >> cell) {
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      RLKV_CHECK(end == cell.c_str() + cell.size() && std::isfinite(v), origin, ":", lineno, ": '",
                 one_line(cell, 40, OneLine::kEscapeBytes), "' is not a finite number");
      s.values.push_back(v);
      ++cols;
    }
    if (cols == 0) continue;  // a blank line (any whitespace: the cells are split on isspace)
    RLKV_CHECK(s.num_kv_heads == 0 || cols == s.num_kv_heads, origin, ":", lineno, ": ", cols,
               " columns, earlier rows have ", s.num_kv_heads);
    s.num_kv_heads = cols;
    ++s.num_layers;
  }
  RLKV_CHECK(s.num_layers > 0, origin, ": no scores (expected one row per layer)");
  return s;
}

namespace {

// A recorded cache window (the mask was learned with it, and exports carry it): absent or null, or an
// integer in lo..2^24 as the config keys cache.sink / cache.window; anything else is refused.
void read_window(const nlohmann::json& j, const char* key, int64_t lo, const std::string& origin, int64_t* out) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return;
  const auto& v = j.at(key);
  constexpr int64_t kMax = int64_t(1) << 24;
  const bool ok = v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= kMax &&
                  !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMax));
  RLKV_CHECK(ok, origin, ": '", key, "' must be an integer in ", lo, "..", kMax, ", got ", v.dump());
  *out = v.get<int64_t>();
}

std::string slurp(const std::string& file) {
  check_input_file(file, "a head-mask file");
  std::ifstream f(file, std::ios::binary);
  RLKV_CHECK(f.good(), file, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

HeadScores parse_mask_json(const std::string& text, const std::string& origin) {
  const nlohmann::json j = parse_json_strict(text, origin, "mask file");
  // j.value("format", "") would throw a type error for a "format" that is not a string.
  RLKV_CHECK(j.is_object() && j.contains("format") && j["format"] == "rlkv-head-mask/v1", origin,
             ": not an rlkv-head-mask/v1 file (missing \"format\": \"rlkv-head-mask/v1\")");
  RLKV_CHECK(j.contains("scores") && j["scores"].is_array() && !j["scores"].empty(), origin,
             ": 'scores' must be a non-empty list of rows");
  HeadScores s;
  s.source = origin;
  s.format = "json";
  for (const auto& row : j["scores"]) {
    RLKV_CHECK(row.is_array() && !row.empty(), origin, ": every row of 'scores' must be a non-empty list");
    RLKV_CHECK(s.num_kv_heads == 0 || int64_t(row.size()) == s.num_kv_heads, origin,
               ": 'scores' rows differ in length");
    s.num_kv_heads = int64_t(row.size());
    for (const auto& v : row) {
      RLKV_CHECK(v.is_number() && std::isfinite(v.get<double>()), origin, ": 'scores' holds a non-number");
      s.values.push_back(v.get<double>());
    }
    ++s.num_layers;
  }
  if (j.contains("model") && j["model"].is_string()) s.model = j["model"];
  read_window(j, "sink", 0, origin, &s.sink);
  read_window(j, "window", 1, origin, &s.window);
  // The shape fields and the binary mask are what the export derived from the scores; a hand edit
  // of either changes nothing, so it is refused (shape) or named (mask) rather than ignored.
  for (const auto& [key, n] : {std::pair<const char*, int64_t>{"num_layers", s.num_layers},
                               std::pair<const char*, int64_t>{"num_kv_heads", s.num_kv_heads}})
    RLKV_CHECK(!j.contains(key) || j[key].is_null() || (j[key].is_number_integer() && j[key].get<int64_t>() == n),
               origin, ": '", key, "' is ", j[key].dump(), " but 'scores' has ", s.num_layers, " rows of ",
               s.num_kv_heads);
  if (j.contains("full_attention") && !j["full_attention"].is_null() && j.contains("sparsity") &&
      j["sparsity"].is_number() && j["sparsity"].get<double>() >= 0 && j["sparsity"].get<double>() <= 1) {
    const std::vector<uint8_t> keep = mask_at_sparsity(s, j["sparsity"].get<double>());
    nlohmann::json expect = nlohmann::json::array();
    for (int64_t l = 0; l < s.num_layers; ++l) {
      nlohmann::json row = nlohmann::json::array();
      for (int64_t h = 0; h < s.num_kv_heads; ++h) row.push_back(int(keep[size_t(l * s.num_kv_heads + h)]));
      expect.push_back(row);
    }
    if (j["full_attention"] != expect)
      s.warning = str_cat(origin, ": 'full_attention' is not the mask of its 'scores' at sparsity ",
                          j["sparsity"].dump(), "; masks are made from the scores (edit those)");
  }
  return s;
}

}  // namespace

HeadScores load_head_scores(const std::string& path) {
  struct stat st {};
  RLKV_CHECK(::stat(path.c_str(), &st) == 0, path, ": no such file or directory");
  if (!S_ISDIR(st.st_mode) && path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0)
    return parse_mask_json(slurp(path), path);
  std::string file = path;
  if (S_ISDIR(st.st_mode)) {
    file.clear();
    for (const char* name : {"adapter_weights.tsv", "full_attention_heads.tsv"}) {
      const std::string f = path + "/" + name;
      if (::stat(f.c_str(), &st) != 0) continue;
      RLKV_CHECK(file.empty(), path, ": holds both adapter_weights.tsv and full_attention_heads.tsv; give the file ",
                 "to use");
      file = f;
    }
    RLKV_CHECK(!file.empty(), path, ": no adapter_weights.tsv or full_attention_heads.tsv in the directory");
  }
  HeadScores s = parse_head_scores(slurp(file), file);
  const std::string base = file.substr(file.find_last_of('/') + 1);
  s.format = base == "full_attention_heads.tsv" ? "duo" : "rlkv-sglang";
  if (s.format == "duo") {
    // DuoAttention keeps its windows next to the pattern.
    const std::string cfg = file.substr(0, file.size() - base.size()) + "config.json";
    if (::stat(cfg.c_str(), &st) == 0) {
      const nlohmann::json j = parse_json_strict(slurp(cfg), cfg, "DuoAttention config");
      // Both windows or neither (then it is not the pattern's config): DuoAttention's loader reads both.
      const bool sink = j.is_object() && j.contains("sink_size"), recent = j.is_object() && j.contains("recent_size");
      RLKV_CHECK(sink == recent, cfg,
                 ": a DuoAttention config holds both 'sink_size' and 'recent_size', this one only '",
                 sink ? "sink_size" : "recent_size", "'");
      read_window(j, "sink_size", 0, cfg, &s.sink);
      read_window(j, "recent_size", 1, cfg, &s.window);
      if (sink && j.contains("model") && j["model"].is_string()) s.model = j["model"];
    }
  }
  return s;
}

std::vector<std::string> mask_source_files(const std::string& path) {
  if (path.empty()) return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return {path + "/adapter_weights.tsv", path + "/full_attention_heads.tsv", path + "/config.json"};
  const std::string base = path.substr(path.find_last_of('/') + 1);
  if (base == "full_attention_heads.tsv") return {path, path.substr(0, path.size() - base.size()) + "config.json"};
  return {path};
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

double score_as_written(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return std::strtod(buf, nullptr);
}

std::vector<double> ranked_scores(const HeadScores& s) {
  const double n = double(s.values.size());
  std::vector<double> v(s.values.size());
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = std::clamp(score_as_written(s.values[i]), 0.0, 1.0) + 1e-6 * (double(i) + 0.5) / n;
  return v;
}

int64_t heads_compressed(int64_t n, double sparsity) {
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "sparsity must be in [0, 1], got ", sparsity);
  if (n <= 0 || sparsity <= 0) return 0;
  // The heads strictly below numpy's linear-interpolation quantile at virtual index s (n - 1), when
  // the ranked values are distinct: its integer part when it is whole, else one more.
  return std::min<int64_t>(n - 1, int64_t(std::ceil(sparsity * double(n - 1))));
}

std::vector<uint8_t> mask_at_sparsity(const HeadScores& s, double sparsity) {
  const std::vector<double> v = ranked_scores(s);
  const int64_t k = heads_compressed(int64_t(v.size()), sparsity);
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Lowest ranked value first; an exact tie (scores that differ by the ramp's step in the other
  // direction) by index, so the later head is kept, as for tied scores.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] != v[b] ? v[a] < v[b] : a < b; });
  std::vector<uint8_t> keep(v.size(), 1);
  for (int64_t i = 0; i < k; ++i) keep[order[size_t(i)]] = 0;
  return keep;
}

std::vector<uint8_t> random_mask(int64_t n, double sparsity, uint64_t seed) {
  const int64_t drop = heads_compressed(n, sparsity);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<uint8_t> keep(size_t(n), 1);
  for (int64_t i = 0; i < drop; ++i) keep[size_t(order[size_t(i)])] = 0;
  return keep;
}

}  // namespace rlkv
