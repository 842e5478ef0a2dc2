// Compressed-cache attention kernels: the interface shared by the CPU reference (attention_cpu.cpp)
// and the CUDA implementation. No LibTorch here: raw pointers, sizes in elements,
// a dtype tag, and a status code. The binding in runtime/ checks shapes and turns a bad status into
// an exception.
//
// The KV cache as the kernels see it (docs/design.md section 5). Each (sequence, KV head) pair is one
// `kv_span`: `len` slots of K and V rows of `head_dim` elements. A span is either
//   - paged (full heads): `pages` lists page ids; slot s lives in page pages[s / page_size] at row
//     s % page_size, and page p starts at element p * page_size * head_dim of the pool `k` / `v`;
//   - contiguous (compressed heads, pages == nullptr): slot s is row s of `k` / `v`. A compressed
//     head's S + W ring holds position p at slot p if p < S, else S + (p - S) mod W, so attending over
//     all of its min(n, S + W) slots is attending over exactly the S sink and W most recent positions.
// Attention over a set of slots does not depend on their order (RoPE is already applied to K), which
// is why one kernel serves both pools.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kv_dtype { KV_DTYPE_F32 = 0, KV_DTYPE_F16 = 1, KV_DTYPE_BF16 = 2 } kv_dtype;

typedef enum kernel_status {
  KERNEL_STATUS_OK = 0,
  KERNEL_STATUS_BAD_ARGS = 1,     // a size, stride or pointer that cannot be right
  KERNEL_STATUS_UNSUPPORTED = 2,  // a dtype / head_dim this implementation does not handle
  KERNEL_STATUS_DEVICE_ERROR = 3, // CUDA reported an error (see cudaGetLastError)
} kernel_status;

size_t kv_dtype_size(kv_dtype dtype);

typedef struct kv_span {
  const void* k;         // pool base (paged) or first row (contiguous)
  const void* v;
  const int32_t* pages;  // nullptr for contiguous
  int64_t page_size;     // rows per page (paged only)
  int64_t len;           // slots to attend over, >= 1
} kv_span;

// One decode step: every sequence has one query token.
//   q   [num_seqs, num_q_heads, head_dim] with strides (q_stride_seq, q_stride_head), unit last stride
//   out [num_seqs, num_q_heads, head_dim] with strides (out_stride_seq, out_stride_head)
//   spans[s * num_kv_heads + h]: the cache of sequence s, KV head h; query head j reads KV head
//   j / (num_q_heads / num_kv_heads) (GQA).
// q, out and the caches share `dtype`; accumulation is fp32. out = softmax(q K^T * scale) V.
typedef struct decode_attention_args {
  int64_t num_seqs, num_q_heads, num_kv_heads, head_dim;
  const void* q;
  int64_t q_stride_seq, q_stride_head;
  void* out;
  int64_t out_stride_seq, out_stride_head;
  const kv_span* spans;
  float scale;
  kv_dtype dtype;
  // Used by the CUDA implementation only (the CPU reference ignores them):
  int64_t max_len;          // an upper bound of every span's len (0: unknown, so no split-K)
  void* workspace;          // device scratch of decode_attention_cuda_workspace_bytes() bytes
  int64_t workspace_bytes;  // (nullptr / 0 when that is 0)
  int32_t variant;          // decode_variant: how the CUDA split kernel reads K (benchmarks compare them)
} decode_attention_args;

// CUDA split-kernel variants for the scores: DEFAULT (= LANE until a GPU measurement says otherwise);
// LANE: each lane reads one slot's whole K row; COOP: lanes read rows together (coalesced) and reduce.
typedef enum decode_variant { DECODE_VARIANT_DEFAULT = 0, DECODE_VARIANT_LANE = 1, DECODE_VARIANT_COOP = 2 } decode_variant;

// Arguments for packed q and out [num_seqs, num_q_heads, head_dim] (the CUDA-only fields zero).
static inline decode_attention_args decode_attention_args_packed(int64_t num_seqs, int64_t num_q_heads,
                                                                 int64_t num_kv_heads, int64_t head_dim,
                                                                 const void* q, void* out, const kv_span* spans,
                                                                 float scale, kv_dtype dtype) {
  decode_attention_args a;
  memset(&a, 0, sizeof a);
  a.num_seqs = num_seqs;
  a.num_q_heads = num_q_heads;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.q = q;
  a.q_stride_seq = num_q_heads * head_dim;
  a.q_stride_head = head_dim;
  a.out = out;
  a.out_stride_seq = num_q_heads * head_dim;
  a.out_stride_head = head_dim;
  a.spans = spans;
  a.scale = scale;
  a.dtype = dtype;
  return a;
}

// Writes one K and V row per item into its cache slot (the new token, or prefill positions).
typedef struct kv_write_item {
  void* k;               // span base as in kv_span
  void* v;
  const int32_t* pages;  // nullptr for contiguous
  int64_t page_size;
  int64_t slot;          // destination slot
  const void* k_src;     // head_dim elements of dtype
  const void* v_src;
} kv_write_item;

// CPU reference implementations; `num_threads` <= 0 uses the OpenMP default.
kernel_status decode_attention_cpu(const decode_attention_args* args, int num_threads);
kernel_status kv_write_cpu(const kv_write_item* items, int64_t num_items, int64_t head_dim, kv_dtype dtype,
                           int num_threads);

// Slot of position `pos` in a compressed head's ring of sink + window slots.
static inline int64_t kv_ring_slot(int64_t pos, int64_t sink, int64_t window) {
  return pos < sink ? pos : sink + (pos - sink) % window;
}

#ifdef __cplusplus
}
#endif
