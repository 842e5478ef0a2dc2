// Head scores and binary head masks (docs/design.md section 3, last bullet; section 7 exports).
//
// Scores are [L, H_kv] row-major (layer-major), higher = more important. A mask at sparsity s keeps
// full every head whose score is >= the s-quantile of ALL L x H_kv scores (one global threshold,
// numpy's linear interpolation), after clipping to [0, 1] and adding noise in [0, 1e-6) to break
// ties: the rule of the paper's code, so masks are comparable with the published ones (scores are
// first rounded to the 9 significant digits the exports write). One
// difference, on purpose: the paper draws the noise at random, we use 1e-6 * (i + 0.5) / n for the
// i-th head (row-major), so a mask is a function of its scores. Heads with distinct scores get the
// paper's mask; among tied heads the later ones are kept first. The rule is applied as a count:
// the k = ceil(s (n - 1)) lowest-ranked heads are compressed, which are exactly the heads below the
// quantile when the ranked values are distinct, and still k heads when two of them tie exactly
// (two scores 1e-6 / n apart in the opposite order of the noise; the later head is kept).
// analysis/head_mask.py is the same rule in numpy, and a test checks both agree on the published
// score files.
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
  std::string format;          // rlkv-sglang | duo | json | checkpoint
  // What the source says about the run, when it says it (duo config.json, json, checkpoint).
  std::string model;
  int64_t sink = -1, window = -1;
  std::string warning;  // something the source holds that the scores overrule (load_mask_source logs it)
};

// Reads head scores from an `adapter_weights.tsv` (RLKV-SGLang) or `full_attention_heads.tsv`
// (DuoAttention; its config.json's sink_size / recent_size are read too) or a directory holding one,
// or an `rlkv-head-mask/v1` JSON file (`rlkv export --format json`). Checkpoints are read by the
// launch layer (they need HDF5).
HeadScores load_head_scores(const std::string& path);
// The files load_head_scores may read for `path` (a directory's score files and DuoAttention's
// config.json, the config.json beside a full_attention_heads.tsv, else the path itself): what a
// command's outputs must not replace.
std::vector<std::string> mask_source_files(const std::string& path);
HeadScores parse_head_scores(const std::string& text, const std::string& origin);

// 1 = full cache, 0 = compressed.
std::vector<uint8_t> mask_at_sparsity(const HeadScores& scores, double sparsity);
// The clipped, tie-broken scores the quantile rule ranks: each score as the exports write it (9
// significant digits) first, so a mask computed from a checkpoint is the mask of its exported file.
std::vector<double> ranked_scores(const HeadScores& scores);
// v rounded to the 9 significant digits the score files hold (printf %.9g, read back).
double score_as_written(double v);

// How many of n heads a mask at sparsity s compresses (at most n - 1: the top head stays full).
int64_t heads_compressed(int64_t num_heads, double sparsity);

// Uniformly random mask compressing as many heads as a score mask does (heads_compressed).
std::vector<uint8_t> random_mask(int64_t num_heads, double sparsity, uint64_t seed);

// Numpy-compatible linear-interpolation quantile of `values` (copied and sorted).
double quantile_linear(std::vector<double> values, double q);

}  // namespace rlkv
