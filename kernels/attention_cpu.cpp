// CPU reference of the decode attention and KV write kernels (interface: attention.h).
//
// Shaped for a CPU: work is split over (sequence, KV head) spans with OpenMP, and within a span all
// query heads of the GQA group are handled together, so each K and V row is read once per group (the
// same data reuse the CUDA kernel gets from shared memory). Scores live in a per-thread scratch
// buffer that is reused across calls (no allocator traffic per step). Two passes (scores, then
// softmax and V) rather than online softmax: on a CPU the scores of even a 32k-token span fit in L2.
// Rows stored as fp16 / bf16 are widened to fp32 one row at a time; accumulation is fp32.
#include "kernels/attention.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace {

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

inline uint16_t float_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00);      // NaN
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00);     // overflow -> inf (after rounding)
  if (absx < 0x33000001u) return uint16_t(sign);               // underflow -> 0
  int32_t e = int32_t(absx >> 23) - 127 + 15;
  uint32_t m = absx & 0x7fffff;
  if (e <= 0) {  // subnormal half
    m |= 0x800000;
    const int shift = 14 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = (uint32_t(e) << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

// Pointer to row `slot` of a span's K (or V) base.
inline const char* span_row(const void* base, const int32_t* pages, int64_t page_size, int64_t slot,
                            int64_t row_bytes) {
  if (pages == nullptr) return static_cast<const char*>(base) + slot * row_bytes;
  const int64_t page = pages[slot / page_size];
  return static_cast<const char*>(base) + (page * page_size + slot % page_size) * row_bytes;
}

// Loads `n` elements of `dtype` at `src` as floats into `dst`.
inline void load_row(const void* src, kv_dtype dtype, int64_t n, float* dst) {
  switch (dtype) {
    case KV_DTYPE_F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case KV_DTYPE_BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
      break;
    }
    case KV_DTYPE_F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(s[i]);
      break;
    }
  }
}

inline void store_row(const float* src, kv_dtype dtype, int64_t n, void* dst) {
  switch (dtype) {
    case KV_DTYPE_F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case KV_DTYPE_BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
      break;
    }
    case KV_DTYPE_F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = float_to_f16(src[i]);
      break;
    }
  }
}

inline float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

inline void axpy(float alpha, const float* __restrict x, float* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// Scratch per thread, grown on demand and kept across calls.
struct Scratch {
  std::vector<float> q, scores, row, acc;
};

// All query heads of one (sequence, KV head) span. Cloned for AVX2+FMA where the CPU has it.
__attribute__((target_clones("avx2,fma", "default")))
void attend_span(const decode_attention_args& a, int64_t s, int64_t h, Scratch& w) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  const int64_t d = a.head_dim;
  const kv_span& sp = a.spans[s * a.num_kv_heads + h];
  const size_t esz = kv_dtype_size(a.dtype);
  const int64_t row_bytes = d * int64_t(esz);
  const int64_t n = sp.len;

  w.q.resize(size_t(group * d));
  w.scores.resize(size_t(group * n));
  w.row.resize(size_t(d));
  w.acc.resize(size_t(group * d));
  const char* qbase = static_cast<const char*>(a.q);
  for (int64_t g = 0; g < group; ++g) {
    const int64_t j = h * group + g;
    load_row(qbase + (s * a.q_stride_seq + j * a.q_stride_head) * int64_t(esz), a.dtype, d, &w.q[g * d]);
  }
  // Pass 1: scores for every slot and query head; K row read once per group.
  for (int64_t t = 0; t < n; ++t) {
    const char* kr = span_row(sp.k, sp.pages, sp.page_size, t, row_bytes);
    const float* k;
    if (a.dtype == KV_DTYPE_F32) {
      k = reinterpret_cast<const float*>(kr);
    } else {
      load_row(kr, a.dtype, d, w.row.data());
      k = w.row.data();
    }
    for (int64_t g = 0; g < group; ++g) w.scores[g * n + t] = dot(&w.q[g * d], k, d) * a.scale;
  }
  // Softmax per query head (max-subtracted, so any finite scores are safe).
  for (int64_t g = 0; g < group; ++g) {
    float* sc = &w.scores[g * n];
    float mx = -INFINITY;
    for (int64_t t = 0; t < n; ++t) mx = std::max(mx, sc[t]);
    float sum = 0.f;
    for (int64_t t = 0; t < n; ++t) {
      sc[t] = std::exp(sc[t] - mx);
      sum += sc[t];
    }
    const float inv = 1.f / sum;
    for (int64_t t = 0; t < n; ++t) sc[t] *= inv;
  }
  // Pass 2: weighted sum of V rows.
  std::fill(w.acc.begin(), w.acc.end(), 0.f);
  for (int64_t t = 0; t < n; ++t) {
    const char* vr = span_row(sp.v, sp.pages, sp.page_size, t, row_bytes);
    const float* v;
    if (a.dtype == KV_DTYPE_F32) {
      v = reinterpret_cast<const float*>(vr);
    } else {
      load_row(vr, a.dtype, d, w.row.data());
      v = w.row.data();
    }
    for (int64_t g = 0; g < group; ++g) axpy(w.scores[g * n + t], v, &w.acc[g * d], d);
  }
  char* obase = static_cast<char*>(a.out);
  for (int64_t g = 0; g < group; ++g) {
    const int64_t j = h * group + g;
    store_row(&w.acc[g * d], a.dtype, d, obase + (s * a.out_stride_seq + j * a.out_stride_head) * int64_t(esz));
  }
}

