// Decode-attention bandwidth on the GPU (kernel benchmark; not a test: it prints numbers).
//
// 1. The ceiling: a device-to-device copy of a buffer far larger than L2, counted as bytes read plus
//    bytes written per second.
// 2. rlkv_decode_attention_cuda on Llama-3.1-8B's attention shape (8 KV heads, 4 query heads each,
//    head_dim 128, bf16) for one layer: `batch` sequences with full caches of `len` tokens in a paged
//    pool (16-row pages in shuffled order, as the runtime's pool after some churn), where a fraction s of
//    the (sequence, KV head) pairs is compressed to an S + W ring instead. Achieved bandwidth = bytes of
//    K and V the kernel must read / time, against the copy; the speed-up of s over s = 0 against the
//    theory 1 / ((1 - s) + s (S + W) / len).
// Prints one JSON line per measurement (stdout); exits 77 without a CUDA device.
// Needs only the CUDA runtime and the kernels: build it with nvcc alone on a machine with no other
// dependency (launch/gpu_check.sh) or through CMake (target bench_attention_cuda).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention_cuda.h"
#include "kernels/cuda_check.h"

namespace {

// Before each timed call, a 512 MB memset evicts L2 (60 MB on an H200), so every call reads from HBM
// as a decode step does (each layer's cache is read once per step), and keeps the GPU busy while the
// host enqueues the call, so the host's launch latency is not inside the interval.
void* flush_buffer() {
  static void* buf = nullptr;
  if (buf == nullptr) CUDA_OK(cudaMalloc(&buf, size_t(512) << 20));
  return buf;
}

// Milliseconds per call of `fn` (median of `reps` timed calls after `warm` untimed ones).
template <class F>
double time_ms(F fn, int warm, int reps, bool flush = true) {
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  for (int i = 0; i < warm; ++i) fn();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    if (flush) CUDA_OK(cudaMemsetAsync(flush_buffer(), i & 0xff, size_t(512) << 20));
    CUDA_OK(cudaEventRecord(a));
    fn();
    CUDA_OK(cudaEventRecord(b));
    CUDA_OK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_OK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CUDA_OK(cudaEventDestroy(a));
  CUDA_OK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double copy_bandwidth_gbs() {
  const size_t bytes = size_t(4) << 30;  // 4 GiB each way: ~70x the H200's L2
  void *src, *dst;
  CUDA_OK(cudaMalloc(&src, bytes));
  CUDA_OK(cudaMalloc(&dst, bytes));
  CUDA_OK(cudaMemset(src, 1, bytes));
  const double ms = time_ms([&] { CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 2, 10, false);
  CUDA_OK(cudaFree(src));
  CUDA_OK(cudaFree(dst));
  const double gbs = 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
  std::printf("{\"bench\": \"d2d_copy\", \"bytes_each_way\": %zu, \"ms\": %.4f, \"gb_per_s_read_plus_write\": %.1f}\n",
              bytes, ms, gbs);
  return gbs;
}

const char* variant_name(int32_t v) {
  return v == RLKV_DECODE_VARIANT_TC ? "tc" : v == RLKV_DECODE_VARIANT_COOP ? "coop" : "lane";
}

struct Shape {
  int64_t batch, len;
  double sparsity;
  int32_t variant;
};

struct Result {
  double ms, gbs;
};

Result run(const Shape& sh, int64_t S, int64_t W, double copy_gbs, double dense_ms) {
  const int64_t Hkv = 8, G = 4, D = 128, page = 16, es = 2;
  const int64_t pairs = sh.batch * Hkv, ring = S + W;
  // Which pairs are compressed: a seeded shuffle picks round(s * pairs) of them.
  std::mt19937 rng(7);
  std::vector<int64_t> order(static_cast<size_t>(pairs));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<uint8_t> compressed(static_cast<size_t>(pairs), 0);
  const int64_t n_comp = int64_t(sh.sparsity * double(pairs) + 0.5);
  for (int64_t i = 0; i < n_comp; ++i) compressed[size_t(order[size_t(i)])] = 1;
  const int64_t n_full = pairs - n_comp, pages_per = (sh.len + page - 1) / page;
  const size_t row = size_t(D * es);
  const size_t pool_bytes = size_t(std::max<int64_t>(1, n_full * pages_per)) * page * row;
  const size_t ring_bytes = size_t(std::max<int64_t>(1, n_comp)) * ring * row;
  void *kp, *vp, *kr, *vr, *q, *out;
  CUDA_OK(cudaMalloc(&kp, pool_bytes));
  CUDA_OK(cudaMalloc(&vp, pool_bytes));
  CUDA_OK(cudaMalloc(&kr, ring_bytes));
  CUDA_OK(cudaMalloc(&vr, ring_bytes));
  // Small values (bf16 0x3c00 ~ 0.0078): finite scores, so the timing is of real arithmetic.
  CUDA_OK(cudaMemset(kp, 0x3c, pool_bytes));
  CUDA_OK(cudaMemset(vp, 0x3c, pool_bytes));
  CUDA_OK(cudaMemset(kr, 0x3c, ring_bytes));
  CUDA_OK(cudaMemset(vr, 0x3c, ring_bytes));
  CUDA_OK(cudaMalloc(&q, size_t(sh.batch * Hkv * G) * row));
  CUDA_OK(cudaMalloc(&out, size_t(sh.batch * Hkv * G) * row));
  CUDA_OK(cudaMemset(q, 0x3c, size_t(sh.batch * Hkv * G) * row));
  std::vector<int32_t> pages(size_t(std::max<int64_t>(1, n_full * pages_per)));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  int32_t* dpages;
  CUDA_OK(cudaMalloc(&dpages, pages.size() * 4));
  CUDA_OK(cudaMemcpy(dpages, pages.data(), pages.size() * 4, cudaMemcpyHostToDevice));
  std::vector<rlkv_kv_span> spans(static_cast<size_t>(pairs));
  int64_t fi = 0, ci = 0, max_len = 0;
  double kv_bytes = 0;
  for (int64_t p = 0; p < pairs; ++p) {
    if (compressed[size_t(p)]) {
      const int64_t n = std::min(sh.len, ring);
      spans[size_t(p)] = rlkv_kv_span{static_cast<char*>(kr) + size_t(ci) * ring * row,
                                      static_cast<char*>(vr) + size_t(ci) * ring * row,
                                      nullptr,
                                      0,
                                      n,
                                      nullptr};
      ++ci;
    } else {
      spans[size_t(p)] = rlkv_kv_span{kp, vp, dpages + fi * pages_per, page, sh.len, nullptr};
      ++fi;
    }
    kv_bytes += 2.0 * double(spans[size_t(p)].len) * double(row);
    max_len = std::max(max_len, spans[size_t(p)].len);
  }
  rlkv_kv_span* dspans;
  CUDA_OK(cudaMalloc(&dspans, spans.size() * sizeof(rlkv_kv_span)));
  CUDA_OK(cudaMemcpy(dspans, spans.data(), spans.size() * sizeof(rlkv_kv_span), cudaMemcpyHostToDevice));
  rlkv_decode_args a =
      rlkv_decode_args_packed(sh.batch, Hkv * G, Hkv, D, q, out, dspans, 0.08838834764831845f, RLKV_DTYPE_BF16);
  a.max_len = max_len;
  a.variant = sh.variant;
  a.workspace_bytes = rlkv_decode_attention_cuda_workspace_bytes(&a);
  void* ws = nullptr;
  if (a.workspace_bytes > 0) CUDA_OK(cudaMalloc(&ws, size_t(a.workspace_bytes)));
  a.workspace = ws;
  const double ms = time_ms(
      [&] {
        if (rlkv_decode_attention_cuda(&a, nullptr) != RLKV_STATUS_OK) {
          std::fprintf(stderr, "rlkv_decode_attention_cuda failed: %s\n", cudaGetErrorString(cudaGetLastError()));
          std::exit(1);
        }
      },
      3, 20);
  const double gbs = kv_bytes / (ms * 1e-3) / 1e9;
  // Theory at the sparsity actually built (round(s * pairs) of the pairs).
  const double s_real = double(n_comp) / double(pairs);
  const double theory = 1.0 / ((1.0 - s_real) + s_real * double(std::min(sh.len, ring)) / double(sh.len));
  std::printf(
      "{\"bench\": \"decode_attention\", \"variant\": \"%s\", \"dtype\": \"bf16\", \"batch\": %lld, \"kv_heads\": "
      "%lld, \"group\": %lld, "
      "\"head_dim\": %lld, \"len\": %lld, \"sparsity\": %.4f, \"sink\": %lld, \"window\": %lld, \"kv_bytes\": %.0f, "
      "\"ms\": %.4f, \"gb_per_s\": %.1f, \"of_copy\": %.3f, \"speedup_vs_dense\": %.3f, \"theory\": %.3f, "
      "\"of_theory\": %.3f, \"workspace_bytes\": %lld}\n",
      variant_name(sh.variant), (long long)sh.batch, (long long)Hkv, (long long)G, (long long)D, (long long)sh.len,
      s_real, (long long)S, (long long)W, kv_bytes, ms, gbs, gbs / copy_gbs, dense_ms > 0 ? dense_ms / ms : 1.0, theory,
      dense_ms > 0 ? (dense_ms / ms) / theory : 1.0, (long long)a.workspace_bytes);
  std::fflush(stdout);
  for (void* p : {kp, vp, kr, vr, q, out, static_cast<void*>(dpages), static_cast<void*>(dspans), ws})
    if (p) CUDA_OK(cudaFree(p));
  return {ms, gbs};
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("bench_attention_cuda: no CUDA device; skipped\n");
    return 77;
  }
  // Evaluation windows of docs/design.md (S = 16, W = 64); `--quick` runs the shortest list;
  // `--only BATCH,LEN,SPARSITY,VARIANT` (variant tc | lane | coop) one shape, without the copy
  // ceiling (for a profiler).
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int64_t S = 16, W = 64;
  if (argc > 2 && std::string(argv[1]) == "--only") {
    long long b = 0, len = 0;
    double s = 0;
    char v[16] = {0};
    if (std::sscanf(argv[2], "%lld,%lld,%lf,%15s", &b, &len, &s, v) != 4 || b < 1 || len < 1 || s < 0 || s > 1) {
      std::fprintf(stderr, "bench_attention_cuda: --only expects BATCH,LEN,SPARSITY,VARIANT, got '%s'\n", argv[2]);
      return 2;
    }
    const std::string vs = v;
    const int32_t variant = vs == "tc"     ? RLKV_DECODE_VARIANT_TC
                            : vs == "coop" ? RLKV_DECODE_VARIANT_COOP
                                           : RLKV_DECODE_VARIANT_LANE;
    run({b, len, s, variant}, S, W, 1.0, 0);
    return 0;
  }
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"bench\": \"device\", \"name\": \"%s\", \"sms\": %d, \"l2_bytes\": %d}\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize);
  const double copy = copy_bandwidth_gbs();
  std::vector<int64_t> lens =
      quick ? std::vector<int64_t>{4096, 32768} : std::vector<int64_t>{4096, 8192, 16384, 32768};
  // Every variant (kernels/attention.h, rlkv_decode_variant) on every shape.
  for (int32_t variant :
       {int32_t(RLKV_DECODE_VARIANT_TC), int32_t(RLKV_DECODE_VARIANT_LANE), int32_t(RLKV_DECODE_VARIANT_COOP)})
    for (int64_t batch : {int64_t(32), int64_t(4)})
      for (int64_t len : lens) {
        double dense = 0;
        for (double s : {0.0, 0.5, 0.8}) {
          const Result r = run({batch, len, s, variant}, S, W, copy, dense);
          if (s == 0.0) dense = r.ms;
        }
      }
  return 0;
}
