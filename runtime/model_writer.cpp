#include "runtime/model_writer.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/coding.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "runtime/model.h"

namespace fs = std::filesystem;

namespace rlkv {
namespace {

const char* st_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "F32";
    case at::kBFloat16:
      return "BF16";
    case at::kHalf:
      return "F16";
    default:
      RLKV_CHECK(false, "safetensors writer: unsupported dtype ", c10::toString(t));
  }
  return "";
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = uint64_t(c.numel()) * uint64_t(c.element_size());
    header[name] = {
        {"dtype", st_dtype(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // data buffer 8-byte aligned, as HF writes it
  std::string head;
  put_fixed64(&head, h.size());
  DurableFileWriter out(path);
  out.append(head + h);
  for (const at::Tensor& c : data)
    out.append(std::string_view(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * size_t(c.element_size())));
  out.commit();
}

std::string model_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  const std::map<std::string, std::string> arch = {{"llama", "LlamaForCausalLM"},
                                                   {"mistral", "MistralForCausalLM"},
                                                   {"qwen2", "Qwen2ForCausalLM"},
                                                   {"qwen3", "Qwen3ForCausalLM"}};
  nlohmann::json j = {{"architectures", {arch.at(c.model_type)}},
                      {"model_type", c.model_type},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_layers},
                      {"num_attention_heads", c.num_q_heads},
                      {"num_key_value_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"rope_theta", c.rope_theta},
                      {"rope_scaling", nullptr},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"attention_bias", c.attention_bias},
                      {"attention_dropout", 0.0},
                      {"mlp_bias", false},
                      {"torch_dtype", torch_dtype},
                      {"use_cache", true}};
  if (!c.bos_token_ids.empty()) j["bos_token_id"] = c.bos_token_ids[0];
  if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids[0];
  if (!c.task.empty()) j["rlkv_task"] = c.task;
  RLKV_CHECK(c.rope_scaling.type == "none", "saving rope_scaling ", c.rope_scaling.type, " is not implemented");
  return j.dump(2) + "\n";
}

namespace {

// `dir` without a trailing "/" or "/." (so that its parent is the directory that holds it).
fs::path model_dir_path(const std::string& dir) {
  if (dir.empty()) throw UserError("model directory: empty path");
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
  return p;
}

void write_model_files(const Model& model, const fs::path& dir, const std::string& tokenizer_json) {
  const ModelConfig& c = model.config();
  write_safetensors((dir / "model.safetensors").string(), model.hf_tensors(), {{"format", "pt"}});
  write_file_atomic((dir / "tokenizer.json").string(), tokenizer_json);
  nlohmann::json gen = {{"_from_model_config", true}};
  if (!c.bos_token_ids.empty()) gen["bos_token_id"] = c.bos_token_ids[0];
  if (!c.eos_token_ids.empty()) gen["eos_token_id"] = c.eos_token_ids[0];
  write_file_atomic((dir / "generation_config.json").string(), gen.dump(2) + "\n");
  write_file_atomic((dir / "config.json").string(), model_config_json(c, dtype_name(model.dtype())));
}

}  // namespace

void check_model_dir(const std::string& dir) {
  const fs::path target = model_dir_path(dir);
  check_output_dir(target.string(), "model directory");  // a writable directory, or creatable by the save
  std::error_code ec;
  if (fs::exists(target / "model.safetensors.index.json", ec))
    throw UserError(
        one_line(str_cat(dir, ": holds sharded weights (model.safetensors.index.json), which a loader would ",
                         "read instead of the new model.safetensors: choose another directory")));
}

void save_hf_model(const Model& model, const std::string& dir, const std::string& tokenizer_json) {
  check_model_dir(dir);
  const fs::path target = model_dir_path(dir);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    write_model_files(model, target, tokenizer_json);  // in place: other entries stay
    return;
  }
  fs::create_directories(target.parent_path(), ec);
  if (ec) throw UserError(one_line(str_cat(dir, ": cannot create its parent directory (", ec.message(), ")")));
  const fs::path tmp = temp_path_for(target.string());
  fs::remove_all(tmp, ec);  // a leftover of a crashed process that had our pid
  fs::create_directories(tmp);
  try {
    write_model_files(model, tmp, tokenizer_json);
    rename_durably(tmp.string(), target.string(), ec);
    if (ec)
      throw UserError(one_line(str_cat(dir, ": cannot rename ", tmp.string(), " into place (", ec.message(), ")")));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace rlkv
