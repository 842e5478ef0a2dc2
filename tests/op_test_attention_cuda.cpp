// Op test of the CUDA attention kernels against the CPU reference (STYLE.md: one harness runs every
// case on the CPU reference and, where CUDA runs, on the GPU). Exit 0: every case agrees; 1: a
// mismatch; 77: no CUDA device here (ctest reports a skip, not a pass).
// Cases: dtypes f32 / f16 / bf16; head_dim 64 and 128; GQA groups 1, 4 and 7; span lengths 1,
// S + W - 1, S + W, S + W + 1 and 4097; paged and contiguous spans mixed in one batch; sentinel bytes
// around the output; NaN / inf checks. Inputs are seeded.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_cuda.h"

namespace {

#define CUDA_OK(x)                                                               \
  do {                                                                           \
    cudaError_t e = (x);                                                         \
    if (e != cudaSuccess) {                                                      \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

uint16_t f2bf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1);
  return uint16_t(b >> 16);
}
float bf2f(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Host values stored as `dtype` bytes (f16 via the CPU's conversion in _Float16 when available).
std::vector<uint8_t> store(const std::vector<float>& v, kv_dtype t) {
  const size_t es = kv_dtype_size(t);
  std::vector<uint8_t> out(v.size() * es);
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == KV_DTYPE_F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else if (t == KV_DTYPE_BF16) {
      const uint16_t h = f2bf(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      const _Float16 h = _Float16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

float load(const uint8_t* p, kv_dtype t) {
  if (t == KV_DTYPE_F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t == KV_DTYPE_BF16) return bf2f(h);
  _Float16 x;
  std::memcpy(&x, p, 2);
  return float(x);
}

int run_case(kv_dtype t, int64_t D, int64_t G, int64_t len, std::mt19937& rng) {
  const int64_t B = 2, Hkv = 2, Hq = Hkv * G, page = 16;
  const size_t es = kv_dtype_size(t);
  std::normal_distribution<float> nd;
  std::vector<float> qf(size_t(B * Hq * D));
  for (auto& x : qf) x = nd(rng);
  const int64_t pages_per = (len + page - 1) / page;
  // Pool for paged spans (even items) and contiguous buffers (odd items).
  std::vector<float> kpool(size_t(B * Hkv * pages_per * page * D)), vpool(kpool.size());
  for (auto& x : kpool) x = nd(rng);
  for (auto& x : vpool) x = nd(rng);
  std::vector<int32_t> pages(size_t(B * Hkv * pages_per));
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = int32_t(i);
  std::shuffle(pages.begin(), pages.end(), rng);
  const auto kb = store(kpool, t), vb = store(vpool, t), qb = store(qf, t);
  // Device copies.
  void *dk, *dv, *dq, *dout;
  int32_t* dpages;
  kv_span* dspans;
  const size_t out_bytes = size_t(B * Hq * D) * es, guard = 256;
  CUDA_OK(cudaMalloc(&dk, kb.size()));
  CUDA_OK(cudaMalloc(&dv, vb.size()));
  CUDA_OK(cudaMalloc(&dq, qb.size()));
  CUDA_OK(cudaMalloc(&dout, out_bytes + 2 * guard));
  CUDA_OK(cudaMalloc(&dpages, pages.size() * 4));
  CUDA_OK(cudaMemcpy(dk, kb.data(), kb.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dv, vb.data(), vb.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dq, qb.data(), qb.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dpages, pages.data(), pages.size() * 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(dout, 0x5a, out_bytes + 2 * guard));
  std::vector<kv_span> hspans(size_t(B * Hkv)), dspans_host(size_t(B * Hkv));
  for (int64_t i = 0; i < B * Hkv; ++i) {
    const int64_t base_rows = i * pages_per * page;  // contiguous items use their own region of the pool
    if (i % 2 == 0) {
      hspans[size_t(i)] = kv_span{kb.data(), vb.data(), pages.data() + i * pages_per, page, len};
      dspans_host[size_t(i)] = kv_span{dk, dv, dpages + i * pages_per, page, len};
    } else {
      hspans[size_t(i)] = kv_span{kb.data() + size_t(base_rows * D) * es, vb.data() + size_t(base_rows * D) * es, nullptr, 0, len};
      dspans_host[size_t(i)] = kv_span{static_cast<uint8_t*>(dk) + size_t(base_rows * D) * es,
                                       static_cast<uint8_t*>(dv) + size_t(base_rows * D) * es, nullptr, 0, len};
    }
  }
  CUDA_OK(cudaMalloc(&dspans, dspans_host.size() * sizeof(kv_span)));
  CUDA_OK(cudaMemcpy(dspans, dspans_host.data(), dspans_host.size() * sizeof(kv_span), cudaMemcpyHostToDevice));
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<uint8_t> ref(out_bytes);
  decode_attention_args a{B, Hq, Hkv, D, qb.data(), Hq * D, D, ref.data(), Hq * D, D, hspans.data(), scale, t};
  if (decode_attention_cpu(&a, 2) != KERNEL_STATUS_OK) return 1;
  decode_attention_args g = a;
  g.q = dq;
  g.out = static_cast<uint8_t*>(dout) + guard;
  g.spans = dspans;
  if (decode_attention_cuda(&g, nullptr) != KERNEL_STATUS_OK) return 1;
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(out_bytes + 2 * guard);
  CUDA_OK(cudaMemcpy(got.data(), dout, got.size(), cudaMemcpyDeviceToHost));
  int bad = 0;
  for (size_t i = 0; i < guard; ++i) bad += got[i] != 0x5a || got[guard + out_bytes + i] != 0x5a;
  // Tolerance: both sides accumulate in fp32 in different orders (~1e-5 relative for O(1) outputs)
  // and round the output to the storage dtype (half an ulp: 2^-9 bf16, 2^-12 f16).
  const double tol = t == KV_DTYPE_F32 ? 2e-5 : (t == KV_DTYPE_BF16 ? 8e-3 : 1e-3);
  double worst = 0;
  for (int64_t i = 0; i < B * Hq * D; ++i) {
    const float r = load(&ref[size_t(i) * es], t), x = load(&got[guard + size_t(i) * es], t);
    if (!std::isfinite(x)) ++bad;
    worst = std::max(worst, double(std::fabs(x - r)) / (1.0 + std::fabs(r)));
  }
  cudaFree(dk);
  cudaFree(dv);
  cudaFree(dq);
  cudaFree(dout);
  cudaFree(dpages);
  cudaFree(dspans);
  const bool ok = bad == 0 && worst <= tol;
  std::printf("%s dtype %d head_dim %lld group %lld len %lld: max rel err %.2e (tol %.0e)%s\n", ok ? "ok  " : "FAIL", int(t),
              (long long)D, (long long)G, (long long)len, worst, tol, bad ? " + sentinel/NaN damage" : "");
  return ok ? 0 : 1;
}

// kv_write: the same items written on both sides give byte-identical pools.
int run_write_case(kv_dtype t, int64_t D, std::mt19937& rng) {
  const size_t es = kv_dtype_size(t);
  const int64_t page = 16, pages_n = 8, n = 40;
  std::vector<uint8_t> pool(size_t(pages_n * page * D) * es, 0), src(size_t(n * D) * es);
  for (auto& b : src) b = uint8_t(rng());
  std::vector<int32_t> pages{5, 2, 7, 0};
  void *dpool, *dsrc, *dvpool;
  int32_t* dpages;
  CUDA_OK(cudaMalloc(&dpool, pool.size()));
  CUDA_OK(cudaMalloc(&dvpool, pool.size()));
  CUDA_OK(cudaMalloc(&dsrc, src.size()));
  CUDA_OK(cudaMalloc(&dpages, pages.size() * 4));
  CUDA_OK(cudaMemset(dpool, 0, pool.size()));
  CUDA_OK(cudaMemset(dvpool, 0, pool.size()));
  CUDA_OK(cudaMemcpy(dsrc, src.data(), src.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dpages, pages.data(), pages.size() * 4, cudaMemcpyHostToDevice));
  std::vector<uint8_t> vpool = pool;
  std::vector<kv_write_item> hi(static_cast<size_t>(n)), di(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = (i * 7) % (int64_t(pages.size()) * page);
    hi[size_t(i)] = kv_write_item{pool.data(), vpool.data(), pages.data(), page, slot, src.data() + size_t(i * D) * es,
                                  src.data() + size_t(i * D) * es};
    di[size_t(i)] = kv_write_item{dpool, dvpool, dpages, page, slot, static_cast<uint8_t*>(dsrc) + size_t(i * D) * es,
                                  static_cast<uint8_t*>(dsrc) + size_t(i * D) * es};
  }
  kv_write_item* ditems;
  CUDA_OK(cudaMalloc(&ditems, di.size() * sizeof(kv_write_item)));
  CUDA_OK(cudaMemcpy(ditems, di.data(), di.size() * sizeof(kv_write_item), cudaMemcpyHostToDevice));
  if (kv_write_cpu(hi.data(), n, D, t, 1) != KERNEL_STATUS_OK) return 1;
  if (kv_write_cuda(ditems, n, D, t, nullptr) != KERNEL_STATUS_OK) return 1;
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(pool.size());
  CUDA_OK(cudaMemcpy(got.data(), dpool, got.size(), cudaMemcpyDeviceToHost));
  const bool ok = got == pool;
  cudaFree(dpool);
  cudaFree(dvpool);
  cudaFree(dsrc);
  cudaFree(dpages);
  cudaFree(ditems);
  std::printf("%s kv_write dtype %d head_dim %lld\n", ok ? "ok  " : "FAIL", int(t), (long long)D);
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("op_test_attention_cuda: no CUDA device; skipped\n");
    return 77;
  }
  std::mt19937 rng(20261129);
  const int64_t S = 16, W = 64;
  int failures = 0, cases = 0;
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_F16, KV_DTYPE_BF16})
    for (int64_t D : {64, 128})
      for (int64_t G : {1, 4, 7})
        for (int64_t len : {int64_t(1), S + W - 1, S + W, S + W + 1, int64_t(4097)}) {
          failures += run_case(t, D, G, len, rng);
          ++cases;
        }
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_F16, KV_DTYPE_BF16})
    for (int64_t D : {64, 128}) {
      failures += run_write_case(t, D, rng);
      ++cases;
    }
  std::printf("%d passed, %d failed\n", cases - failures, failures);
  return failures ? 1 : 0;
}
