// CUDA decode attention and KV writes (interface: kernels/attention.h, kernels/attention_cuda.h).
// Compiled by nvcc through attention_cuda.cu, and by the host compiler under kernels/simt_emu.h
// (RLKV_SIMT_EMU) so the op test runs this exact code on the CPU where no GPU is present.
//
// Why it is shaped this way. A decode step reads every K and V row of every cached head once and does
// about 2 * G FLOPs per element read (G = query heads per KV head), so it is bound by memory bandwidth,
// and by instruction issue as G grows. The split kernel is organised around that:
//   - one thread block per (split, KV head, sequence); the query rows of the whole GQA group are kept in
//     shared memory, so each K / V row is read from memory once for the group;
//   - split-K: a long span is cut over `splits` blocks so that small batches of long caches still
//     fill the GPU (the split count is chosen from the SM count and the length bound max_len; each
//     span divides its own length, at least kMinSplit slots per block: span_split_len); compressed
//     heads (S + W slots) take one block. Splits write an unnormalised partial output with
//     its running max and sum to a workspace, and a combine kernel merges them (online softmax, so the
//     merge is exact up to rounding);
//   - inside a block, each of the four warps takes tiles of 32 slots. Scores: lane i owns slot i of the
//     tile and reads its K row with 16-byte loads (no cross-lane reductions per slot: variant LANE; its
//     loads touch 32 rows per instruction, so variant COOP reads each row with a group of lanes,
//     coalesced, at the price of shuffle reductions; which is faster is for the GPU benchmark to
//     say, and DEFAULT is LANE until then); softmax is in
//     base 2 on pre-scaled queries, with a running max per query head and per-lane partial sums, so a
//     tile costs only one warp max per head. V: lanes own head_dim / 32 contiguous elements, so each V
//     row is one coalesced load; the tile's probabilities and row offsets are broadcast by shuffles;
//   - warps merge their (max, sum, accumulator) in shared memory at the end.
// The split kernel covers head_dim 64 / 128 / 256 and groups up to 8 (the models of docs/design.md); other
// shapes use a simpler one-block-per-head kernel (threads over slots for scores, over head_dim for V).
// Accumulation is fp32 for every storage dtype. Paged spans index pages exactly as the CPU reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/attention_cuda.h"
#include "kernels/cuda_common.cuh"
#include "kernels/cuda_mma.cuh"

