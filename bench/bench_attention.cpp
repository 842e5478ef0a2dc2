// CPU decode-attention kernel throughput (not a test: it prints numbers). Reports the bytes of K and
// V read per second for full (paged) and compressed (ring) spans, next to a plain memcpy of the same
// bytes on this machine (its bytes read plus written), as llm.c's kernel harness does.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_args.h"
#include "kernels/attention.h"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: bench_attention [THREADS (2)]";
  rlkv_bench::help_or_run(argc, argv, usage);
  const int threads = int(rlkv_bench::int_arg(argc, argv, 1, 2, 1, 1024, usage));
  const int64_t d = 128, hkv = 8, group = 4, page = 16, S = 16, W = 64;
  for (int64_t B : {1, 8}) {
    for (int64_t n : {1024, 4096, 16384}) {
      for (double sparsity : {0.0, 0.5}) {
        const int64_t pages_per = (n + page - 1) / page;
        std::vector<float> kpool(size_t(B * hkv * pages_per * page * d)), vpool(kpool.size());
        std::vector<float> kring(size_t(B * hkv * (S + W) * d)), vring(kring.size());
        std::mt19937 rng(1);
        std::normal_distribution<float> nd;
        for (auto& x : kpool) x = nd(rng);
        for (auto& x : vpool) x = nd(rng);
        for (auto& x : kring) x = nd(rng);
        for (auto& x : vring) x = nd(rng);
        std::vector<int32_t> pages(size_t(B * hkv * pages_per));
        for (size_t i = 0; i < pages.size(); ++i) pages[i] = int32_t(i);
        std::shuffle(pages.begin(), pages.end(), rng);
        std::vector<rlkv_kv_span> spans(size_t(B * hkv));
        int64_t bytes = 0;
        for (int64_t i = 0; i < B * hkv; ++i) {
          const bool compressed = double(i % hkv) < sparsity * double(hkv);
          rlkv_kv_span& sp = spans[size_t(i)];
          if (compressed) {
            sp = rlkv_kv_span{
                kring.data() + i * (S + W) * d, vring.data() + i * (S + W) * d, nullptr, 0, S + W, nullptr};
          } else {
            sp = rlkv_kv_span{kpool.data(), vpool.data(), pages.data() + i * pages_per, page, n, nullptr};
          }
          bytes += 2 * sp.len * d * 4;
        }
        std::vector<float> q(size_t(B * hkv * group * d), 0.1f), out(q.size());
        rlkv_decode_args a =
            rlkv_decode_args_packed(B, hkv * group, hkv, d, q.data(), out.data(), spans.data(), 0.088f, RLKV_DTYPE_F32);
        if (rlkv_decode_attention_cpu(&a, threads) != RLKV_STATUS_OK) {
          std::cerr << "bench_attention: the kernel refused its arguments\n";
          return 1;
        }
        int reps = 0;
        const double t0 = now();
        while (now() - t0 < 0.5) {
          rlkv_decode_attention_cpu(&a, threads);
          ++reps;
        }
        const double per = (now() - t0) / reps;
        // memcpy of the same number of bytes, for scale: it reads them and writes them, so its rate
        // counts both (the kernel's counts the K and V it reads).
        std::vector<char> src(static_cast<size_t>(bytes)), dst(static_cast<size_t>(bytes));
        std::memset(src.data(), 1, src.size());
        int creps = 0;
        const double c0 = now();
        while (now() - c0 < 0.3) {
          std::memcpy(dst.data(), src.data(), src.size());
          ++creps;
        }
        const double cper = (now() - c0) / creps;
        nlohmann::json j = {{"kernel", "rlkv_decode_attention_cpu"},
                            {"batch", B},
                            {"len", n},
                            {"sparsity", sparsity},
                            {"threads", threads},
                            {"us", per * 1e6},
                            {"kv_GBps", double(bytes) / per / 1e9},
                            {"memcpy_read_plus_write_GBps", 2.0 * double(bytes) / cper / 1e9}};
        std::cout << j.dump() << std::endl;
      }
    }
  }
}
