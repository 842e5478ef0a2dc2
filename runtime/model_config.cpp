#include "runtime/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"

namespace rlkv {
namespace {

using json = nlohmann::json;

std::string read_file(const std::string& path) {
  check_input_file(path, "a JSON file");
  std::ifstream f(path, std::ios::binary);
  RLKV_CHECK(f.good(), path, ": cannot open (no such file or not readable)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Reader {
  const json& j;
  const std::string& origin;

  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    RLKV_CHECK(has(key), origin, ": missing key '", key, "'");
    return integer_at(j.at(key), key, lo, hi);
  }
  int64_t integer_or(const char* key, int64_t dflt, int64_t lo, int64_t hi) const {
    return has(key) ? integer(key, lo, hi) : dflt;
  }
  int64_t integer_at(const json& v, const char* key, int64_t lo, int64_t hi) const {
    RLKV_CHECK(v.is_number_integer(), origin, ": key '", key, "' must be an integer");
    const int64_t x = v.get<int64_t>();
    RLKV_CHECK(x >= lo && x <= hi, origin, ": key '", key, "' = ", x, " out of range [", lo, ", ", hi, "]");
    return x;
  }
  double number_or(const char* key, double dflt, double lo, double hi) const {
    if (!has(key)) return dflt;
    const json& v = j.at(key);
    RLKV_CHECK(v.is_number(), origin, ": key '", key, "' must be a number");
    const double x = v.get<double>();
    RLKV_CHECK(std::isfinite(x) && x >= lo && x <= hi, origin, ": key '", key, "' = ", x, " out of range");
    return x;
  }
  bool boolean_or(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    RLKV_CHECK(j.at(key).is_boolean(), origin, ": key '", key, "' must be true or false");
    return j.at(key).get<bool>();
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    RLKV_CHECK(j.at(key).is_string(), origin, ": key '", key, "' must be a string");
    return j.at(key).get<std::string>();
  }
  // An id or a list of ids (bos/eos_token_id).
  std::vector<int64_t> ids(const char* key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& v = j.at(key);
    if (v.is_array()) {
      for (const auto& e : v) out.push_back(integer_at(e, key, 0, INT32_MAX));
    } else {
      out.push_back(integer_at(v, key, 0, INT32_MAX));
    }
    return out;
  }
};

constexpr int64_t kMaxDim = int64_t(1) << 20;

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& origin) {
  const json j = parse_json_strict(text, origin, "model config");
  RLKV_CHECK(j.is_object(), origin, ": expected a JSON object");
  Reader r{j, origin};
  ModelConfig c;
  c.model_type = r.string_or("model_type", "");
  RLKV_CHECK(c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2" || c.model_type == "qwen3",
             origin, ": unsupported model_type '", c.model_type, "' (supported: llama, mistral, qwen2, qwen3)");
  c.vocab_size = r.integer("vocab_size", 1, INT32_MAX);
  c.hidden_size = r.integer("hidden_size", 1, kMaxDim);
  c.intermediate_size = r.integer("intermediate_size", 1, kMaxDim * 8);
  c.num_layers = r.integer("num_hidden_layers", 1, 4096);
  c.num_q_heads = r.integer("num_attention_heads", 1, 4096);
  c.num_kv_heads = r.integer_or("num_key_value_heads", c.num_q_heads, 1, 4096);
  RLKV_CHECK(c.num_q_heads % c.num_kv_heads == 0, origin, ": num_attention_heads (", c.num_q_heads,
             ") is not a multiple of num_key_value_heads (", c.num_kv_heads, ")");
  if (r.has("head_dim")) {
    c.head_dim = r.integer("head_dim", 2, 4096);
  } else {
    RLKV_CHECK(c.hidden_size % c.num_q_heads == 0, origin, ": hidden_size is not a multiple of num_attention_heads");
    c.head_dim = c.hidden_size / c.num_q_heads;
  }
  RLKV_CHECK(c.head_dim % 2 == 0, origin, ": head_dim must be even for RoPE, got ", c.head_dim);
  c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6, 0, 1);
  c.rope_theta = r.number_or("rope_theta", 10000.0, 1e-3, 1e12);
  c.max_position_embeddings = r.integer_or("max_position_embeddings", 0, 0, int64_t(1) << 40);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
  c.torch_dtype = r.string_or("torch_dtype", r.string_or("dtype", ""));
  c.bos_token_ids = r.ids("bos_token_id");
  c.eos_token_ids = r.ids("eos_token_id");
  c.task = r.string_or("rlkv_task", "");
  RLKV_CHECK(c.task.empty() || c.task == "toy" || c.task == "math", origin, ": rlkv_task must be toy or math, got '",
             c.task, "'");

  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases
  } else {
    c.attention_bias = r.boolean_or("attention_bias", false);
  }
  c.qk_norm = c.model_type == "qwen3";
  RLKV_CHECK(!r.boolean_or("mlp_bias", false), origin, ": mlp_bias = true is not supported");
  const std::string act = r.string_or("hidden_act", "silu");
  RLKV_CHECK(act == "silu", origin, ": hidden_act '", act, "' is not supported (only silu)");

  // Sliding-window attention would change which positions a head sees; refuse rather than ignore.
  if (r.has("sliding_window")) {
    const bool used = c.model_type == "mistral" ? true : r.boolean_or("use_sliding_window", false);
    const int64_t win = r.integer("sliding_window", 0, int64_t(1) << 40);
    RLKV_CHECK(!used || (c.max_position_embeddings > 0 && win >= c.max_position_embeddings), origin,
               ": sliding_window attention (", win, ") is not supported");
  }

  // transformers >= 5 writes `rope_parameters` (theta inside); older files `rope_theta` + `rope_scaling`.
  const char* rope_key = r.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  if (r.has("layer_types")) {
    RLKV_CHECK(j.at("layer_types").is_array(), origin, ": key 'layer_types' must be a list");
    for (const auto& t : j.at("layer_types"))
      RLKV_CHECK(t == "full_attention", origin, ": layer_types entry ", t.dump(),
                 " is not supported (only full_attention)");
  }
  if (r.has(rope_key)) {
    const json& rs = j.at(rope_key);
    RLKV_CHECK(rs.is_object(), origin, ": key '", rope_key, "' must be an object or null");
    if (rs.contains("rope_theta") && !rs.at("rope_theta").is_null())
      c.rope_theta = Reader{rs, origin}.number_or("rope_theta", c.rope_theta, 1e-3, 1e12);
    Reader s{rs, origin};
    std::string type = s.string_or("rope_type", s.string_or("type", "default"));
    if (type == "default") {
      c.rope_scaling.type = "none";
    } else if (type == "llama3") {
      c.rope_scaling.type = "llama3";
      c.rope_scaling.factor = s.number_or("factor", 8.0, 1e-6, 1e6);
      c.rope_scaling.low_freq_factor = s.number_or("low_freq_factor", 1.0, 1e-6, 1e6);
      c.rope_scaling.high_freq_factor = s.number_or("high_freq_factor", 4.0, 1e-6, 1e6);
      c.rope_scaling.original_max_position =
          s.integer_or("original_max_position_embeddings", 8192, 1, int64_t(1) << 40);
      RLKV_CHECK(c.rope_scaling.high_freq_factor != c.rope_scaling.low_freq_factor, origin,
                 ": rope_scaling.high_freq_factor must differ from low_freq_factor");
    } else if (type == "linear") {
      c.rope_scaling.type = "linear";
      c.rope_scaling.factor = s.number_or("factor", 1.0, 1e-6, 1e6);
    } else {
      throw UserError(str_cat(origin, ": rope_scaling type '", type, "' is not supported (default, linear, llama3)"));
    }
  }
  return c;
}

