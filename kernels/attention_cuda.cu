// CUDA decode attention over per-head KV caches (interface: kernels/attention.h, attention_cuda.h).
//
// One thread block per (sequence, KV head): the block stages the GQA group's query rows in shared
// memory, then walks the span in chunks of kChunk slots with an online softmax (running max and sum
// per query head, rescaling the accumulator), so each K and V row is read from global memory once
// for the whole group, and any span length works without a score buffer of its size. Scores use one
// thread per slot (the K row read is a strided load; fine for a first version); the V accumulation
// uses threads over head_dim, so V rows are read coalesced. Accumulation is fp32 for every storage
// dtype. Paged spans index pages exactly as the CPU reference does. Split-K across slots for very
// long full caches and CUDA graphs are not in this version.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "kernels/attention_cuda.h"

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 128;      // slots scored per pass (= threads)
constexpr int kMaxGroupDim = 4096;  // floats of q / accumulator per block

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
__device__ __forceinline__ const T* row_ptr(const void* base, const int32_t* pages, int64_t page_size, int64_t slot,
                                            int64_t d) {
  if (pages == nullptr) return static_cast<const T*>(base) + slot * d;
  return static_cast<const T*>(base) + (int64_t(pages[slot / page_size]) * page_size + slot % page_size) * d;
}

__device__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = -FLT_MAX;
  for (int w = 0; w < kThreads / 32; ++w) r = fmaxf(r, red[w]);
  __syncthreads();
  return r;
}

__device__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) r += red[w];
  __syncthreads();
  return r;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(decode_attention_args a) {
  const int64_t h = blockIdx.x, s = blockIdx.y;
  const int64_t G = a.num_q_heads / a.num_kv_heads, D = a.head_dim;
  const kv_span sp = a.spans[s * a.num_kv_heads + h];
  extern __shared__ float smem[];
  float* q = smem;                  // [G, D]
  float* acc = q + G * D;           // [G, D]
  float* p = acc + G * D;           // [G, kChunk] probabilities of the chunk
  float* m = p + G * kChunk;        // [G] running max
  float* l = m + G;                 // [G] running sum
  float* red = l + G;               // [kThreads / 32]
  const T* qb = static_cast<const T*>(a.q);
  for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
    const int64_t g = i / D, d = i % D;
    q[i] = to_f(qb[s * a.q_stride_seq + (h * G + g) * a.q_stride_head + d]);
    acc[i] = 0.f;
  }
  if (threadIdx.x < G) {
    m[threadIdx.x] = -FLT_MAX;
    l[threadIdx.x] = 0.f;
  }
  __syncthreads();
  for (int64_t c0 = 0; c0 < sp.len; c0 += kChunk) {
    const int64_t slot = c0 + threadIdx.x;
    const bool valid = slot < sp.len;
    const T* kr = valid ? row_ptr<T>(sp.k, sp.pages, sp.page_size, slot, D) : nullptr;
    for (int64_t g = 0; g < G; ++g) {
      float score = -FLT_MAX;
      if (valid) {
        float dot = 0.f;
        for (int64_t d = 0; d < D; ++d) dot += q[g * D + d] * to_f(kr[d]);
        score = dot * a.scale;
      }
      const float cmax = block_max(score, red);
      const float m_new = fmaxf(m[g], cmax);
      const float pv = valid ? __expf(score - m_new) : 0.f;
      p[g * kChunk + threadIdx.x] = pv;
      const float csum = block_sum(pv, red);
      const float rescale = __expf(m[g] - m_new);
      // Rescale this head's accumulator, then add the chunk's weighted V rows (threads over d).
      for (int64_t d = threadIdx.x; d < D; d += kThreads) acc[g * D + d] *= rescale;
      __syncthreads();
      if (threadIdx.x == 0) {
        l[g] = l[g] * rescale + csum;
        m[g] = m_new;
      }
      __syncthreads();
    }
    const int64_t rows = min(int64_t(kChunk), sp.len - c0);
    for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
      const int64_t g = i / D, d = i % D;
      float sum = 0.f;
      for (int64_t t = 0; t < rows; ++t) sum += p[g * kChunk + t] * to_f(row_ptr<T>(sp.v, sp.pages, sp.page_size, c0 + t, D)[d]);
      acc[i] += sum;
    }
    __syncthreads();
  }
  T* ob = static_cast<T*>(a.out);
  for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
    const int64_t g = i / D, d = i % D;
    ob[s * a.out_stride_seq + (h * G + g) * a.out_stride_head + d] = from_f<T>(acc[i] / l[g]);
  }
}

