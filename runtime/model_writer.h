// Writing models in the Hugging Face directory format that Model::load (and transformers) read:
// config.json, model.safetensors, generation_config.json and tokenizer.json. The directory is
// assembled under a temporary name next to the target (DIR.tmp-<pid>-<n>, each file written durably,
// core/durable_file.h), an existing DIR is removed, and the temporary is renamed into place and its
// parent synced: an interrupted save never leaves a half-written DIR (a crash between the removal and
// the rename leaves no DIR but the complete temporary).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/model_config.h"

namespace rlkv {

class Model;

// Writes `tensors` (any of F32 / BF16 / F16, made contiguous on CPU) as one safetensors file, durably
// (core/durable_file.h).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// config.json text for `cfg` in the classic hub layout (rope_theta / rope_scaling / torch_dtype).
std::string model_config_json(const ModelConfig& cfg, const std::string& torch_dtype);

// Saves `model` as a complete HF directory at `dir` (replacing it), with `tokenizer_json` as its
// tokenizer.json.
void save_hf_model(const Model& model, const std::string& dir, const std::string& tokenizer_json);

}  // namespace rlkv
