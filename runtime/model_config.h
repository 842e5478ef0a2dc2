// The architecture of a Llama-family decoder, read from a Hugging Face `config.json`.
// Supported `model_type`s: llama, mistral, qwen2, qwen3 (and their *ForCausalLM architectures).
// Anything the runtime cannot honour (another model type, a rope scaling it does not implement,
// sliding-window attention on a Mistral) is refused with a UserError naming the file and the key,
// rather than silently computing something different from the published model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

struct RopeScaling {
  std::string type = "none";  // none | llama3 | linear
  double factor = 1.0;
  double low_freq_factor = 1.0;          // llama3
  double high_freq_factor = 4.0;         // llama3
  int64_t original_max_position = 8192;  // llama3
};

struct ModelConfig {
  std::string model_type;  // llama | mistral | qwen2 | qwen3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always; Llama when attention_bias = true)
  bool qk_norm = false;         // RMSNorm over head_dim on q and k before RoPE (Qwen3)
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  std::string torch_dtype;  // as stored; informational
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;  // from config.json and generation_config.json
  // The answer checker the directory declares for its task (`rlkv_task` in config.json: "toy" or
  // "math"); empty when it declares none. Commands use it unless told otherwise (--task, reward.task).
  std::string task;

  int64_t group_size() const { return num_q_heads / num_kv_heads; }
  int64_t kv_heads_total() const { return num_layers * num_kv_heads; }  // L x H_kv
};

// Reads DIR/config.json (and DIR/generation_config.json when present, for EOS ids).
ModelConfig load_model_config(const std::string& dir);

// The files of a model directory that a load reads (configurations, tokenizer, weights and their
// index), for the commands whose outputs must not replace them.
std::vector<std::string> model_files(const std::string& dir);
// Same from JSON text; `origin` names the file in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& origin);

// Inverse frequencies of RoPE, [head_dim / 2], with the config's scaling applied (float64, the
// runtime rounds to fp32 as transformers does).
std::vector<double> rope_inv_freq(const ModelConfig& cfg);

}  // namespace rlkv
