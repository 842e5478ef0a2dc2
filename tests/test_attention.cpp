// Decode attention kernel (kernels/attention.h) against a float64 reference, and the compressed-cache
// semantics of docs/design.md section 5 through KvCache: a compressed head attends over exactly the first
// S and the last W positions, at every position across the ring's wrap-around.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/attention.h"
#include "runtime/kv_cache.h"
#include "runtime/torch_attention.h"

using namespace rlkv;

namespace {

// out[j] = softmax(q_j . K^T * scale) V over the slots allowed by `allowed`, in float64.
std::vector<double> reference(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                              int64_t n, int64_t d, double scale, const std::vector<bool>& allowed) {
  std::vector<double> s(size_t(n), -INFINITY), out(size_t(d), 0.0);
  double mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    if (!allowed[size_t(t)]) continue;
    double acc = 0;
    for (int64_t i = 0; i < d; ++i) acc += q[size_t(i)] * k[size_t(t * d + i)];
    s[size_t(t)] = acc * scale;
    mx = std::max(mx, s[size_t(t)]);
  }
  double sum = 0;
  for (int64_t t = 0; t < n; ++t)
    if (allowed[size_t(t)]) sum += std::exp(s[size_t(t)] - mx);
  for (int64_t t = 0; t < n; ++t) {
    if (!allowed[size_t(t)]) continue;
    const double p = std::exp(s[size_t(t)] - mx) / sum;
    for (int64_t i = 0; i < d; ++i) out[size_t(i)] += p * v[size_t(t * d + i)];
  }
  return out;
}

std::vector<double> to_double(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Tolerance per storage dtype: inputs are rounded to the dtype before the float64 reference sees
// them, so what remains is fp32 accumulation over n terms (~n * 2^-24 relative) plus the output's
// own rounding (half an ulp of the dtype: 2^-9 bf16, 2^-12 fp16). Values are O(1).
double tolerance(at::ScalarType t) {
  if (t == at::kBFloat16) return 8e-3;
  if (t == at::kHalf) return 1e-3;
  return 2e-5;
}

}  // namespace

TEST_CASE("decode attention matches a float64 reference (paged and contiguous, GQA, dtypes)") {
  const int64_t page = 16;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t d : {24, 64}) {
      for (int64_t group : {1, 3, 7}) {
        for (int64_t n : {1, 19, 111}) {
          const int64_t B = 2, hkv = 2, hq = hkv * group;
          at::manual_seed(1234 + n * 7 + d + group);
          at::Tensor q = at::randn({B, hq, d}).to(dt);
          // Per (seq, head) K/V of n rows; even spans paged (pages in shuffled order), odd contiguous.
          std::vector<at::Tensor> ks, vs;
          std::vector<std::vector<int32_t>> page_ids(size_t(B * hkv));
          at::Tensor pool_k = at::zeros({B * hkv * ((n + page - 1) / page) + 3, page, d}).to(dt);
          at::Tensor pool_v = at::zeros_like(pool_k);
          std::vector<int32_t> free_pages;
          for (int32_t p = 0; p < int32_t(pool_k.size(0)); ++p) free_pages.push_back(p);
          std::mt19937 rng(uint32_t(n + d));
          std::shuffle(free_pages.begin(), free_pages.end(), rng);
          std::vector<rlkv_kv_span> spans(size_t(B * hkv));
          for (int64_t i = 0; i < B * hkv; ++i) {
            ks.push_back(at::randn({n, d}).to(dt));
            vs.push_back(at::randn({n, d}).to(dt));
            rlkv_kv_span& sp = spans[size_t(i)];
            sp.len = n;
            if (i % 2 == 0) {
              for (int64_t t = 0; t < n; t += page) {
                const int32_t pg = free_pages.back();
                free_pages.pop_back();
                page_ids[size_t(i)].push_back(pg);
                const int64_t rows = std::min(page, n - t);
                pool_k[pg].narrow(0, 0, rows).copy_(ks.back().narrow(0, t, rows));
                pool_v[pg].narrow(0, 0, rows).copy_(vs.back().narrow(0, t, rows));
              }
              sp.k = pool_k.data_ptr();
              sp.v = pool_v.data_ptr();
              sp.pages = page_ids[size_t(i)].data();
              sp.page_size = page;
            } else {
              sp.k = ks.back().data_ptr();
              sp.v = vs.back().data_ptr();
            }
          }
          const float scale = 1.0f / std::sqrt(float(d));
          at::Tensor out = decode_attention(q, spans, hkv, scale, 2);
          REQUIRE(out.sizes() == q.sizes());
          REQUIRE(at::isfinite(out.to(at::kFloat)).all().item<bool>());
          for (int64_t b = 0; b < B; ++b)
            for (int64_t j = 0; j < hq; ++j) {
              const int64_t i = b * hkv + j / group;
              auto ref = reference(to_double(q[b][j]), to_double(ks[size_t(i)]), to_double(vs[size_t(i)]), n, d, scale,
                                   std::vector<bool>(size_t(n), true));
              auto got = to_double(out[b][j]);
              double err = 0;
              for (int64_t x = 0; x < d; ++x)
                err = std::max(err, std::abs(got[size_t(x)] - ref[size_t(x)]) / (1.0 + std::abs(ref[size_t(x)])));
              INFO("dtype " << c10::toString(dt) << " d " << d << " group " << group << " n " << n);
              REQUIRE(err <= tolerance(dt));
            }
        }
      }
    }
  }
}