namespace rlkv_cuda {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int64_t kMinSplit = 256;      // slots per block at least (a block's fixed cost is amortised)
constexpr int64_t kSplitGranule = 128;  // split lengths are multiples of kWarps tiles of 32
constexpr int kBlocksPerSm = 4;         // split until about this many blocks per SM
constexpr int kGenericChunk = 128;      // generic kernel: slots scored per pass (= threads)
constexpr int kGenericMaxGroupDim = 4096;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Slots per block of a span of `len` slots in a launch of `splits` blocks per span: the span's own
// length divided over the splits (so a launch planned for a loose length bound, as a replayed CUDA
// graph's is, still spreads each span over every split), in whole granules of kWarps tiles, and at
// least kMinSplit (short spans take fewer blocks; the others exit at once). Never fewer than
// ceil(len / splits) slots, so ceil(len / split_len) <= splits: every slot of every span is covered.
__host__ __device__ __forceinline__ int64_t span_split_len(int64_t len, int64_t splits) {
  const int64_t per = ((len + splits - 1) / splits + kSplitGranule - 1) / kSplitGranule * kSplitGranule;
  return per > kMinSplit ? per : kMinSplit;
}

// 32-bit words holding storage elements -> floats (little-endian: element 2i is the low half).
template <typename T>
__device__ __forceinline__ void unpack(const uint32_t* w, float* out, int n);
template <>
__device__ __forceinline__ void unpack<float>(const uint32_t* w, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = __uint_as_float(w[i]);
}
template <>
__device__ __forceinline__ void unpack<__nv_bfloat16>(const uint32_t* w, float* out, int n) {
  for (int i = 0; i < n / 2; ++i) {
    out[2 * i] = __uint_as_float(w[i] << 16);
    out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
template <>
__device__ __forceinline__ void unpack<__half>(const uint32_t* w, float* out, int n) {
  for (int i = 0; i < n / 2; ++i) {
    __half2_raw r;
    r.x = static_cast<unsigned short>(w[i] & 0xffffu);
    r.y = static_cast<unsigned short>(w[i] >> 16);
    const float2 f = __half22float2(__half2(r));
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// Loads N elements (N * sizeof(T) bytes, a multiple of 4, from an address aligned to min(16, bytes)).
template <typename T, int N>
__device__ __forceinline__ void load_floats(const T* p, float* out) {
  constexpr int kBytes = N * int(sizeof(T));
  static_assert(kBytes % 4 == 0, "whole 32-bit words");
  alignas(16) uint32_t w[kBytes / 4];
  if constexpr (kBytes % 16 == 0) {
#pragma unroll
    for (int i = 0; i < kBytes / 16; ++i) reinterpret_cast<uint4*>(w)[i] = reinterpret_cast<const uint4*>(p)[i];
  } else if constexpr (kBytes == 8) {
    *reinterpret_cast<uint2*>(w) = *reinterpret_cast<const uint2*>(p);
  } else {
    static_assert(kBytes == 4, "4, 8 or a multiple of 16 bytes");
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  }
  unpack<T>(w, out, N);
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Online-softmax merge of n partial results of one output element (warps of a block, or splits of
// a span): running maxima m[j * ml_stride] (base-2 exponent domain), sums l[j * ml_stride] and
// unnormalised outputs o[j * o_stride]. The result is the same kind of partial (its output o / l is
// the element, exact up to rounding). A partial that saw no token (max -inf, sum and output 0)
// weighs nothing (an item of the tensor-core path can be empty); when none saw a token, the result
// is the empty partial.
struct softmax_partial {
  float m, l, o;
};
__device__ __forceinline__ softmax_partial merge_partials(const float* m, const float* l, const float* o, int64_t n,
                                                          int64_t ml_stride, int64_t o_stride) {
  softmax_partial r{-INFINITY, 0.f, 0.f};
  for (int64_t j = 0; j < n; ++j) r.m = fmaxf(r.m, m[j * ml_stride]);
  for (int64_t j = 0; j < n; ++j) {
    const float mj = m[j * ml_stride];
    const float f = mj == -INFINITY ? 0.f : exp2f(mj - r.m);
    r.l += l[j * ml_stride] * f;
    r.o += o[j * o_stride] * f;
  }
  return r;
}

// Workspace of a split launch: for each (sequence, KV head) pair and split, the unnormalised output
// [G, D] then, after all of those, the running max [G] and sum [G] (base-2 exponent domain).
struct split_workspace {
  float* out;
  float* max;
  float* sum;
};
__device__ __forceinline__ split_workspace workspace_of(float* base, int64_t pairs, int64_t splits, int64_t G,
                                                        int64_t D) {
  split_workspace w;
  w.out = base;
  w.max = base + pairs * splits * G * D;
  w.sum = w.max + pairs * splits * G;
  return w;
}

// Grid (splits, KV heads, sequences), kThreads threads. GM >= G query heads per KV head.
template <typename T, int D, int GM, bool kCoopScores>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(rlkv_decode_args a, float* ws_base) {
  // Phase 1: this block's slots [begin, end) of its span, split `split` of nsplit.
  const int64_t split = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
  const int64_t Hkv = a.num_kv_heads, G = a.num_q_heads / Hkv;
  const rlkv_kv_span sp = a.spans[s * Hkv + h];
  const int64_t split_len = span_split_len(sp.len, gridDim.x);
  const int64_t begin = split * split_len;
  if (begin >= sp.len) return;  // the whole block: this span needs fewer splits
  const int64_t end = imin(sp.len, begin + split_len);
  const int64_t nsplit = (sp.len + split_len - 1) / split_len;  // <= gridDim.x

  // Phase 2: the queries of the KV head's group into shared memory.
  RLKV_DYN_SMEM(float, smem);
  float* qs = smem;                  // [GM, D] queries, pre-scaled by scale * log2(e)
  float* wmax = qs + GM * D;         // [kWarps, GM]
  float* wsum = wmax + kWarps * GM;  // [kWarps, GM]
  float* wacc = wsum + kWarps * GM;  // [kWarps, GM, D]
  const T* qb = static_cast<const T*>(a.q);
  const float qscale = a.scale * kLog2e;
  for (int i = threadIdx.x; i < GM * D; i += kThreads) {
    const int g = i / D, d = i % D;
    qs[i] = g < G ? to_f(qb[s * a.q_stride_seq + (h * G + g) * a.q_stride_head + d]) * qscale : 0.f;
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kVec = 16 / int(sizeof(T));  // elements per 16-byte load
  constexpr int kChunks = D / kVec;          // 16-byte loads per K row
  constexpr int kBatch = kChunks < 8 ? kChunks : 8;
  constexpr int kLane = D / 32;  // V elements per lane
  constexpr int kRows = 8;       // V rows loaded before they are used
  const T* kbase = static_cast<const T*>(sp.k);
  const T* vbase = static_cast<const T*>(sp.v);

  // Phase 3: the running softmax state per query head: the max m (the same on every lane of a warp),
  // this lane's share of the sum l, and its kLane elements of the output acc.
  float m[GM], l[GM], acc[GM][kLane];
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < kLane; ++e) acc[g][e] = 0.f;
  }

  // Phase 4: the warps take tiles of 32 slots in turn (lane i: slot t0 + i); per tile 4a scores q . k,
  // 4b the online softmax, 4c p * V accumulated.
  for (int64_t t0 = begin + 32 * warp; t0 < end; t0 += 32 * kWarps) {
    const int64_t slot = t0 + lane;
    const bool valid = slot < end;
    const int64_t off = valid ? row_of(sp.pages, sp.page_size, slot) * D : 0;  // elements
    // Phase 4a: scores, sc[g] = q_g . k of this lane's slot.
    float sc[GM];
#pragma unroll
    for (int g = 0; g < GM; ++g) sc[g] = 0.f;
    if constexpr (!kCoopScores) {
      // Variant "lane": lane i reads slot i's whole K row (16-byte loads, no cross-lane work).
      if (valid) {
        const uint4* kr = reinterpret_cast<const uint4*>(kbase + off);
#pragma unroll
        for (int c0 = 0; c0 < kChunks; c0 += kBatch) {
          uint4 raw[kBatch];
#pragma unroll
          for (int c = 0; c < kBatch; ++c) raw[c] = kr[c0 + c];
#pragma unroll
          for (int c = 0; c < kBatch; ++c) {
            float kf[kVec];
            unpack<T>(reinterpret_cast<const uint32_t*>(&raw[c]), kf, kVec);
#pragma unroll
            for (int g = 0; g < GM; ++g) {
              if (g >= G) break;
              const float* qg = qs + g * D + (c0 + c) * kVec;
#pragma unroll
              for (int e = 0; e < kVec; ++e) sc[g] += qg[e] * kf[e];
            }
          }
        }
      }
    } else {
      // Variant "coop": kRowLanes consecutive lanes read one K row together (each load instruction
      // covers whole rows: coalesced), reduce their partial dots by shuffles, and lane i keeps the
      // score of slot i. kRowLanes passes cover the tile's 32 slots.
      constexpr int kRowChunks = D * int(sizeof(T)) / 16;
      constexpr int kRowLanes = kRowChunks < 32 ? kRowChunks : 32;
      constexpr int kLaneChunks = kRowChunks / kRowLanes;
      constexpr int kRowsPerPass = 32 / kRowLanes;
      const int sub = lane % kRowLanes, grp = lane / kRowLanes;
#pragma unroll 1
      for (int pass = 0; pass < kRowLanes; ++pass) {
        const int r = pass * kRowsPerPass + grp;  // the tile row this lane's group reads
        const int64_t roff = __shfl_sync(0xffffffffu, off, r);
        float part[GM];
#pragma unroll
        for (int g = 0; g < GM; ++g) part[g] = 0.f;
        if (t0 + r < end) {
          const uint4* kr = reinterpret_cast<const uint4*>(kbase + roff);
          uint4 raw[kLaneChunks];
#pragma unroll
          for (int c = 0; c < kLaneChunks; ++c) raw[c] = kr[c * kRowLanes + sub];
#pragma unroll
          for (int c = 0; c < kLaneChunks; ++c) {
            float kf[kVec];
            unpack<T>(reinterpret_cast<const uint32_t*>(&raw[c]), kf, kVec);
#pragma unroll
            for (int g = 0; g < GM; ++g) {
              if (g >= G) break;
              const float* qg = qs + g * D + (c * kRowLanes + sub) * kVec;
#pragma unroll
              for (int e = 0; e < kVec; ++e) part[g] += qg[e] * kf[e];
            }
          }
        }
#pragma unroll
        for (int g = 0; g < GM; ++g) {
          if (g >= G) break;
#pragma unroll
          for (int o = kRowLanes / 2; o > 0; o >>= 1) part[g] += __shfl_xor_sync(0xffffffffu, part[g], o);
          // Lane i's slot was read in pass i / kRowsPerPass by group i % kRowsPerPass.
          const float mine = __shfl_sync(0xffffffffu, part[g], (lane % kRowsPerPass) * kRowLanes);
          if (lane / kRowsPerPass == pass) sc[g] = mine;
        }
      }
    }
    // Phase 4b: online softmax over the tile (base 2). corr rescales what was accumulated before this tile;
    // m is -inf before the first tile (corr = 0) and finite after (every tile has a valid slot).
    float p[GM];
#pragma unroll
    for (int g = 0; g < GM; ++g) {
      p[g] = 0.f;
      if (g >= G) continue;
      const float x = valid ? sc[g] : -INFINITY;
      const float mn = fmaxf(m[g], warp_max(x));
      const float corr = exp2f(m[g] - mn);
      p[g] = valid ? exp2f(x - mn) : 0.f;
      l[g] = l[g] * corr + p[g];  // this lane's share of the sum
#pragma unroll
      for (int e = 0; e < kLane; ++e) acc[g][e] *= corr;
      m[g] = mn;
    }
    // Phase 4c: acc += p * V over the tile's rows, kRows V rows loaded before they are used.
    const int rows = int(imin(32, end - t0));
    for (int r0 = 0; r0 < rows; r0 += kRows) {
      float vf[kRows][kLane];
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        if (r0 + u < rows) {
          const int64_t ro = __shfl_sync(0xffffffffu, off, r0 + u);
          load_floats<T, kLane>(vbase + ro + lane * kLane, vf[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        if (r0 + u >= rows) break;
#pragma unroll
        for (int g = 0; g < GM; ++g) {
          if (g >= G) break;
          const float pg = __shfl_sync(0xffffffffu, p[g], r0 + u);
#pragma unroll
          for (int e = 0; e < kLane; ++e) acc[g][e] += pg * vf[u][e];
        }
      }
    }
  }

  // Phase 5: each warp's m, l and acc into shared memory, to merge the warps (a warp without tiles
  // has m = -inf, l = 0, acc = 0 and weighs nothing).
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    if (g >= G) break;
    const float lw = warp_sum(l[g]);
    if (lane == 0) {
      wmax[warp * GM + g] = m[g];
      wsum[warp * GM + g] = lw;
    }
#pragma unroll
    for (int e = 0; e < kLane; ++e) wacc[(warp * GM + g) * D + lane * kLane + e] = acc[g][e];
  }
  __syncthreads();
  // Phase 6: one thread per (query head, element) merges the warps; a span of one split writes the
  // output, otherwise this split's O, M and L go to the workspace for combine_splits_kernel.
  T* ob = static_cast<T*>(a.out);
  const int64_t pair = s * Hkv + h, splits = gridDim.x;
  const split_workspace ws = workspace_of(ws_base, Hkv * a.num_seqs, splits, G, D);
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int g = i / D, d = i % D;
    const softmax_partial r = merge_partials(wmax + g, wsum + g, wacc + g * D + d, kWarps, GM, GM * D);
    if (nsplit == 1) {
      ob[s * a.out_stride_seq + (h * G + g) * a.out_stride_head + d] = from_f<T>(r.o / r.l);
    } else {
      const int64_t at = pair * splits + split;
      ws.out[(at * G + g) * D + d] = r.o;
      if (d == 0) {
        ws.max[at * G + g] = r.m;
        ws.sum[at * G + g] = r.l;
      }
    }
  }
}

// Grid (KV heads, sequences): merges the splits of the spans that had more than one.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    combine_splits_kernel(rlkv_decode_args a, int64_t splits, const float* ws_base) {
  const int64_t h = blockIdx.x, s = blockIdx.y;
  const int64_t Hkv = a.num_kv_heads, G = a.num_q_heads / Hkv, D = a.head_dim;
  const int64_t len = a.spans[s * Hkv + h].len;
  const int64_t split_len = span_split_len(len, splits);
  const int64_t nsplit = (len + split_len - 1) / split_len;
  if (nsplit <= 1) return;
  const split_workspace ws = workspace_of(const_cast<float*>(ws_base), Hkv * a.num_seqs, splits, G, D);
  const int64_t first = (s * Hkv + h) * splits;
  T* ob = static_cast<T*>(a.out);
  for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
    const int64_t g = i / D, d = i % D;
    const softmax_partial r = merge_partials(ws.max + first * G + g, ws.sum + first * G + g,
                                             ws.out + (first * G + g) * D + d, nsplit, G, G * D);
    ob[s * a.out_stride_seq + (h * G + g) * a.out_stride_head + d] = from_f<T>(r.o / r.l);
  }
}

__device__ float block_max(float v, float* red) {
  v = warp_max(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = -FLT_MAX;
  for (int w = 0; w < kThreads / 32; ++w) r = fmaxf(r, red[w]);
  __syncthreads();
  return r;
}

__device__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) r += red[w];
  __syncthreads();
  return r;
}

// Any head_dim <= 256 and G * head_dim <= kGenericMaxGroupDim: one block per (KV head, sequence)
// walks the span in chunks of kGenericChunk slots, one thread per slot for the scores.
template <typename T>
__global__ void __launch_bounds__(kThreads) decode_generic_kernel(rlkv_decode_args a) {
  const int64_t h = blockIdx.x, s = blockIdx.y;
  const int64_t G = a.num_q_heads / a.num_kv_heads, D = a.head_dim;
  const rlkv_kv_span sp = a.spans[s * a.num_kv_heads + h];
  RLKV_DYN_SMEM(float, smem);
  float* q = smem;                   // [G, D]
  float* acc = q + G * D;            // [G, D]
  float* p = acc + G * D;            // [G, kGenericChunk] probabilities of the chunk
  float* m = p + G * kGenericChunk;  // [G] running max
  float* l = m + G;                  // [G] running sum
  float* red = l + G;                // [kThreads / 32]
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
  for (int64_t c0 = 0; c0 < sp.len; c0 += kGenericChunk) {
    const int64_t slot = c0 + threadIdx.x;
    const bool valid = slot < sp.len;
    const T* kr = valid ? static_cast<const T*>(sp.k) + row_of(sp.pages, sp.page_size, slot) * D : nullptr;
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
      p[g * kGenericChunk + threadIdx.x] = pv;
      const float csum = block_sum(pv, red);
      const float rescale = __expf(m[g] - m_new);
      for (int64_t d = threadIdx.x; d < D; d += kThreads) acc[g * D + d] *= rescale;
      __syncthreads();
      if (threadIdx.x == 0) {
        l[g] = l[g] * rescale + csum;
        m[g] = m_new;
      }
      __syncthreads();
    }
    const int64_t rows = imin(kGenericChunk, sp.len - c0);
    for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
      const int64_t g = i / D, d = i % D;
      float sum = 0.f;
      for (int64_t t = 0; t < rows; ++t)
        sum += p[g * kGenericChunk + t] *
               to_f(static_cast<const T*>(sp.v)[row_of(sp.pages, sp.page_size, c0 + t) * D + d]);
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

// One block per item: copies its K and V rows into their slots.
template <typename T>
__global__ void kv_write_kernel(const rlkv_kv_write_item* items, int64_t D) {
  const rlkv_kv_write_item it = items[blockIdx.x];  // grid: exactly n blocks
  const int64_t row = row_of(it.pages, it.page_size, it.slot) * D;
  T* kd = static_cast<T*>(it.k) + row;
  T* vd = static_cast<T*>(it.v) + row;
  const T* ks = static_cast<const T*>(it.k_src);
  const T* vs = static_cast<const T*>(it.v_src);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    kd[d] = ks[d];
    vd[d] = vs[d];
  }
}

}  // namespace rlkv_cuda

#include "kernels/attention_cuda_tc.cuh"

namespace rlkv_cuda {

// ---- host side ----------------------------------------------------------------------------------

#ifdef RLKV_SIMT_EMU
inline int& emu_num_sms() {
  static int n = 4;
  return n;
}
inline int num_sms() { return emu_num_sms(); }
#else
// SM count of the current device, read once per device (so later launches, e.g. inside a CUDA graph
// capture, make no device queries). Threads may ask at once: every one stores the same value.
inline int num_sms() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 132;
  const bool cacheable = dev >= 0 && dev < kMaxDevices;
  if (cacheable && (n = cached[dev].load(std::memory_order_relaxed)) > 0) return n;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) n = 132;
  if (cacheable) cached[dev].store(n, std::memory_order_relaxed);
  return n;
}
#endif

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct launch_plan {
  bool split_kernel = false;  // decode_split_kernel (else decode_generic_kernel)
  int gm = 0;                 // group bucket of the split kernel
  int64_t splits = 1;         // blocks per span (each span divides its own length over them: span_split_len)
  size_t smem = 0;
  int64_t workspace_bytes = 0;
};

inline bool shape_ok(const rlkv_decode_args* a) {
  return a != nullptr && a->num_seqs >= 0 && a->num_kv_heads > 0 && a->num_q_heads > 0 && a->head_dim > 0 &&
         a->num_q_heads % a->num_kv_heads == 0 && a->max_len >= 0 && a->num_seqs <= 65535 && a->num_kv_heads <= 65535 &&
         a->variant >= RLKV_DECODE_VARIANT_DEFAULT && a->variant <= RLKV_DECODE_VARIANT_TC;
}

inline launch_plan plan(const rlkv_decode_args& a, int sms) {
  launch_plan p;
  const int64_t G = a.num_q_heads / a.num_kv_heads, D = a.head_dim, pairs = a.num_seqs * a.num_kv_heads;
  p.split_kernel = (D == 64 || D == 128 || D == 256) && G <= 8;
  if (!p.split_kernel) {
    p.smem = sizeof(float) * size_t(2 * G * D + G * kGenericChunk + 2 * G + kThreads / 32);
    return p;
  }
  p.gm = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
  p.smem = sizeof(float) * size_t(p.gm * D + 2 * kWarps * p.gm + kWarps * p.gm * D);
  if (a.max_len <= 0 || pairs == 0) return p;  // no bound on the lengths: one block per span
  const int64_t want = ceil_div(int64_t(kBlocksPerSm) * sms, pairs);
  const int64_t most = ceil_div(a.max_len, kMinSplit);
  p.splits = want > most ? most : want;                                 // both >= 1
  p.splits = ceil_div(a.max_len, span_split_len(a.max_len, p.splits));  // none left empty by the granule
  if (p.splits > 1) p.workspace_bytes = int64_t(sizeof(float)) * pairs * p.splits * G * (D + 2);
  return p;
}

template <typename T, int D, int GM>
void launch_split(const rlkv_decode_args& a, const launch_plan& p, cudaStream_t st) {
  auto* k = a.variant == RLKV_DECODE_VARIANT_COOP ? &decode_split_kernel<T, D, GM, true>
                                                  : &decode_split_kernel<T, D, GM, false>;
  const dim3 grid(unsigned(p.splits), unsigned(a.num_kv_heads), unsigned(a.num_seqs));
  RLKV_LAUNCH(k, grid, dim3(kThreads), p.smem, st, a, static_cast<float*>(a.workspace));
}

template <typename T, int D>
void launch_split_d(const rlkv_decode_args& a, const launch_plan& p, cudaStream_t st) {
  switch (p.gm) {
    case 1:
      launch_split<T, D, 1>(a, p, st);
      break;
    case 2:
      launch_split<T, D, 2>(a, p, st);
      break;
    case 4:
      launch_split<T, D, 4>(a, p, st);
      break;
    default:
      launch_split<T, D, 8>(a, p, st);
      break;
  }
}

template <typename T>
rlkv_status launch_decode(const rlkv_decode_args& a, const launch_plan& p, cudaStream_t st) {
  if (!p.split_kernel) {
    auto* k = &decode_generic_kernel<T>;
#ifndef RLKV_SIMT_EMU
    if (p.smem > 48 * 1024 &&
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.smem)) != cudaSuccess)
      return RLKV_STATUS_DEVICE_ERROR;
#endif
    RLKV_LAUNCH(k, dim3(unsigned(a.num_kv_heads), unsigned(a.num_seqs)), dim3(kThreads), p.smem, st, a);
    return RLKV_LAUNCH_OK() ? RLKV_STATUS_OK : RLKV_STATUS_DEVICE_ERROR;
  }
  switch (a.head_dim) {
    case 64:
      launch_split_d<T, 64>(a, p, st);
      break;
    case 128:
      launch_split_d<T, 128>(a, p, st);
      break;
    default:
      launch_split_d<T, 256>(a, p, st);
      break;
  }
  if (!RLKV_LAUNCH_OK()) return RLKV_STATUS_DEVICE_ERROR;
  if (p.splits > 1) {
    auto* c = &combine_splits_kernel<T>;
    RLKV_LAUNCH(c, dim3(unsigned(a.num_kv_heads), unsigned(a.num_seqs)), dim3(kThreads), 0, st, a, p.splits,
                static_cast<const float*>(a.workspace));
    if (!RLKV_LAUNCH_OK()) return RLKV_STATUS_DEVICE_ERROR;
  }
  return RLKV_STATUS_OK;
}

}  // namespace rlkv_cuda

