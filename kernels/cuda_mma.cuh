// Warp-level tensor-core and asynchronous-copy primitives of sm_80+ (PTX: cp.async, ldmatrix,
// mma.sync m16n8k16 with fp32 accumulation), written once here for the kernels of this directory.
// Under kernels/simt_emu.h (RLKV_SIMT_EMU) each has a plain C++ emulation with the PTX ISA's
// semantics, so the kernels that use them run, unchanged, in the CPU op test:
//   - cp.async leaves its destination NaN from the issue and lands at the wait that covers its group
//     (simt_emu.h async_copy);
//   - ldmatrix and mma gather the warp's operands (simt_emu.h warp_allgather) and compute each
//     lane's registers from the documented fragment layouts.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"; lane = 4 * gid + tig):
//   A 16 x 16, row major, 4 x b32 per lane: a0 = A[gid][2tig, 2tig+1], a1 = A[gid+8][2tig, 2tig+1],
//     a2 = A[gid][2tig+8, 2tig+9], a3 = A[gid+8][2tig+8, 2tig+9] (lower column in the low half);
//   B 16 x 8, 2 x b32 per lane: b0 = B[2tig, 2tig+1][gid], b1 = B[2tig+8, 2tig+9][gid];
//   C / D 16 x 8 fp32, 4 per lane: c0, c1 = C[gid][2tig, 2tig+1], c2, c3 = C[gid+8][2tig, 2tig+1].
// ldmatrix .x4: lanes 8i .. 8i+7 give the row addresses of 8 x 8 matrix i (16-bit elements, 16 bytes a
// row); register i of lane l holds row l / 4, elements 2(l % 4) and 2(l % 4) + 1 of matrix i, or with
// .trans those of its transpose (elements [2(l % 4)][l / 4] and [2(l % 4) + 1][l / 4]).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace rlkv_cuda {

// 16 bytes from global to shared memory without passing through registers; `valid` false writes
// zeros instead (the source is then not read). `smem` and `gmem` are 16-byte aligned.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#ifdef RLKV_SIMT_EMU
  emu::async_copy(smem, gmem, 16, !valid);
#else
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
#endif
}

// Closes the group of cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef RLKV_SIMT_EMU
  emu::async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most `N` committed groups of this thread are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef RLKV_SIMT_EMU
  emu::async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

#ifdef RLKV_SIMT_EMU
namespace emu_mma {

inline float half_bits_to_float(uint16_t h, bool bf16) {
  if (bf16) {
    const uint32_t b = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  __half_raw r;
  r.x = h;
  return __half2float(__half(r));
}

// Element j (0 = low half) of a b32 register holding two 16-bit values.
inline uint16_t half_of(uint32_t r, int j) { return uint16_t(j ? r >> 16 : r & 0xffffu); }

template <bool kTrans>
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  const void* rows[32];
  emu::warp_allgather(&row, sizeof row, rows);
  const unsigned lane = emu::linear_tid() % 32;
  for (int i = 0; i < 4; ++i) {
    auto elem = [&](unsigned rr, unsigned cc) {
      uint16_t h;
      std::memcpy(&h, static_cast<const unsigned char*>(rows[8 * i + rr]) + 2 * cc, 2);
      return h;
    };
    const unsigned a = lane / 4, b = 2 * (lane % 4);
    const uint16_t lo = kTrans ? elem(b, a) : elem(a, b), hi = kTrans ? elem(b + 1, a) : elem(a, b + 1);
    r[i] = uint32_t(lo) | uint32_t(hi) << 16;
  }
}

struct MmaOperands {
  uint32_t a[4], b[2];
};

inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], bool bf16) {
  MmaOperands mine, all[32];
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  emu::warp_allgather(&mine, sizeof mine, all);
  auto A = [&](int row, int k) {
    const MmaOperands& o = all[(row % 8) * 4 + (k % 8) / 2];
    return half_bits_to_float(half_of(o.a[(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k % 2), bf16);
  };
  auto B = [&](int k, int n) {
    const MmaOperands& o = all[n * 4 + (k % 8) / 2];
    return half_bits_to_float(half_of(o.b[k >= 8 ? 1 : 0], k % 2), bf16);
  };
  const int lane = int(emu::linear_tid() % 32), gid = lane / 4, tig = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = gid + (i >= 2 ? 8 : 0), col = 2 * tig + (i % 2);
    float s = 0.f;
    for (int k = 0; k < 16; ++k) s += A(row, k) * B(k, col);
    d[i] += s;
  }
}

}  // namespace emu_mma
#endif

// Four 8 x 8 matrices of 16-bit elements from shared memory (`row`: this lane's row address).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#ifdef RLKV_SIMT_EMU
  emu_mma::ldmatrix_x4<false>(r, row);
#else
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// The same, each matrix transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#ifdef RLKV_SIMT_EMU
  emu_mma::ldmatrix_x4<true>(r, row);
#else
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// d += A (16 x 16) * B (16 x 8), 16-bit inputs of type T (__nv_bfloat16 or __half), fp32 accumulation.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                         const uint32_t (&b)[2]) {
#ifdef RLKV_SIMT_EMU
  emu_mma::mma_16816(d, a, b, true);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef RLKV_SIMT_EMU
  emu_mma::mma_16816(d, a, b, false);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Two floats rounded to T (round to nearest even) in one b32, the first in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat16 l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
  uint16_t a, b;
  std::memcpy(&a, &l, 2);
  std::memcpy(&b, &h, 2);
  return uint32_t(a) | uint32_t(b) << 16;
}

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half l = __float2half_rn(lo), h = __float2half_rn(hi);
  uint16_t a, b;
  std::memcpy(&a, &l, 2);
  std::memcpy(&b, &h, 2);
  return uint32_t(a) | uint32_t(b) << 16;
}

}  // namespace rlkv_cuda
