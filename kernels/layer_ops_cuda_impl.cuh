// CUDA kernels of kernels/layer_ops_cuda.h. Compiled by nvcc through layer_ops_cuda.cu, and by the host
// compiler under kernels/simt_emu.h (RLKV_SIMT_EMU) so the op test runs this exact code on the CPU.
//
// Each kernel reproduces the rounding of the ATen expressions it replaces (runtime/model.cpp): every
// ATen elementwise operator computes in fp32 and rounds its result to the storage dtype, so each such
// step is one from_f() here, and products and sums use __fmul_rn / __fadd_rn so that the compiler does
// not contract them into a fused multiply-add that ATen does not do. These kernels are bound by launch
// count rather than bytes (a decode step's activations are a few hundred KB), so they favour one launch
// over vector loads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/layer_ops_cuda.h"

namespace rlkv_cuda {

constexpr int kNormThreads = 256;  // add + RMSNorm: one block of these per row
constexpr int kRopeThreads = 64;   // q / k / v: one block per (head, row); a thread owns rotation pairs
constexpr int kEltThreads = 256;   // SiLU-and-multiply: grid-stride
constexpr size_t kRedSmemBytes = 32 * sizeof(float);  // block_sum's `red`: the dynamic shared memory of norm and rope

template <typename T>
__device__ __forceinline__ float rnd(float x) {
  return to_f(from_f<T>(x));
}

// Sum over the block (blockDim.x a multiple of 32); `red` holds 32 floats of shared memory. Every
// thread gets the total.
__device__ __forceinline__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (unsigned w = 0; w < warps; ++w) t += red[w];  // the same order in every thread
  __syncthreads();                                   // `red` may be reused by the caller
  return t;
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads) add_rms_norm_kernel(rlkv_add_rms_norm_args a) {
  RLKV_DYN_SMEM(float, red);
  const int64_t H = a.hidden, row = blockIdx.x;
  T* x = static_cast<T*>(a.x) + row * H;
  const T* delta = a.delta ? static_cast<const T*>(a.delta) + row * H : nullptr;
  const T* w = static_cast<const T*>(a.weight);
  T* out = static_cast<T*>(a.out) + row * H;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float v = to_f(x[i]);
    if (delta) {
      const T s = from_f<T>(__fadd_rn(v, to_f(delta[i])));
      x[i] = s;
      v = to_f(s);
    }
    ss += v * v;
  }
  const float inv = rsqrtf(__fadd_rn(block_sum(ss, red) / float(H), a.eps));
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x)  // each thread rereads only what it wrote
    out[i] = from_f<T>(__fmul_rn(to_f(w[i]), rnd<T>(__fmul_rn(to_f(x[i]), inv))));
}

// Block (head, row): heads [0, Hq) are q, [Hq, Hq + Hkv) k, the rest v.
template <typename T>
__global__ void __launch_bounds__(kRopeThreads) qkv_rope_kernel(rlkv_qkv_rope_args a) {
  RLKV_DYN_SMEM(float, red);
  const int64_t D = a.head_dim, half = D / 2, row = blockIdx.y, head = blockIdx.x;
  const int64_t hq = a.num_q_heads, hkv = a.num_kv_heads;
  const T* src = static_cast<const T*>(a.qkv) + row * a.qkv_stride + head * D;
  // A k or v head's row in the cache (kv_items set), else null.
  auto cache_row = [&](int64_t kv_head, bool is_v) -> T* {
    if (a.kv_items == nullptr) return nullptr;
    const rlkv_kv_write_item& it = a.kv_items[row * hkv + kv_head];
    return static_cast<T*>(is_v ? it.v : it.k) + row_of(it.pages, it.page_size, it.slot) * D;
  };
  if (head >= hq + hkv) {  // v: a copy
    T* dst = static_cast<T*>(a.v) + (row * hkv + (head - hq - hkv)) * D;
    T* kept = cache_row(head - hq - hkv, true);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      dst[i] = src[i];
      if (kept) kept[i] = src[i];
    }
    return;
  }
  const bool is_q = head < hq;
  T* dst = is_q ? static_cast<T*>(a.q) + (row * hq + head) * D : static_cast<T*>(a.k) + (row * hkv + head - hq) * D;
  T* kept = is_q ? nullptr : cache_row(head - hq, false);
  const T* nw = static_cast<const T*>(is_q ? a.q_norm : a.k_norm);
  float inv = 0.0f;
  if (nw) {  // uniform over the block: the barrier inside block_sum is reached by every thread
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const float v = to_f(src[i]);
      ss += v * v;
    }
    inv = rsqrtf(__fadd_rn(block_sum(ss, red) / float(D), a.eps));
  }
  const T* cs = static_cast<const T*>(a.cos) + row * D;
  const T* sn = static_cast<const T*>(a.sin) + row * D;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    float x1 = to_f(src[i]), x2 = to_f(src[i + half]);
    if (nw) {
      x1 = rnd<T>(__fmul_rn(to_f(nw[i]), rnd<T>(__fmul_rn(x1, inv))));
      x2 = rnd<T>(__fmul_rn(to_f(nw[i + half]), rnd<T>(__fmul_rn(x2, inv))));
    }
    const T lo = from_f<T>(__fadd_rn(rnd<T>(__fmul_rn(x1, to_f(cs[i]))), rnd<T>(__fmul_rn(x2, to_f(sn[i])))));
    const T hi =
        from_f<T>(__fadd_rn(rnd<T>(__fmul_rn(x2, to_f(cs[i + half]))), rnd<T>(__fmul_rn(x1, to_f(sn[i + half])))));
    dst[i] = lo;
    dst[i + half] = hi;
    if (kept) {
      kept[i] = lo;
      kept[i + half] = hi;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kEltThreads) silu_mul_kernel(const T* gu, T* out, int64_t rows, int64_t I) {
  const int64_t n = rows * I;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / I, i = e % I;
    const float g = to_f(gu[r * 2 * I + i]);
    const float s = rnd<T>(g / (1.0f + expf(-g)));
    out[e] = from_f<T>(__fmul_rn(s, to_f(gu[r * 2 * I + I + i])));
  }
}