TEST_CASE("decode attention leaves memory outside the output untouched") {
  const int64_t B = 3, hkv = 1, hq = 4, d = 19 * 2, n = 7;
  at::manual_seed(7);
  at::Tensor q = at::randn({B, hq, d});
  at::Tensor k = at::randn({B, n, d}), v = at::randn({B, n, d});
  std::vector<rlkv_kv_span> spans(B);
  for (int64_t b = 0; b < B; ++b)
    spans[size_t(b)] = rlkv_kv_span{k[b].data_ptr(), v[b].data_ptr(), nullptr, 0, n, nullptr};
  // Output rows of stride hq * d + 5: the gaps hold sentinels.
  const int64_t stride_seq = hq * d + 5;
  std::vector<float> buf(size_t(B * stride_seq + 8), 12345.0f);
  rlkv_decode_args a{};
  a.num_seqs = B;
  a.num_q_heads = hq;
  a.num_kv_heads = hkv;
  a.head_dim = d;
  a.q = q.data_ptr();
  a.q_stride_seq = hq * d;
  a.q_stride_head = d;
  a.out = buf.data() + 4;
  a.out_stride_seq = stride_seq;
  a.out_stride_head = d;
  a.spans = spans.data();
  a.scale = 0.1f;
  a.dtype = RLKV_DTYPE_F32;
  REQUIRE(rlkv_decode_attention_cpu(&a, 2) == RLKV_STATUS_OK);
  for (int64_t i = 0; i < 4; ++i) REQUIRE(buf[size_t(i)] == 12345.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = hq * d; i < stride_seq; ++i) REQUIRE(buf[size_t(4 + b * stride_seq + i)] == 12345.0f);
  REQUIRE(buf.back() == 12345.0f);
}

TEST_CASE("decode attention refuses bad arguments") {
  rlkv_decode_args a{};
  a.num_seqs = 1;
  a.num_q_heads = 3;
  a.num_kv_heads = 2;  // 3 % 2 != 0
  a.head_dim = 8;
  REQUIRE(rlkv_decode_attention_cpu(&a, 1) == RLKV_STATUS_BAD_ARGS);
  REQUIRE(rlkv_decode_attention_cpu(nullptr, 1) == RLKV_STATUS_BAD_ARGS);
  a.num_q_heads = 2;
  REQUIRE(rlkv_decode_attention_cpu(&a, 1) == RLKV_STATUS_BAD_ARGS);  // null pointers
}