extern "C" int64_t RLKV_CUDA_FN(rlkv_decode_attention_cuda_workspace_bytes)(const rlkv_decode_args* a) {
  if (!rlkv_cuda::shape_ok(a)) return 0;
  if (rlkv_cuda::tc_applies(*a)) return rlkv_cuda::tc_layout(*a, rlkv_cuda::num_sms()).bytes();
  return rlkv_cuda::plan(*a, rlkv_cuda::num_sms()).workspace_bytes;
}

extern "C" rlkv_status RLKV_CUDA_FN(rlkv_decode_attention_cuda)(const rlkv_decode_args* a, void* stream) {
  using namespace rlkv_cuda;
  if (!shape_ok(a)) return RLKV_STATUS_BAD_ARGS;
  if (a->num_seqs == 0) return RLKV_STATUS_OK;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  (void)st;
  if (tc_applies(*a)) {
    const int sms = num_sms();
    if (a->workspace == nullptr || a->workspace_bytes < tc_layout(*a, sms).bytes()) return RLKV_STATUS_BAD_ARGS;
    return a->dtype == RLKV_DTYPE_BF16 ? tc_launch<__nv_bfloat16>(*a, sms, st) : tc_launch<__half>(*a, sms, st);
  }
  const int64_t G = a->num_q_heads / a->num_kv_heads;
  const launch_plan p = plan(*a, num_sms());
  if (!p.split_kernel && (a->head_dim > 256 || G * a->head_dim > kGenericMaxGroupDim || G > kThreads))
    return RLKV_STATUS_UNSUPPORTED;
  if (p.workspace_bytes > 0 && (a->workspace == nullptr || a->workspace_bytes < p.workspace_bytes))
    return RLKV_STATUS_BAD_ARGS;
  switch (a->dtype) {
    case RLKV_DTYPE_F32:
      return launch_decode<float>(*a, p, st);
    case RLKV_DTYPE_F16:
      return launch_decode<__half>(*a, p, st);
    case RLKV_DTYPE_BF16:
      return launch_decode<__nv_bfloat16>(*a, p, st);
    default:
      return RLKV_STATUS_BAD_ARGS;
  }
}

