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

#include <algorithm>
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
  if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00);   // NaN
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // overflow -> inf (after rounding)
  if (absx < 0x33000001u) return uint16_t(sign);            // underflow -> 0
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
inline void load_row(const void* src, rlkv_dtype dtype, int64_t n, float* dst) {
  switch (dtype) {
    case RLKV_DTYPE_F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case RLKV_DTYPE_BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
      break;
    }
    case RLKV_DTYPE_F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(s[i]);
      break;
    }
  }
}

inline void store_row(const float* src, rlkv_dtype dtype, int64_t n, void* dst) {
  switch (dtype) {
    case RLKV_DTYPE_F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case RLKV_DTYPE_BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
      break;
    }
    case RLKV_DTYPE_F16: {
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

// Four dot products of q with four rows: four independent accumulator chains instead of one, so the
// FMA latency is hidden (a single dot of 128 floats is latency bound).
inline void dot4(const float* __restrict q, const float* __restrict k0, const float* __restrict k1,
                 const float* __restrict k2, const float* __restrict k3, int64_t n, float* out) {
  float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t i = 0; i < n; ++i) {
    a0 += q[i] * k0[i];
    a1 += q[i] * k1[i];
    a2 += q[i] * k2[i];
    a3 += q[i] * k3[i];
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
}

// y += p0 x0 + p1 x1 + p2 x2 + p3 x3: one load and store of y per four rows.
inline void axpy4(const float* p, const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
                  const float* __restrict x3, float* __restrict y, int64_t n) {
  const float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += p0 * x0[i] + p1 * x1[i] + p2 * x2[i] + p3 * x3[i];
}

// Scratch per thread, grown on demand and kept across calls.
struct Scratch {
  std::vector<float> q, scores, rows, acc, p4;
};

// Calls f(first_slot, rows, k_rows, v_rows) for each run of contiguous rows of a span: one run for a
// contiguous span, one per page for a paged one (no division per row).
template <typename F>
inline void for_each_run(const rlkv_kv_span& sp, int64_t row_bytes, F&& f) {
  if (sp.pages == nullptr) {
    f(int64_t(0), sp.len, static_cast<const char*>(sp.k), static_cast<const char*>(sp.v));
    return;
  }
  for (int64_t first = 0, p = 0; first < sp.len; first += sp.page_size, ++p) {
    const int64_t off = int64_t(sp.pages[p]) * sp.page_size * row_bytes;
    f(first, std::min(sp.page_size, sp.len - first), static_cast<const char*>(sp.k) + off,
      static_cast<const char*>(sp.v) + off);
  }
}

// All query heads of one (sequence, KV head) span. Cloned for x86-64-v3 (AVX2 + FMA) where the CPU
// has it; the default clone is plain x86-64.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void attend_span(const rlkv_decode_args& a, int64_t s,
                                                                             int64_t h, Scratch& w) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  const int64_t d = a.head_dim;
  const rlkv_kv_span& sp = a.spans[s * a.num_kv_heads + h];
  const size_t esz = rlkv_dtype_size(a.dtype);
  const int64_t row_bytes = d * int64_t(esz);
  const int64_t n = sp.len;
  const bool f32 = a.dtype == RLKV_DTYPE_F32;

  w.q.resize(size_t(group * d));
  w.scores.resize(size_t(group * n));  // [group, n]
  w.acc.resize(size_t(group * d));
  const char* qbase = static_cast<const char*>(a.q);
  for (int64_t g = 0; g < group; ++g) {
    const int64_t j = h * group + g;
    load_row(qbase + (s * a.q_stride_seq + j * a.q_stride_head) * int64_t(esz), a.dtype, d, &w.q[g * d]);
  }
  float* __restrict scores = w.scores.data();
  const float* __restrict qv = w.q.data();
  // Pass 1: scores for every slot and query head, four rows at a time; each K row is read once for
  // the whole group. Narrow dtypes are widened four rows at a time into scratch.
  w.rows.resize(size_t(4 * d));
  for_each_run(sp, row_bytes, [&](int64_t first, int64_t rows, const char* kr, const char*) {
    for (int64_t r = 0; r < rows; r += 4) {
      const int64_t m = std::min<int64_t>(4, rows - r);
      const float* k[4];
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t ri = r + std::min(i, m - 1);  // repeat the last row when fewer than four remain
        if (f32) {
          k[i] = reinterpret_cast<const float*>(kr + ri * row_bytes);
        } else {
          load_row(kr + ri * row_bytes, a.dtype, d, &w.rows[size_t(i * d)]);
          k[i] = &w.rows[size_t(i * d)];
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        float out[4];
        dot4(qv + g * d, k[0], k[1], k[2], k[3], d, out);
        for (int64_t i = 0; i < m; ++i) scores[g * n + first + r + i] = out[i] * a.scale;
      }
    }
  });
  // Softmax per query head (max-subtracted, so any finite scores are safe).
  for (int64_t g = 0; g < group; ++g) {
    float* sc = scores + g * n;
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
  if (sp.weights != nullptr) {
    for (int64_t t = 0; t < n; ++t) {
      float sum = 0.f;
      for (int64_t g = 0; g < group; ++g) sum += scores[g * n + t];
      sp.weights[t] = sum;
    }
  }
  // Pass 2: weighted sum of V rows.
  float* __restrict acc = w.acc.data();
  std::fill(w.acc.begin(), w.acc.end(), 0.f);
  for_each_run(sp, row_bytes, [&](int64_t first, int64_t rows, const char*, const char* vr) {
    for (int64_t r = 0; r < rows; r += 4) {
      const int64_t m = std::min<int64_t>(4, rows - r);
      const float* v[4];
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t ri = r + std::min(i, m - 1);
        if (f32) {
          v[i] = reinterpret_cast<const float*>(vr + ri * row_bytes);
        } else {
          load_row(vr + ri * row_bytes, a.dtype, d, &w.rows[size_t(i * d)]);
          v[i] = &w.rows[size_t(i * d)];
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        float p[4] = {0.f, 0.f, 0.f, 0.f};  // weights of repeated rows stay 0
        for (int64_t i = 0; i < m; ++i) p[i] = scores[g * n + first + r + i];
        axpy4(p, v[0], v[1], v[2], v[3], acc + g * d, d);
      }
    }
  });
  char* obase = static_cast<char*>(a.out);
  for (int64_t g = 0; g < group; ++g) {
    const int64_t j = h * group + g;
    store_row(acc + g * d, a.dtype, d, obase + (s * a.out_stride_seq + j * a.out_stride_head) * int64_t(esz));
  }
}

bool dtype_ok(rlkv_dtype t) { return t == RLKV_DTYPE_F32 || t == RLKV_DTYPE_F16 || t == RLKV_DTYPE_BF16; }

}  // namespace