std::vector<std::string> model_files(const std::string& dir) {
  std::vector<std::string> out;
  if (dir.empty()) return out;
  for (const char* name :
       {"config.json", "generation_config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json"})
    out.push_back(dir + "/" + name);
  // The shards the index names, whatever their names (an unreadable index is the load's to report:
  // only a regular file of an index's size is opened here, a FIFO would block the open).
  const std::string index_path = dir + "/model.safetensors.index.json";
  constexpr uintmax_t kMaxIndexBytes = 100'000'000;  // the loader's cap
  std::error_code ec;
  if (!std::filesystem::is_regular_file(index_path, ec) ||
      std::filesystem::file_size(index_path, ec) > kMaxIndexBytes || ec)
    return out;
  std::ifstream f(index_path);
  if (!f.good()) return out;
  const json index = json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) return out;
  std::set<std::string> shards;  // each once, however many tensors it holds
  for (const auto& [tensor, file] : index["weight_map"].items())
    if (file.is_string() && shards.insert(file.get<std::string>()).second)
      out.push_back(dir + "/" + file.get<std::string>());
  return out;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  ModelConfig c = parse_model_config(read_file(path), path);
  const std::string gen = dir + "/generation_config.json";
  std::error_code ec;
  const bool has_gen = std::filesystem::exists(gen, ec);
  // Checked before opening: a device's read never ends, a FIFO's open waits for a writer.
  RLKV_CHECK(!has_gen || std::filesystem::is_regular_file(gen, ec), gen, ": not a regular file");
  std::ifstream g(gen);
  RLKV_CHECK(!has_gen || g.good(), gen, ": cannot read it");
  if (has_gen) {
    std::stringstream ss;
    ss << g.rdbuf();
    const json j = parse_json_strict(ss.str(), gen, "generation config");
    RLKV_CHECK(j.is_object(), gen, ": expected a JSON object");
    Reader r{j, gen};
    for (int64_t id : r.ids("eos_token_id"))
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end())
        c.eos_token_ids.push_back(id);
    if (c.bos_token_ids.empty()) c.bos_token_ids = r.ids("bos_token_id");
  }
  for (int64_t id : c.eos_token_ids)
    RLKV_CHECK(id >= 0 && id < c.vocab_size, dir, ": eos_token_id ", id, " is outside the vocabulary (", c.vocab_size,
               " tokens)");
  return c;
}

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / base^(arange(0, dim, 2) / dim), computed in float32.
    const float expo = float(2 * i) / float(c.head_dim);
    inv[size_t(i)] = double(1.0f / std::pow(float(c.rope_theta), expo));
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    for (auto& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are divided by `factor`, short ones
    // kept, and the band between is interpolated smoothly.
    const double low_wavelen = double(s.original_max_position) / s.low_freq_factor;
    const double high_wavelen = double(s.original_max_position) / s.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth =
            (double(s.original_max_position) / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace rlkv
