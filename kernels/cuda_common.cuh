// What the CUDA kernels of this directory share: the launch macros that let one source compile for
// the GPU (nvcc) and for the CPU under kernels/simt_emu.h (RLKV_SIMT_EMU: entry points get an _emu
// suffix, launches run in the emulator), and the conversions between storage dtypes and fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#ifdef RLKV_SIMT_EMU
#define RLKV_CUDA_FN(name) name##_emu
#define RLKV_DYN_SMEM(T, name) T* name = emu::dynamic_smem<T>()
#define RLKV_LAUNCH(kernel, grid, block, smem, stream, ...) emu::launch(grid, block, smem, kernel, __VA_ARGS__)
#define RLKV_LAUNCH_OK() true
#else
#include <cuda_runtime.h>
#define RLKV_CUDA_FN(name) name
#define RLKV_DYN_SMEM(T, name)                  \
  extern __shared__ float4 rlkv_dyn_smem_raw[]; \
  T* name = reinterpret_cast<T*>(rlkv_dyn_smem_raw)
#define RLKV_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#define RLKV_LAUNCH_OK() (cudaGetLastError() == cudaSuccess)
#endif

namespace rlkv_cuda {

// Row index (in rows of head_dim elements from the span base) of slot `slot` of a paged (pages set)
// or contiguous span or write item.
__device__ __forceinline__ int64_t row_of(const int32_t* pages, int64_t page_size, int64_t slot) {
  if (pages == nullptr) return slot;
  return int64_t(pages[slot / page_size]) * page_size + slot % page_size;
}

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

}  // namespace rlkv_cuda
