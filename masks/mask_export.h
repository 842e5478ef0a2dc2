// Head masks for inference engines (docs/design.md section 7, `rlkv export`):
//   rlkv-sglang  DIR/adapter_weights.tsv: L rows, H_kv tab-separated scores in [0, 1], no header
//                (what the paper's SGLang fork loads with --adapter-load-path, binarising by
//                --rlkv-sparsity).
//   duo          DIR/full_attention_heads.tsv (same layout) + DIR/config.json with sink_size and
//                recent_size (DuoAttention's loader).
//   json         {"format": "rlkv-head-mask/v1", "model", "num_layers", "num_kv_heads", "sink",
//                "window", "sparsity", "scores", "full_attention", "kv_bytes_per_token"}.
//   layers       for engines with one window per layer (vLLM / HF `layer_types`, TensorRT-LLM
//                `max_attention_window`): a layer slides only when every KV head in it is compressed.
// Scores are written with 9 significant digits, so export -> import -> export is byte-identical.
// Every writer goes through a temporary name and a rename.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "masks/head_mask.h"

namespace rlkv {

struct ExportInfo {
  std::string model;
  int64_t sink = -1, window = -1;  // -1: unknown
  double sparsity = 0;
  int64_t head_dim = -1;                 // for kv_bytes_per_token (-1: unknown)
  int64_t bytes_per_element = 2;         // the inference engine's KV dtype (bf16 / fp16 by default)
  int64_t max_sequence_length = 131072;  // window of a full layer in max_attention_window
};

// The files a directory format writes in DIR ("rlkv-sglang", "duo"); empty for the file formats.
std::vector<std::string> export_file_names(const std::string& format);

// Whether a directory format ("rlkv-sglang", "duo") may be written into `dir` (UserError if not):
// it holds no score file of the other format, and a config.json there is a DuoAttention pattern's.
// The exports check it again; commands check it before the work whose result they write.
void check_export_dir(const std::string& dir, const std::string& format);

void export_rlkv_sglang(const std::string& dir, const HeadScores& s);
void export_duo(const std::string& dir, const HeadScores& s, const ExportInfo& info);
void export_json(const std::string& path, const HeadScores& s, const std::vector<uint8_t>& keep,
                 const ExportInfo& info);
// Returns the realised sparsity (fraction of KV heads in sliding-window layers).
double export_layers(const std::string& path, const HeadScores& s, const std::vector<uint8_t>& keep,
                     const ExportInfo& info);

}  // namespace rlkv
