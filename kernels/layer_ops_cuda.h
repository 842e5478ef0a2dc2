// Fused CUDA kernels for the elementwise parts of a decoder layer's decode step, which LibTorch
// runs as many small launches each (an RMSNorm alone is about eight: upcast, square, mean, add, rsqrt,
// multiply, downcast, weight). Each kernel here is one launch and computes what runtime/model.cpp's
// ATen expressions compute, in the same dtype and with the same roundings:
//   - add + RMSNorm: x <- x + delta (rounded to the dtype), then
//     out = w * dtype(x_fp32 * rsqrt(mean(x_fp32^2) + eps)) (the product rounded to the dtype);
//     delta null: no addition. Only the order of the fp32 sum of squares differs from ATen's.
//   - q / k / v from the fused projection: qkv rows [rows, (Hq + 2 Hkv) * head_dim] (row stride
//     qkv_stride elements) -> contiguous q [rows, Hq, hd], k [rows, Hkv, hd] (each head optionally
//     RMS-normed with q_norm / k_norm, as Qwen3 does, then rotated: x * cos + swap_halves(x) * sin,
//     each product and the sum rounded to the dtype, with sin's first half negated as Model::rope_tables
//     makes it) and v [rows, Hkv, hd] (a copy). cos / sin are [rows, hd] in the dtype.
//     Without q_norm / k_norm the result equals ATen's bit for bit. With kv_items, each row's k and
//     v heads are also stored into the KV cache in the same launch, as rlkv_kv_write_cuda would store
//     them (the decode step's KV write without a launch and a copy of its own).
//   - SiLU-and-multiply: gate_up rows [rows, 2 I] -> out [rows, I] = dtype(dtype(silu(gate)) * up).
// Every pointer is device memory, rows contiguous; `stream` is a cudaStream_t (nullptr: the default
// stream). Asynchronous; RLKV_STATUS_DEVICE_ERROR when a launch fails. Checked against those ATen
// expressions by tests/op_test_layer_ops.cpp: on the CPU under kernels/simt_emu.h in CI, and on a GPU.
#pragma once

#include "kernels/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rlkv_add_rms_norm_args {
  void* x;             // [rows, hidden], updated in place when delta is set
  const void* delta;   // [rows, hidden] or null
  const void* weight;  // [hidden]
  void* out;           // [rows, hidden]; may not alias x
  int64_t rows, hidden;
  float eps;
  rlkv_dtype dtype;
} rlkv_add_rms_norm_args;

typedef struct rlkv_qkv_rope_args {
  const void* qkv;  // [rows, qkv_stride], the first (Hq + 2 Hkv) * head_dim elements of each row used
  int64_t qkv_stride;
  const void* cos;     // [rows, head_dim]
  const void* sin;     // [rows, head_dim], first half negated
  const void* q_norm;  // [head_dim] or null (then k_norm must be null too)
  const void* k_norm;  // [head_dim] or null
  float eps;
  void* q;                                            // [rows, Hq, head_dim]
  void* k;                                            // [rows, Hkv, head_dim]
  void* v;                                            // [rows, Hkv, head_dim]
  int64_t rows, num_q_heads, num_kv_heads, head_dim;  // head_dim even, at most 1024
  rlkv_dtype dtype;
  // [rows * Hkv] device array, or null: item r * Hkv + h receives row r's k head h and v head h at
  // its slot (its k_src / v_src are not read). No two items may name the same row of a cache.
  const rlkv_kv_write_item* kv_items;
} rlkv_qkv_rope_args;

rlkv_status rlkv_add_rms_norm_cuda(const rlkv_add_rms_norm_args* args, void* stream);
rlkv_status rlkv_qkv_rope_cuda(const rlkv_qkv_rope_args* args, void* stream);
rlkv_status rlkv_silu_mul_cuda(const void* gate_up, void* out, int64_t rows, int64_t intermediate, rlkv_dtype dtype,
                               void* stream);

#ifdef __cplusplus
}
#endif