template <typename T>
__global__ void kv_write_kernel(const kv_write_item* items, int64_t n, int64_t D) {
  const int64_t i = blockIdx.x;
  if (i >= n) return;
  const kv_write_item it = items[i];
  T* kd = const_cast<T*>(row_ptr<T>(it.k, it.pages, it.page_size, it.slot, D));
  T* vd = const_cast<T*>(row_ptr<T>(it.v, it.pages, it.page_size, it.slot, D));
  const T* ks = static_cast<const T*>(it.k_src);
  const T* vs = static_cast<const T*>(it.v_src);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    kd[d] = ks[d];
    vd[d] = vs[d];
  }
}

}  // namespace

extern "C" kernel_status decode_attention_cuda(const decode_attention_args* a, void* stream) {
  if (a == nullptr || a->num_seqs < 0 || a->num_kv_heads <= 0 || a->num_q_heads <= 0 || a->head_dim <= 0 ||
      a->num_q_heads % a->num_kv_heads != 0)
    return KERNEL_STATUS_BAD_ARGS;
  if (a->num_seqs == 0) return KERNEL_STATUS_OK;
  const int64_t G = a->num_q_heads / a->num_kv_heads;
  if (a->head_dim > 256 || G * a->head_dim > kMaxGroupDim || G > kThreads) return KERNEL_STATUS_UNSUPPORTED;
  const size_t smem = sizeof(float) * size_t(2 * G * a->head_dim + G * kChunk + 2 * G + kThreads / 32);
  const dim3 grid(unsigned(a->num_kv_heads), unsigned(a->num_seqs));
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  switch (a->dtype) {
    case KV_DTYPE_F32:
      cudaFuncSetAttribute(decode_attention_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
      decode_attention_kernel<float><<<grid, kThreads, smem, st>>>(*a);
      break;
    case KV_DTYPE_F16:
      cudaFuncSetAttribute(decode_attention_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
      decode_attention_kernel<__half><<<grid, kThreads, smem, st>>>(*a);
      break;
    case KV_DTYPE_BF16:
      cudaFuncSetAttribute(decode_attention_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(smem));
      decode_attention_kernel<__nv_bfloat16><<<grid, kThreads, smem, st>>>(*a);
      break;
    default:
      return KERNEL_STATUS_BAD_ARGS;
  }
  return cudaGetLastError() == cudaSuccess ? KERNEL_STATUS_OK : KERNEL_STATUS_DEVICE_ERROR;
}

extern "C" kernel_status kv_write_cuda(const kv_write_item* items, int64_t n, int64_t head_dim, kv_dtype dtype,
                                       void* stream) {
  if (n < 0 || head_dim <= 0 || (n > 0 && items == nullptr)) return KERNEL_STATUS_BAD_ARGS;
  if (n == 0) return KERNEL_STATUS_OK;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int threads = head_dim >= 128 ? 128 : 32;
  switch (dtype) {
    case KV_DTYPE_F32: kv_write_kernel<float><<<unsigned(n), threads, 0, st>>>(items, n, head_dim); break;
    case KV_DTYPE_F16: kv_write_kernel<__half><<<unsigned(n), threads, 0, st>>>(items, n, head_dim); break;
    case KV_DTYPE_BF16: kv_write_kernel<__nv_bfloat16><<<unsigned(n), threads, 0, st>>>(items, n, head_dim); break;
    default: return KERNEL_STATUS_BAD_ARGS;
  }
  return cudaGetLastError() == cudaSuccess ? KERNEL_STATUS_OK : KERNEL_STATUS_DEVICE_ERROR;
}
