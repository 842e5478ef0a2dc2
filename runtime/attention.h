// Thin binding from LibTorch tensors to the attention kernels (kernels/attention.h): checks shapes,
// dtypes and devices, dispatches on the device, and turns a bad kernel status into an exception.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "kernels/attention.h"

namespace rlkv {

// q [B, Hq, head_dim] (contiguous, the cache dtype); spans [B * Hkv] (KvCache::spans).
// Returns out [B, Hq, head_dim] in q's dtype.
at::Tensor decode_attention(const at::Tensor& q, const std::vector<kv_span>& spans, int64_t num_kv_heads,
                            float scale, int num_threads);

// Dense causal attention (prefill and training): q [B, T, Hq, hd], k / v [B, T, Hkv, hd] ->
// [B, T, Hq, hd]. GQA without repeating K/V; softmax in fp32 like transformers' eager attention.
at::Tensor dense_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale);

}  // namespace rlkv