TEST_CASE("compressed heads attend over exactly the sink and the recent window, across wrap-around") {
  ModelConfig cfg;
  cfg.num_layers = 2;
  cfg.num_kv_heads = 3;
  cfg.num_q_heads = 6;
  cfg.head_dim = 16;
  const int64_t S = 4, W = 8, page = 5;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    KvCache cache(cfg, dt, at::kCPU, S, W, page);
    // Layer 0: heads 0 and 2 compressed; layer 1: head 1 compressed.
    const std::vector<uint8_t> keep = {0, 1, 0, 1, 0, 1};
    const int64_t seq = cache.add_sequence(keep);
    const int64_t steps = S + 3 * W + 3;  // wraps the ring three times
    at::manual_seed(99);
    at::Tensor all_k = at::randn({steps, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim}).to(dt);
    at::Tensor all_v = at::randn({steps, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim}).to(dt);
    for (int64_t p = 0; p < steps; ++p) {
      cache.reserve(seq, p + 1);
      at::Tensor q = at::randn({1, cfg.num_q_heads, cfg.head_dim}).to(dt);
      for (int64_t l = 0; l < cfg.num_layers; ++l) {
        cache.write_decode({seq}, l, all_k[p][l].unsqueeze(0).contiguous(), all_v[p][l].unsqueeze(0).contiguous(), 1);
        at::Tensor out = decode_attention(q, cache.spans({seq}, l, 1), cfg.num_kv_heads, 0.25f, 1);
        for (int64_t j = 0; j < cfg.num_q_heads; ++j) {
          const int64_t h = j / 2;
          const bool full = keep[size_t(l * cfg.num_kv_heads + h)];
          std::vector<bool> allowed(size_t(p + 1));
          for (int64_t t = 0; t <= p; ++t) allowed[size_t(t)] = full || t < S || t > p - W;
          auto ref = reference(to_double(q[0][j]), to_double(all_k.narrow(0, 0, p + 1).select(1, l).select(1, h)),
                               to_double(all_v.narrow(0, 0, p + 1).select(1, l).select(1, h)), p + 1, cfg.head_dim,
                               0.25, allowed);
          auto got = to_double(out[0][j]);
          double err = 0;
          for (int64_t x = 0; x < cfg.head_dim; ++x)
            err = std::max(err, std::abs(got[size_t(x)] - ref[size_t(x)]) / (1.0 + std::abs(ref[size_t(x)])));
          INFO("dtype " << c10::toString(dt) << " position " << p << " layer " << l << " q head " << j
                        << (full ? " full" : " compressed"));
          REQUIRE(err <= tolerance(dt));
        }
      }
      cache.set_length(seq, p + 1);
    }
  }
}

// A prompt longer than S + W written in one prefill: a compressed head keeps positions < S and the
// last W (each in slot S + (p - S) mod W), and the decode steps after it go on wrapping the same ring.
// The float64 reference sees every position and masks the rest, so a wrong slot or a lost position
// shows however the other paths agree.
TEST_CASE("after a long prefill, compressed heads attend over exactly the sink and the last window") {
  ModelConfig cfg;
  cfg.num_layers = 2;
  cfg.num_kv_heads = 2;
  cfg.num_q_heads = 4;
  cfg.head_dim = 16;
  const int64_t S = 4, W = 8, page = 5, T = 30, steps = T + 11;
  KvCache cache(cfg, at::kFloat, at::kCPU, S, W, page);
  const std::vector<uint8_t> keep = {0, 1, 1, 0};  // layer 0 head 0, layer 1 head 1 compressed
  const int64_t seq = cache.add_sequence(keep);
  at::manual_seed(7);
  at::Tensor all_k = at::randn({steps, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim});
  at::Tensor all_v = at::randn({steps, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim});
  cache.reserve(seq, T);
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    cache.write_prefill(seq, l, all_k.narrow(0, 0, T).select(1, l).contiguous(),
                        all_v.narrow(0, 0, T).select(1, l).contiguous(), 1);
  cache.set_length(seq, T);
  for (int64_t p = T - 1; p < steps; ++p) {
    if (p >= T) {  // a decode step writes position p
      cache.reserve(seq, p + 1);
      for (int64_t l = 0; l < cfg.num_layers; ++l)
        cache.write_decode({seq}, l, all_k[p][l].unsqueeze(0).contiguous(), all_v[p][l].unsqueeze(0).contiguous(), 1);
      cache.set_length(seq, p + 1);
    }
    at::Tensor q = at::randn({1, cfg.num_q_heads, cfg.head_dim});
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      at::Tensor out = decode_attention(q, cache.spans({seq}, l, 0), cfg.num_kv_heads, 0.25f, 1);
      for (int64_t j = 0; j < cfg.num_q_heads; ++j) {
        const int64_t h = j / 2;
        const bool full = keep[size_t(l * cfg.num_kv_heads + h)];
        std::vector<bool> allowed(size_t(p + 1));
        for (int64_t t = 0; t <= p; ++t) allowed[size_t(t)] = full || t < S || t > p - W;
        auto ref = reference(to_double(q[0][j]), to_double(all_k.narrow(0, 0, p + 1).select(1, l).select(1, h)),
                             to_double(all_v.narrow(0, 0, p + 1).select(1, l).select(1, h)), p + 1, cfg.head_dim, 0.25,
                             allowed);
        auto got = to_double(out[0][j]);
        double err = 0;
        for (int64_t x = 0; x < cfg.head_dim; ++x)
          err = std::max(err, std::abs(got[size_t(x)] - ref[size_t(x)]) / (1.0 + std::abs(ref[size_t(x)])));
        INFO("position " << p << " layer " << l << " q head " << j << (full ? " full" : " compressed"));
        REQUIRE(err <= tolerance(at::kFloat));
      }
    }
  }
}
