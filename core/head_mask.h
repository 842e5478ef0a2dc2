// Head scores and binary head masks (DESIGN.md section 3, last bullet; section 7 exports).
//
// Scores are [L, H_kv] row-major (layer-major), higher = more important. A mask at sparsity s keeps
// full every head whose score is >= the s-quantile of ALL L x H_kv scores (one global threshold,
// numpy's linear interpolation), after clipping to [0, 1] and adding uniform noise in [0, 1e-6) to
// break ties: the rule of the paper's code, so masks are comparable with the published ones.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

struct HeadScores {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  std::vector<double> values;  // [num_layers * num_kv_heads]
  std::string source;          // file it came from
};

// Reads a whitespace-separated table (one row per layer, no header): an `adapter_weights.tsv`
// (RLKV-SGLang) or `full_attention_heads.tsv` (DuoAttention), or a directory holding one of them.
HeadScores load_head_scores(const std::string& path);
HeadScores parse_head_scores(const std::string& text, const std::string& origin);

// 1 = full cache, 0 = compressed. `noise_seed` seeds the tie-breaking noise.
std::vector<uint8_t> mask_at_sparsity(const HeadScores& scores, double sparsity, uint64_t noise_seed = 0);

// Uniformly random mask compressing round(s * n) heads.
std::vector<uint8_t> random_mask(int64_t num_heads, double sparsity, uint64_t seed);

// Numpy-compatible linear-interpolation quantile of `values` (copied and sorted).
double quantile_linear(std::vector<double> values, double q);

}  // namespace rlkv
