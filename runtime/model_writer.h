// Writing models in the Hugging Face directory format that Model::load (and transformers) read:
// config.json, model.safetensors, generation_config.json and tokenizer.json. A new DIR is assembled
// under a temporary name next to it (DIR.tmp-<pid>-<n>, each file written durably,
// core/durable_file.h) and renamed into place: an interrupted save never leaves a half-written DIR.
// An existing DIR is updated in place: each of the four files is replaced durably (the weights
// first, config.json last) and every other entry (a model card, evaluation results) is kept;
// nothing is deleted.
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

// Checks that `dir` can take a saved model, before the work that makes it (creating nothing):
// absent below a writable directory, or a writable directory that holds no sharded weights
// (model.safetensors.index.json, which a loader would read instead of the new model.safetensors). Throws a one-line
// UserError.
void check_model_dir(const std::string& dir);

// Saves `model` as an HF model directory at `dir` (check_model_dir; as above), with `tokenizer_json`
// as its tokenizer.json.
void save_hf_model(const Model& model, const std::string& dir, const std::string& tokenizer_json);

}  // namespace rlkv
