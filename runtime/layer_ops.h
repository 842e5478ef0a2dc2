// The elementwise parts of a decoder layer (RMSNorm with its residual addition, q / k / v with rotary
// embedding, SiLU-and-multiply), in one place for runtime/model.cpp and its tests.
//
// Each takes `fused`: false computes with ATen operators (the reference: transformers' numerics,
// the CPU path and training); true runs the one-launch CUDA kernels of kernels/layer_ops_cuda.h on
// CUDA tensors, which give the same values (bit for bit but for the order of an RMSNorm's fp32 sum
// of squares). A decode step on a GPU is a few hundred such small launches per token otherwise.
// fused requires fused_layer_ops_available(device).
#pragma once

#include <ATen/ATen.h>

#include "kernels/attention.h"

namespace rlkv {

// True when this build runs the fused kernels on `device` (a CUDA device, CUDA kernels compiled and
// LibTorch with CUDA).
bool fused_layer_ops_available(at::Device device);

// w * dtype(x_fp32 * rsqrt(mean(x_fp32^2) + eps)) over the last dimension, in x's dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);

// x <- x + delta (delta undefined: x unchanged), then rms_norm(x, w, eps). x [rows, hidden] contiguous;
// fused updates it in place, the reference rebinds it to a new tensor.
at::Tensor add_rms_norm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& w, double eps, bool fused);

// x * cos + swap_halves(x) * sin over the last dimension (Model's rope tables: sin's first half negated).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The fused projection's rows qkv [B, (Hq + 2 Hkv) * hd] -> contiguous q [B, Hq, hd] and k [B, Hkv, hd]
// (RMS-normed per head by q_norm / k_norm when those are defined, then rotated by cos / sin
// [B, 1, hd]) and v [B, Hkv, hd]. `kv_items` (fused only): a device array of B * Hkv KV write items
// (kernels/attention.h) through which the same launch also stores k and v into the cache.
struct QkvHeads {
  at::Tensor q, k, v;
};
QkvHeads qkv_rope(const at::Tensor& qkv, int64_t num_q_heads, int64_t num_kv_heads, int64_t head_dim,
                  const at::Tensor& q_norm, const at::Tensor& k_norm, double eps, const at::Tensor& cos,
                  const at::Tensor& sin, bool fused, const rlkv_kv_write_item* kv_items = nullptr);

// gate_up [rows, 2 I] -> silu(gate) * up [rows, I].
at::Tensor silu_mul(const at::Tensor& gate_up, int64_t intermediate, bool fused);

}  // namespace rlkv