extern "C" rlkv_status RLKV_CUDA_FN(rlkv_kv_write_cuda)(const rlkv_kv_write_item* items, int64_t n, int64_t head_dim,
                                                        rlkv_dtype dtype, void* stream) {
  using namespace rlkv_cuda;
  if (n < 0 || head_dim <= 0 || (n > 0 && items == nullptr) || n > INT32_MAX) return RLKV_STATUS_BAD_ARGS;
  if (n == 0) return RLKV_STATUS_OK;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  (void)st;
  const dim3 grid{unsigned(n)}, block{head_dim >= 128 ? 128u : 32u};
  switch (dtype) {
    case RLKV_DTYPE_F32: {
      auto* k = &kv_write_kernel<float>;
      RLKV_LAUNCH(k, grid, block, 0, st, items, head_dim);
      break;
    }
    case RLKV_DTYPE_F16: {
      auto* k = &kv_write_kernel<__half>;
      RLKV_LAUNCH(k, grid, block, 0, st, items, head_dim);
      break;
    }
    case RLKV_DTYPE_BF16: {
      auto* k = &kv_write_kernel<__nv_bfloat16>;
      RLKV_LAUNCH(k, grid, block, 0, st, items, head_dim);
      break;
    }
    default:
      return RLKV_STATUS_BAD_ARGS;
  }
  return RLKV_LAUNCH_OK() ? RLKV_STATUS_OK : RLKV_STATUS_DEVICE_ERROR;
}
