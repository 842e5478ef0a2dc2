// Compressed-cache attention kernels: the interface shared by the CPU reference (attention_cpu.cpp)
// and the CUDA implementation. No LibTorch here: raw pointers, sizes in elements,
// a dtype tag, and a status code. The binding in runtime/ checks shapes and turns a bad status into
// an exception.
//
// The KV cache as the kernels see it (docs/design.md section 5). Each (sequence, KV head) pair is one
// `rlkv_kv_span`: `len` slots of K and V rows of `head_dim` elements. A span is either
//   - paged (full heads): `pages` lists page ids; slot s lives in page pages[s / page_size] at row
//     s % page_size, and page p starts at element p * page_size * head_dim of the pool `k` / `v`;
//   - contiguous (compressed heads, pages == nullptr): slot s is row s of `k` / `v`. A compressed
//     head's S + W ring holds position p at slot p if p < S, else S + (p - S) mod W, so attending over
//     all of its min(n, S + W) slots is attending over exactly the S sink and W most recent positions.
// Attention over a set of slots does not depend on their order (RoPE is already applied to K), which
// is why one kernel serves both pools.
#pragma once

#include <string.h>
#include <cstddef>
#include <cstdint>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rlkv_dtype { RLKV_DTYPE_F32 = 0, RLKV_DTYPE_F16 = 1, RLKV_DTYPE_BF16 = 2 } rlkv_dtype;

typedef enum rlkv_status {
  RLKV_STATUS_OK = 0,
  RLKV_STATUS_BAD_ARGS = 1,      // a size, stride or pointer that cannot be right
  RLKV_STATUS_UNSUPPORTED = 2,   // a dtype / head_dim this implementation does not handle
  RLKV_STATUS_DEVICE_ERROR = 3,  // CUDA reported an error (see cudaGetLastError)
} rlkv_status;

size_t rlkv_dtype_size(rlkv_dtype dtype);

typedef struct rlkv_kv_span {
  const void* k;  // pool base (paged) or first row (contiguous)
  const void* v;
  const int32_t* pages;  // nullptr for contiguous
  int64_t page_size;     // rows per page (paged only)
  int64_t len;           // slots to attend over, >= 1
  // Optional output [len] (nullptr: none): each slot's softmax probability summed over the group's
  // query heads, for the token-dropping baselines' scores. The CPU reference writes it; the CUDA
  // kernels ignore it (the runtime keeps token dropping on the CPU).
  float* weights;
} rlkv_kv_span;

// One decode step: every sequence has one query token.
//   q   [num_seqs, num_q_heads, head_dim] with strides (q_stride_seq, q_stride_head), unit last stride
//   out [num_seqs, num_q_heads, head_dim] with strides (out_stride_seq, out_stride_head)
//   spans[s * num_kv_heads + h]: the cache of sequence s, KV head h; query head j reads KV head
//   j / (num_q_heads / num_kv_heads) (GQA).
// q, out and the caches share `dtype`; accumulation is fp32. out = softmax(q K^T * scale) V.
typedef struct rlkv_decode_args {
  int64_t num_seqs, num_q_heads, num_kv_heads, head_dim;
  const void* q;
  int64_t q_stride_seq, q_stride_head;
  void* out;
  int64_t out_stride_seq, out_stride_head;
  const rlkv_kv_span* spans;
  float scale;
  rlkv_dtype dtype;
  // Used by the CUDA implementation only (the CPU reference ignores them):
  int64_t max_len;          // an upper bound of every span's len (0: unknown, so no split-K)
  void* workspace;          // device scratch of rlkv_decode_attention_cuda_workspace_bytes() bytes
  int64_t workspace_bytes;  // (nullptr / 0 when that is 0)
  int32_t variant;          // rlkv_decode_variant: how the CUDA split kernel reads K (benchmarks compare them)
} rlkv_decode_args;

// CUDA decode-attention variants (benchmarks compare them; results agree to rounding):
//   TC: tensor-core MMAs over K / V tiles streamed through a cp.async pipeline, work planned on the
//       device from the spans' lengths (kernels/attention_cuda_tc.cuh); 16-bit caches, head_dim 64 /
//       128, up to 8 query heads per KV head;
//   LANE / COOP: the CUDA-core split kernel (each lane reads one slot's K row / lanes read rows
//       together and reduce), for every other shape and for comparison;
//   DEFAULT: TC where it applies, else LANE.
typedef enum rlkv_decode_variant {
  RLKV_DECODE_VARIANT_DEFAULT = 0,
  RLKV_DECODE_VARIANT_LANE = 1,
  RLKV_DECODE_VARIANT_COOP = 2,
  RLKV_DECODE_VARIANT_TC = 3,
} rlkv_decode_variant;

// Arguments for packed q and out [num_seqs, num_q_heads, head_dim] (the CUDA-only fields zero).
static inline rlkv_decode_args rlkv_decode_args_packed(int64_t num_seqs, int64_t num_q_heads, int64_t num_kv_heads,
                                                       int64_t head_dim, const void* q, void* out,
                                                       const rlkv_kv_span* spans, float scale, rlkv_dtype dtype) {
  rlkv_decode_args a;
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
typedef struct rlkv_kv_write_item {
  void* k;  // span base as in rlkv_kv_span
  void* v;
  const int32_t* pages;  // nullptr for contiguous
  int64_t page_size;
  int64_t slot;       // destination slot
  const void* k_src;  // head_dim elements of dtype
  const void* v_src;
} rlkv_kv_write_item;

// CPU reference implementations; `num_threads` <= 0 uses the OpenMP default.
rlkv_status rlkv_decode_attention_cpu(const rlkv_decode_args* args, int num_threads);
rlkv_status rlkv_kv_write_cpu(const rlkv_kv_write_item* items, int64_t num_items, int64_t head_dim, rlkv_dtype dtype,
                              int num_threads);

// Slot of position `pos` in a compressed head's ring of sink + window slots.
static inline int64_t rlkv_ring_slot(int64_t pos, int64_t sink, int64_t window) {
  return pos < sink ? pos : sink + (pos - sink) % window;
}

#ifdef __cplusplus
}
#endif
