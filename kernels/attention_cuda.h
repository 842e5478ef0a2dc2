// CUDA implementations of the kernels of kernels/attention.h, with the same argument structs.
// Every pointer the arguments hold (q, out, spans, the spans' k / v / pages, the write items and
// their sources, the workspace) must be device memory; `stream` is a cudaStream_t (nullptr: the
// default stream). The calls are asynchronous; they return RLKV_STATUS_DEVICE_ERROR when a launch
// fails. Span bases (k / v) must be 16-byte aligned (rows are read with 16-byte loads).
// Split-K: when args->max_len bounds the span lengths, long spans are split over several blocks whose
// partial results go to args->workspace, which must hold rlkv_decode_attention_cuda_workspace_bytes(args)
// bytes (0 means none is needed; the size depends on the shapes, max_len and the current device).
// Shapes: head_dim 64 / 128 / 256 with up to 8 query heads per KV head take the fast split kernel
// (args->variant picks how it reads K: see rlkv_decode_variant); otherwise head_dim <= 256 and
// (query heads per KV head) * head_dim <= 4096.
// Checked against the CPU reference by tests/op_test_attention_cuda.cpp: on an H200 (every case passes,
// compute-sanitizer memcheck and racecheck clean) and, in CI, on the CPU under kernels/simt_emu.h.
#pragma once

#include "kernels/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

int64_t rlkv_decode_attention_cuda_workspace_bytes(const rlkv_decode_args* args);
rlkv_status rlkv_decode_attention_cuda(const rlkv_decode_args* args, void* stream);
rlkv_status rlkv_kv_write_cuda(const rlkv_kv_write_item* items, int64_t num_items, int64_t head_dim, rlkv_dtype dtype,
                               void* stream);

#ifdef __cplusplus
}
#endif
