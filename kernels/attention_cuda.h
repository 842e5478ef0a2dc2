// CUDA implementations of the kernels of kernels/attention.h, with the same argument structs.
// Every pointer the arguments hold (q, out, spans, the spans' k / v / pages, the write items and
// their sources) must be device memory; `stream` is a cudaStream_t (nullptr: the default stream).
// The calls are asynchronous; they return KERNEL_STATUS_DEVICE_ERROR when the launch fails.
// Limits of this version: head_dim <= 256 and (q heads per KV head) * head_dim <= 4096.
// STATUS: compiled in CI; not yet run on a GPU (no device was lent to the session that wrote it).
#pragma once

#include "kernels/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

kernel_status decode_attention_cuda(const decode_attention_args* args, void* stream);
kernel_status kv_write_cuda(const kv_write_item* items, int64_t num_items, int64_t head_dim, kv_dtype dtype,
                            void* stream);

#ifdef __cplusplus
}
#endif