extern "C" size_t rlkv_dtype_size(rlkv_dtype dtype) { return dtype == RLKV_DTYPE_F32 ? 4 : 2; }

extern "C" rlkv_status rlkv_decode_attention_cpu(const rlkv_decode_args* a, int num_threads) {
  if (a == nullptr || !dtype_ok(a->dtype)) return RLKV_STATUS_BAD_ARGS;
  if (a->num_seqs < 0 || a->num_kv_heads <= 0 || a->num_q_heads <= 0 || a->head_dim <= 0 ||
      a->num_q_heads % a->num_kv_heads != 0)
    return RLKV_STATUS_BAD_ARGS;
  if (a->num_seqs == 0) return RLKV_STATUS_OK;
  if (a->q == nullptr || a->out == nullptr || a->spans == nullptr) return RLKV_STATUS_BAD_ARGS;
  const int64_t items = a->num_seqs * a->num_kv_heads;
  for (int64_t i = 0; i < items; ++i) {
    const rlkv_kv_span& sp = a->spans[i];
    if (sp.len <= 0 || sp.k == nullptr || sp.v == nullptr || (sp.pages != nullptr && sp.page_size <= 0))
      return RLKV_STATUS_BAD_ARGS;
  }
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel num_threads(nt) if (items > 1)
  {
    static thread_local Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) attend_span(*a, i / a->num_kv_heads, i % a->num_kv_heads, scratch);
  }
  return RLKV_STATUS_OK;
}

extern "C" rlkv_status rlkv_kv_write_cpu(const rlkv_kv_write_item* items, int64_t num_items, int64_t head_dim,
                                         rlkv_dtype dtype, int num_threads) {
  if (num_items < 0 || head_dim <= 0 || !dtype_ok(dtype) || (num_items > 0 && items == nullptr))
    return RLKV_STATUS_BAD_ARGS;
  const int64_t row_bytes = head_dim * int64_t(rlkv_dtype_size(dtype));
  for (int64_t i = 0; i < num_items; ++i) {
    const rlkv_kv_write_item& it = items[i];
    if (it.k == nullptr || it.v == nullptr || it.k_src == nullptr || it.v_src == nullptr || it.slot < 0 ||
        (it.pages != nullptr && it.page_size <= 0))
      return RLKV_STATUS_BAD_ARGS;
  }
  // Rows are small: the copy is memory bound and threads only help for large batches.
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) if (num_items > 256)
  for (int64_t i = 0; i < num_items; ++i) {
    const rlkv_kv_write_item& it = items[i];
    char* kd = const_cast<char*>(span_row(it.k, it.pages, it.page_size, it.slot, row_bytes));
    char* vd = const_cast<char*>(span_row(it.v, it.pages, it.page_size, it.slot, row_bytes));
    std::memcpy(kd, it.k_src, size_t(row_bytes));
    std::memcpy(vd, it.v_src, size_t(row_bytes));
  }
  return RLKV_STATUS_OK;
}
