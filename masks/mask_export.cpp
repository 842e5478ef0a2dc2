#include "masks/mask_export.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"

namespace rlkv {
namespace {

void make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  RLKV_CHECK(!ec && std::filesystem::is_directory(dir), dir, ": cannot create the output directory");
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

double clip01(double v) { return std::clamp(v, 0.0, 1.0); }

nlohmann::json rows(const HeadScores& s) {
  nlohmann::json out = nlohmann::json::array();
  for (int64_t l = 0; l < s.num_layers; ++l) {
    nlohmann::json r = nlohmann::json::array();
    for (int64_t h = 0; h < s.num_kv_heads; ++h)
      r.push_back(score_as_written(clip01(s.values[size_t(l * s.num_kv_heads + h)])));
    out.push_back(r);
  }
  return out;
}

std::string format_score_table(const HeadScores& s) {  // the TSV text
  std::string out;
  for (int64_t l = 0; l < s.num_layers; ++l) {
    for (int64_t h = 0; h < s.num_kv_heads; ++h)
      out += (h ? "\t" : "") + num(clip01(s.values[size_t(l * s.num_kv_heads + h)]));
    out += "\n";
  }
  return out;
}

}  // namespace

std::vector<std::string> export_file_names(const std::string& format) {
  if (format == "rlkv-sglang") return {"adapter_weights.tsv"};
  if (format == "duo") return {"full_attention_heads.tsv", "config.json"};
  return {};
}

namespace {

// A mask directory holds one format: the loader refuses a directory with both score files, so writing
// one format's file beside the other's would leave a directory no command can read.
void check_not_other_format(const std::string& dir, const char* other) {
  std::error_code ec;
  RLKV_CHECK(!std::filesystem::exists(dir + "/" + other, ec), dir, ": already holds ", other,
             " (another format); a mask directory holds one format, give --output a directory of its own");
}

}  // namespace

void check_export_dir(const std::string& dir, const std::string& format) {
  if (format == "rlkv-sglang") {
    check_not_other_format(dir, "full_attention_heads.tsv");
    return;
  }
  RLKV_ASSERT(format == "duo", "check_export_dir: not a directory format: ", format);
  check_not_other_format(dir, "adapter_weights.tsv");
  // DuoAttention's pattern directory has a config.json of its own: never write over another one (a
  // model's, when --output names a model directory).
  const std::string cfg_path = dir + "/config.json";
  std::error_code ec;
  if (!std::filesystem::exists(cfg_path, ec)) return;
  nlohmann::json old;
  std::ifstream in(cfg_path);
  try {
    in >> old;
  } catch (const std::exception&) {
  }
  RLKV_CHECK(old.is_object() && old.contains("sink_size") && old.contains("recent_size"), cfg_path,
             ": exists and is not a DuoAttention pattern's config (a model's?); give --output a directory of its own");
}

void export_rlkv_sglang(const std::string& dir, const HeadScores& s) {
  check_export_dir(dir, "rlkv-sglang");
  make_dir(dir);
  write_file_atomic(dir + "/adapter_weights.tsv", format_score_table(s));
}

void export_duo(const std::string& dir, const HeadScores& s, const ExportInfo& info) {
  RLKV_CHECK(info.sink >= 0 && info.window >= 1,
             "duo export needs the windows: give --sink S --window W (the source "
             "does not record them)");
  check_export_dir(dir, "duo");
  make_dir(dir);
  // Both files are composed before either is written: nothing fails between the two writes.
  nlohmann::json cfg = {{"sink_size", info.sink},
                        {"recent_size", info.window},
                        {"sparsity", info.sparsity},
                        {"exported_by", "rlkv"},
                        {"source", s.source}};
  if (!info.model.empty()) cfg["model"] = info.model;
  const std::string table = format_score_table(s), config = dump_json(cfg, 2) + "\n";
  write_file_atomic(dir + "/full_attention_heads.tsv", table);
  write_file_atomic(dir + "/config.json", config);
}

void export_json(const std::string& path, const HeadScores& s, const std::vector<uint8_t>& keep,
                 const ExportInfo& info) {
  nlohmann::json full = nlohmann::json::array();
  int64_t full_heads = 0;
  for (int64_t l = 0; l < s.num_layers; ++l) {
    nlohmann::json r = nlohmann::json::array();
    for (int64_t h = 0; h < s.num_kv_heads; ++h) {
      const int k = keep[size_t(l * s.num_kv_heads + h)] ? 1 : 0;
      full_heads += k;
      r.push_back(k);
    }
    full.push_back(r);
  }
  nlohmann::json j = {{"format", "rlkv-head-mask/v1"},
                      {"model", info.model},
                      {"num_layers", s.num_layers},
                      {"num_kv_heads", s.num_kv_heads},
                      {"sink", info.sink >= 0 ? nlohmann::json(info.sink) : nlohmann::json(nullptr)},
                      {"window", info.window >= 0 ? nlohmann::json(info.window) : nlohmann::json(nullptr)},
                      {"sparsity", info.sparsity},
                      {"scores", rows(s)},
                      {"full_attention", full}};
  // Per generated token, only full heads grow the cache (compressed heads are a constant ring):
  // 2 (K and V) * bytes * head_dim per full head, summed over layers.
  if (info.head_dim > 0)
    j["kv_bytes_per_token"] = 2 * info.bytes_per_element * info.head_dim * full_heads;
  else
    j["kv_bytes_per_token"] = nullptr;
  write_file_atomic(path, dump_json(j) + "\n");
}

double export_layers(const std::string& path, const HeadScores& s, const std::vector<uint8_t>& keep,
                     const ExportInfo& info) {
  RLKV_CHECK(info.window >= 1, "layers export needs the window: give --window W (the source does not record it)");
  nlohmann::json types = nlohmann::json::array(), windows = nlohmann::json::array();
  int64_t sliding_heads = 0;
  for (int64_t l = 0; l < s.num_layers; ++l) {
    bool all_compressed = true;
    for (int64_t h = 0; h < s.num_kv_heads; ++h) all_compressed &= keep[size_t(l * s.num_kv_heads + h)] == 0;
    types.push_back(all_compressed ? "sliding_attention" : "full_attention");
    windows.push_back(all_compressed ? info.window : info.max_sequence_length);
    sliding_heads += all_compressed ? s.num_kv_heads : 0;
  }
  const double realised = double(sliding_heads) / double(s.num_layers * s.num_kv_heads);
  nlohmann::json j = {{"format", "rlkv-layer-windows/v1"},
                      {"model", info.model},
                      {"per_head_sparsity", info.sparsity},
                      {"realised_sparsity", realised},
                      {"sliding_window", info.window},
                      {"sink", info.sink >= 0 ? nlohmann::json(info.sink) : nlohmann::json(nullptr)},
                      // Hugging Face / vLLM: config.json "layer_types" and "sliding_window".
                      {"layer_types", types},
                      // TensorRT-LLM: --max_attention_window_size, one value per layer (sink tokens via
                      // its sink_token_length when it supports them).
                      {"max_attention_window", windows}};
  write_file_atomic(path, dump_json(j) + "\n");
  return realised;
}

}  // namespace rlkv