template <template <typename> class Launch, class... Args>
rlkv_status by_dtype(rlkv_dtype dtype, Args... args) {
  switch (dtype) {
    case RLKV_DTYPE_F32:
      Launch<float>::run(args...);
      break;
    case RLKV_DTYPE_F16:
      Launch<__half>::run(args...);
      break;
    case RLKV_DTYPE_BF16:
      Launch<__nv_bfloat16>::run(args...);
      break;
    default:
      return RLKV_STATUS_BAD_ARGS;
  }
  return RLKV_LAUNCH_OK() ? RLKV_STATUS_OK : RLKV_STATUS_DEVICE_ERROR;
}

template <typename T>
struct launch_norm {
  static void run(const rlkv_add_rms_norm_args& a, cudaStream_t st) {
    auto* k = &add_rms_norm_kernel<T>;
    RLKV_LAUNCH(k, dim3(unsigned(a.rows)), dim3(kNormThreads), kRedSmemBytes, st, a);
  }
};

template <typename T>
struct launch_rope {
  static void run(const rlkv_qkv_rope_args& a, cudaStream_t st) {
    auto* k = &qkv_rope_kernel<T>;
    const dim3 grid(unsigned(a.num_q_heads + 2 * a.num_kv_heads), unsigned(a.rows));
    RLKV_LAUNCH(k, grid, dim3(kRopeThreads), kRedSmemBytes, st, a);
  }
};

template <typename T>
struct launch_silu {
  static void run(const void* gu, void* out, int64_t rows, int64_t I, cudaStream_t st) {
    auto* k = &silu_mul_kernel<T>;
    const int64_t blocks = (rows * I + kEltThreads - 1) / kEltThreads;
    RLKV_LAUNCH(k, dim3(unsigned(blocks < 4096 ? blocks : 4096)), dim3(kEltThreads), 0, st, static_cast<const T*>(gu),
                static_cast<T*>(out), rows, I);
  }
};

}  // namespace rlkv_cuda

extern "C" rlkv_status RLKV_CUDA_FN(rlkv_add_rms_norm_cuda)(const rlkv_add_rms_norm_args* a, void* stream) {
  if (a == nullptr || a->rows < 0 || a->rows > INT32_MAX || a->hidden <= 0 || a->x == nullptr || a->weight == nullptr ||
      a->out == nullptr || a->out == a->x || !(a->eps >= 0.0f))
    return RLKV_STATUS_BAD_ARGS;
  if (a->rows == 0) return RLKV_STATUS_OK;
  return rlkv_cuda::by_dtype<rlkv_cuda::launch_norm>(a->dtype, *a, static_cast<cudaStream_t>(stream));
}

extern "C" rlkv_status RLKV_CUDA_FN(rlkv_qkv_rope_cuda)(const rlkv_qkv_rope_args* a, void* stream) {
  if (a == nullptr || a->rows < 0 || a->rows > 65535 || a->num_q_heads <= 0 || a->num_kv_heads <= 0 ||
      a->head_dim <= 0 || a->head_dim % 2 != 0 || a->head_dim > 1024 ||
      a->qkv_stride < (a->num_q_heads + 2 * a->num_kv_heads) * a->head_dim || a->qkv == nullptr || a->cos == nullptr ||
      a->sin == nullptr || a->q == nullptr || a->k == nullptr || a->v == nullptr ||
      (a->q_norm == nullptr) != (a->k_norm == nullptr) || !(a->eps >= 0.0f))
    return RLKV_STATUS_BAD_ARGS;
  if (a->rows == 0) return RLKV_STATUS_OK;
  return rlkv_cuda::by_dtype<rlkv_cuda::launch_rope>(a->dtype, *a, static_cast<cudaStream_t>(stream));
}

extern "C" rlkv_status RLKV_CUDA_FN(rlkv_silu_mul_cuda)(const void* gate_up, void* out, int64_t rows,
                                                        int64_t intermediate, rlkv_dtype dtype, void* stream) {
  if (rows < 0 || intermediate <= 0 || gate_up == nullptr || out == nullptr) return RLKV_STATUS_BAD_ARGS;
  if (rows == 0) return RLKV_STATUS_OK;
  return rlkv_cuda::by_dtype<rlkv_cuda::launch_silu>(dtype, gate_up, out, rows, intermediate,
                                                     static_cast<cudaStream_t>(stream));
}
