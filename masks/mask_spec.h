// Mask sources and mask specs, as every command that takes a mask reads them (generate, eval,
// export). A source is a file or directory of head scores; a spec is a source or a fixed rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "masks/head_mask.h"

namespace rlkv {

struct ModelConfig;

// A head mask from a spec: "full", "streaming", "random[:SEED]" (needs a sparsity), or a mask source
// binarised at the sparsity with the global-quantile rule. 1 = full cache.
// With sink >= 0 and window >= 1 (the run's cache), a source recording other windows is warned of.
std::vector<uint8_t> resolve_mask(const std::string& spec, double sparsity, bool sparsity_given, const ModelConfig& cfg,
                                  int64_t sink = -1, int64_t window = -1);
// Scores from any mask source: a training checkpoint (sigmoid(theta); needs a build with the
// distributed parts), an rlkv-sglang or duo directory or .tsv, or an rlkv-head-mask/v1 JSON file.
HeadScores load_mask_source(const std::string& path);
// The same, checked against the model's L x H_kv.
HeadScores load_head_scores_for(const std::string& path, const ModelConfig& cfg);
// One warning when the source records other cache windows than the run's (sink, window): its scores
// were learned for those.
void warn_other_windows(const HeadScores& s, int64_t sink, int64_t window);

}  // namespace rlkv
