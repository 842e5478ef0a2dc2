// Thin binding from LibTorch tensors to the attention kernels (kernels/attention.h): checks shapes,
// dtypes and devices, dispatches on the device, and turns a bad kernel status into an exception.
// On CUDA the span and write-item records are copied to the device in one buffer per call on the
// current stream; the pools already live there, and so do the page lists when the caller says so
// (`pages_on_device`: KvCache's page table on a GPU); otherwise the page lists travel in that buffer.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "kernels/attention.h"

namespace rlkv {

// q [B, Hq, head_dim] (contiguous, the cache dtype); spans [B * Hkv] (KvCache::spans).
// Returns out [B, Hq, head_dim] in q's dtype.
at::Tensor decode_attention(const at::Tensor& q, const std::vector<rlkv_kv_span>& spans, int64_t num_kv_heads,
                            float scale, int num_threads, bool pages_on_device = false);

// Writes K/V rows into cache slots on `device` (the CPU reference, or the CUDA kernel for CUDA pools).
void kv_write(const std::vector<rlkv_kv_write_item>& items, int64_t head_dim, rlkv_dtype dtype, at::Device device,
              int num_threads, bool pages_on_device = false);

// The same kernels over tables that already live on the tensors' device (runtime/static_decode.h):
// `spans` [B * Hkv] / `items` [n] and everything they point at are device memory (host memory on the
// CPU); `max_len` bounds every span's len (it fixes the CUDA launch shape, so a graph can replay it).
// Nothing is copied from the host: both can be captured in a CUDA graph.
at::Tensor decode_attention_resident(const at::Tensor& q, const rlkv_kv_span* spans, int64_t num_kv_heads, float scale,
                                     int64_t max_len, int num_threads);
void kv_write_resident(const rlkv_kv_write_item* items, int64_t n, int64_t head_dim, rlkv_dtype dtype,
                       at::Device device, int num_threads);

// True when this build can run the kernels on CUDA tensors (CUDA kernels compiled and LibTorch with CUDA).
bool cuda_kernels_available();

// Dense causal attention (prefill and training): q [B, T, Hq, hd], k / v [B, T, Hkv, hd] ->
// [B, T, Hq, hd]. GQA without repeating K/V; softmax in fp32 like transformers' eager attention.
at::Tensor dense_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale);

// The layout both dense and streaming attention compute in: q [B, T, Hq, hd] -> [B, Hkv, G, T, hd],
// k / v [B, T, Hkv, hd] -> [B, Hkv, 1, T, hd] (the group shares K and V by broadcasting).
struct GroupedHeads {
  at::Tensor q, k, v;
};
GroupedHeads group_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace rlkv