bool dtype_ok(kv_dtype t) { return t == KV_DTYPE_F32 || t == KV_DTYPE_F16 || t == KV_DTYPE_BF16; }

}  // namespace

extern "C" size_t kv_dtype_size(kv_dtype dtype) { return dtype == KV_DTYPE_F32 ? 4 : 2; }

extern "C" kernel_status decode_attention_cpu(const decode_attention_args* a, int num_threads) {
  if (a == nullptr || !dtype_ok(a->dtype)) return KERNEL_STATUS_BAD_ARGS;
  if (a->num_seqs < 0 || a->num_kv_heads <= 0 || a->num_q_heads <= 0 || a->head_dim <= 0 ||
      a->num_q_heads % a->num_kv_heads != 0)
    return KERNEL_STATUS_BAD_ARGS;
  if (a->num_seqs == 0) return KERNEL_STATUS_OK;
  if (a->q == nullptr || a->out == nullptr || a->spans == nullptr) return KERNEL_STATUS_BAD_ARGS;
  const int64_t items = a->num_seqs * a->num_kv_heads;
  for (int64_t i = 0; i < items; ++i) {
    const kv_span& sp = a->spans[i];
    if (sp.len <= 0 || sp.k == nullptr || sp.v == nullptr || (sp.pages != nullptr && sp.page_size <= 0))
      return KERNEL_STATUS_BAD_ARGS;
  }
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel num_threads(nt) if (items > 1)
  {
    static thread_local Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) attend_span(*a, i / a->num_kv_heads, i % a->num_kv_heads, scratch);
  }
  return KERNEL_STATUS_OK;
}

extern "C" kernel_status kv_write_cpu(const kv_write_item* items, int64_t num_items, int64_t head_dim,
                                      kv_dtype dtype, int num_threads) {
  if (num_items < 0 || head_dim <= 0 || !dtype_ok(dtype) || (num_items > 0 && items == nullptr))
    return KERNEL_STATUS_BAD_ARGS;
  const int64_t row_bytes = head_dim * int64_t(kv_dtype_size(dtype));
  for (int64_t i = 0; i < num_items; ++i) {
    const kv_write_item& it = items[i];
    if (it.k == nullptr || it.v == nullptr || it.k_src == nullptr || it.v_src == nullptr || it.slot < 0 ||
        (it.pages != nullptr && it.page_size <= 0))
      return KERNEL_STATUS_BAD_ARGS;
  }
  // Rows are small: the copy is memory bound and threads only help for large batches.
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) if (num_items > 256)
  for (int64_t i = 0; i < num_items; ++i) {
    const kv_write_item& it = items[i];
    char* kd = const_cast<char*>(span_row(it.k, it.pages, it.page_size, it.slot, row_bytes));
    char* vd = const_cast<char*>(span_row(it.v, it.pages, it.page_size, it.slot, row_bytes));
    std::memcpy(kd, it.k_src, size_t(row_bytes));
    std::memcpy(vd, it.v_src, size_t(row_bytes));
  }
  return KERNEL_STATUS_OK;
}
