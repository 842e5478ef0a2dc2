// Token sampling for a batch of logits rows where they live (a GPU), by the rule of sample_token
// (runtime/sampling.h): greedy (first index on ties, NaN never wins); otherwise the softmax at the
// temperature over the top-k candidates, cut to the top-p nucleus, and one uniform per token from the
// row's own Rng, drawn on the host, picking by the inverse CDF. Computed with tensor ops, so only the
// B chosen tokens need come back to the host instead of B x vocabulary logits, and the host does B draws
// instead of B softmaxes and sorts (at a 128k vocabulary: ~65 MB copied and ~60 ms of one core per
// step at batch 128, against a GPU step of ~20 ms).
// Every token tied with a row's k-th logit is a candidate on both sides (Hugging Face's top-k).
// Differences from sample_token: candidates tied on their logit at the top-k boundary may be ordered
// differently; cumulative sums may round differently (a pick differs only when a uniform falls within
// rounding of a CDF step); a row whose logits are all -inf / NaN takes the first candidate but still
// consumes its uniform (sample_token does not draw for it).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "runtime/sampling.h"

namespace rlkv {

// logits [B, V] (any float dtype, any device); uniforms [B] in [0, 1) (ignored when greedy). Returns
// the tokens, [B] int32 on the logits' device (nothing is copied back: a tensor-parallel group
// broadcasts them there first).
at::Tensor sample_rows_on_device(const at::Tensor& logits, const SamplingParams& p,
                                 const std::vector<double>& uniforms);

}  // namespace rlkv
