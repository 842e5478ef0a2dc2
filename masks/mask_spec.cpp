// Head-mask specifications accepted wherever a mask is (generate, eval).
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#ifdef RLKV_WITH_DISTRIBUTED
#include "checkpoint/checkpoint.h"
#endif
#include "masks/head_mask.h"
#include "masks/mask_spec.h"
#include "runtime/model_config.h"

namespace rlkv {

std::vector<uint8_t> resolve_mask(const std::string& spec, double sparsity, bool sparsity_given, const ModelConfig& cfg,
                                  int64_t sink, int64_t window) {
  const int64_t n = cfg.num_layers * cfg.num_kv_heads;
  // The fixed masks take no sparsity: one given with them would be silently ignored.
  RLKV_CHECK(!sparsity_given || !(spec.empty() || spec == "full" || spec == "streaming"), "--sparsity goes with ",
             "--mask random[:SEED] or a score source (--mask ", spec.empty() ? "full" : spec, " fixes every head)");
  if (spec.empty() || spec == "full") return std::vector<uint8_t>(size_t(n), 1);
  if (spec == "streaming") return std::vector<uint8_t>(size_t(n), 0);
  RLKV_CHECK(sparsity_given, "--mask ", spec, " needs --sparsity S");
  // "random" or "random:SEED"; any other spec is a path ("random_run/ckpt-300.h5" included).
  if (spec == "random" || spec.rfind("random:", 0) == 0) {
    uint64_t seed = 0;
    if (spec.size() > 6) {
      // Digits only: std::stoull alone would take "-1" (as 2^64 - 1) and "12abc" (as 12).
      const std::string digits = spec.substr(7);
      const bool ok =
          !digits.empty() && digits.size() <= 19 && digits.find_first_not_of("0123456789") == std::string::npos;
      RLKV_CHECK(ok, "--mask: the seed in '", spec, "' must be a whole number of 1 to 19 digits");
      seed = std::stoull(digits);
    }
    return random_mask(n, sparsity, seed);
  }
  const HeadScores scores = load_head_scores_for(spec, cfg);
  if (sink >= 0 && window >= 1) warn_other_windows(scores, sink, window);
  return mask_at_sparsity(scores, sparsity);
}

void warn_other_windows(const HeadScores& s, int64_t sink, int64_t window) {
  if ((s.sink >= 0 && s.sink != sink) || (s.window >= 1 && s.window != window))
    log_warn(str_cat(s.source, " records S = ", s.sink, ", W = ", s.window, " (the windows its scores were learned ",
                     "with); this run uses S = ", sink, ", W = ", window));
}

HeadScores load_mask_source(const std::string& path) {
  HeadScores s;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0) {
#ifdef RLKV_WITH_DISTRIBUTED
    // A training checkpoint: the keep probabilities sigmoid(theta) are the scores.
    const CheckpointState ck = read_checkpoint(path);
    s.num_layers = ck.num_layers;
    s.num_kv_heads = ck.num_kv_heads;
    s.source = path;
    s.format = "checkpoint";
    s.model = ck.model;
    s.sink = ck.sink;
    s.window = ck.window;
    for (float t : ck.logits) s.values.push_back(1.0 / (1.0 + std::exp(-double(t))));
#else
    throw UserError(str_cat(path, ": reading checkpoints needs a build with RLKV_WITH_DISTRIBUTED=ON"));
#endif
  } else {
    s = load_head_scores(path);
    if (!s.warning.empty()) log_warn(s.warning);
  }
  return s;
}

HeadScores load_head_scores_for(const std::string& path, const ModelConfig& cfg) {
  HeadScores s = load_mask_source(path);
  RLKV_CHECK(s.num_layers == cfg.num_layers && s.num_kv_heads == cfg.num_kv_heads, s.source, ": scores are ",
             s.num_layers, " x ", s.num_kv_heads, ", the model has ", cfg.num_layers, " layers x ", cfg.num_kv_heads,
             " KV heads");
  return s;
}

}  // namespace rlkv
