// The resident-table decode step (runtime/static_decode.h) on the CPU: the same tables a CUDA graph
// replays, driving the CPU kernels, must give exactly what the eager step gives.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <array>
#include <random>

#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/static_decode.h"
#include "test_models.h"
#include "test_util.h"

using namespace rlkv;
using rlkv_test::tiny_llama;

namespace {

// Masks compressing a seeded half of the KV heads of each sequence (one sequence keeps all).
std::vector<uint8_t> mask_for(const ModelConfig& c, int64_t b) {
  std::vector<uint8_t> keep(size_t(c.num_layers * c.num_kv_heads), 1);
  if (b == 0) return keep;
  std::mt19937 rng(static_cast<uint32_t>(b));
  for (auto& k : keep) k = uint8_t(rng() % 2);
  return keep;
}

// B sequences (masks mask_for(b)) prefilled with the same random prompts of `prompt` tokens into two
// caches: their ids in `se` and `st`; returns the prompts [B, prompt].
at::Tensor prefill_both(const Model& m, KvCache& eager, KvCache& tabled, int64_t B, int64_t prompt,
                        std::vector<int64_t>& se, std::vector<int64_t>& st) {
  const ModelConfig& c = m.config();
  at::Tensor toks = at::randint(0, c.vocab_size, {B, prompt}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    se.push_back(eager.add_sequence(mask_for(c, b)));
    st.push_back(tabled.add_sequence(mask_for(c, b)));
    eager.reserve(se.back(), prompt);
    tabled.reserve(st.back(), prompt);
    m.forward_dense(toks[b].unsqueeze(0), [&](int64_t l, const at::Tensor& k, const at::Tensor& v) {
      eager.write_prefill(se.back(), l, k[0].contiguous(), v[0].contiguous(), 1);
      tabled.write_prefill(st.back(), l, k[0].contiguous(), v[0].contiguous(), 1);
    });
    eager.set_length(se.back(), prompt);
    tabled.set_length(st.back(), prompt);
  }
  return toks;
}

// Two caches (S 2, W 4, pages of 3 rows) holding the same B prefilled sequences (prefill_both): one
// stepped eagerly, one through StaticDecodes with `opts` (one CPU thread, bound max_len).
struct TwinCaches {
  TwinCaches(const Model& m, int64_t B, int64_t prompt, int64_t max_len, bool pad_batches = false)
      : eager(m.config(), at::kFloat, at::kCPU, 2, 4, 3), tabled(m.config(), at::kFloat, at::kCPU, 2, 4, 3) {
    prefill_both(m, eager, tabled, B, prompt, se, st);
    opts.max_len = max_len;
    opts.num_threads = 1;
    opts.pad_batches = pad_batches;
  }
  KvCache eager, tabled;
  std::vector<int64_t> se, st;
  StaticDecodeOptions opts;
};

}  // namespace

TEST_CASE("resident-table decode steps equal eager steps, through pool growth and max_len doubling") {
  const Model& m = tiny_llama();
  const ModelConfig& c = m.config();
  const int64_t B = 3, S = 2, W = 5, page = 3, prompt = 4, steps = 30;
  for (auto lists : {KvCache::PageLists::host, KvCache::PageLists::table}) {
    // Two caches filled identically: one stepped eagerly, one through StaticDecode.
    KvCache eager(c, at::kFloat, at::kCPU, S, W, page, lists), tabled(c, at::kFloat, at::kCPU, S, W, page, lists);
    std::vector<int64_t> se, st;
    const at::Tensor toks = prefill_both(m, eager, tabled, B, prompt, se, st);
    StaticDecodeOptions o;
    o.max_len = prompt + 2;  // forces max_len to grow (and the plan to be redone) during the run
    o.num_threads = 1;
    StaticDecode sd(m, tabled, B, o);
    REQUIRE_FALSE(sd.uses_graph());
    at::Tensor next = toks.select(1, prompt - 1).contiguous();
    for (int64_t i = 0; i < steps; ++i) {
      at::Tensor he = m.forward_decode(next, eager, se, 1);
      at::Tensor ht = sd.step(next, st);
      INFO("step " << i << (lists == KvCache::PageLists::table ? " (page table)" : " (host page lists)"));
      REQUIRE(at::equal(he, ht));
      next = m.logits(he).argmax(-1);
    }
    REQUIRE(sd.max_len() >= prompt + steps);
    for (int64_t b = 0; b < B; ++b) REQUIRE(tabled.length(st[size_t(b)]) == prompt + steps);
    REQUIRE(sd.captures() == 0);  // no graphs on the CPU
  }
}

TEST_CASE("StaticDecodes keeps one StaticDecode per batch size and batch sizes in turn equal eager steps") {
  const Model& m = tiny_llama();
  const ModelConfig& c = m.config();
  const int64_t prompt = 5, steps = 24;
  TwinCaches tc(m, 3, prompt, prompt + 3);  // each batch size's bound passes during the run
  auto &eager = tc.eager, &tabled = tc.tabled;
  const auto &se = tc.se, &st = tc.st;
  const StaticDecodeOptions& o = tc.opts;
  StaticDecodes sds(m, tabled, o);
  // Batch sizes 3, 1, 2, 3, 1, 2, ...: each StaticDecode steps again after the others have.
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t n = std::array<int64_t, 3>{3, 1, 2}[size_t(i % 3)];
    const std::vector<int64_t> e(se.begin(), se.begin() + n), t(st.begin(), st.begin() + n);
    const at::Tensor next = at::randint(0, c.vocab_size, {n}, at::kLong);
    INFO("step " << i << ", batch " << n);
    REQUIRE(at::equal(m.forward_decode(next, eager, e, 1), sds.batch(n).step(next, t)));
  }
  CHECK(sds.size() == 3);
  for (int64_t n = 1; n <= 3; ++n) {
    CHECK(sds.batch(n).max_len() > o.max_len);  // the one that stepped (its bound grew), not a new one
    CHECK(sds.batch(n).captures() == 0);        // no graphs on the CPU
  }
  CHECK(sds.pool_users() == -1);  // no graph memory pool on the CPU
  CHECK(device_reserved_bytes(at::kCPU, true) == 0);
}

TEST_CASE("graph_batch_bucket rounds a batch up to 1, 2, 4 or a multiple of 8") {
  const std::vector<std::pair<int64_t, int64_t>> want{{1, 1},  {2, 2},   {3, 4},   {4, 4},   {5, 8},   {8, 8},
                                                      {9, 16}, {16, 16}, {17, 24}, {64, 64}, {65, 72}, {255, 256}};
  for (const auto& [n, b] : want) CHECK(graph_batch_bucket(n) == b);
}

TEST_CASE("padded batches through StaticDecodes equal eager steps and leave the cache as eager steps do") {
  const Model& m = tiny_llama();
  const ModelConfig& c = m.config();
  const int64_t prompt = 5, steps = 18;
  TwinCaches tc(m, 6, prompt, prompt + 3, /*pad_batches=*/true);
  auto &eager = tc.eager, &tabled = tc.tabled;
  const auto &se = tc.se, &st = tc.st;
  StaticDecodes sds(m, tabled, tc.opts);
  // Batch sizes 3, 6, 1, ... run at 4 (one pad row), 8 (two) and 1 row; a different subset each time.
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t n = std::array<int64_t, 3>{3, 6, 1}[size_t(i % 3)];
    std::vector<int64_t> e, t;
    for (int64_t j = 0; j < n; ++j) {
      const size_t k = size_t((i + j) % 6);
      e.push_back(se[k]);
      t.push_back(st[k]);
    }
    const at::Tensor next = at::randint(0, c.vocab_size, {n}, at::kLong);
    const at::Tensor got = sds.step(next, t);
    INFO("step " << i << ", batch " << n);
    REQUIRE(got.size(0) == n);
    // Not bit for bit: the GEMMs run at the bucket's row count, and the CPU BLAS rounds a matrix's
    // last rows differently at another size (1e-6 here); a pad row writing into the cache would be O(1).
    REQUIRE(at::allclose(m.forward_decode(next, eager, e, 1), got, 1e-4, 1e-5));
  }
  CHECK(sds.size() == 3);  // batch sizes 1, 4 and 8
  for (size_t k = 0; k < se.size(); ++k) CHECK(tabled.length(st[k]) == eager.length(se[k]));
  CHECK(tabled.allocated_bytes() == eager.allocated_bytes());
  // The caches hold the same rows: a last step of every sequence, eager on both, agrees.
  const at::Tensor last = at::randint(0, c.vocab_size, {6}, at::kLong);
  CHECK(at::allclose(m.forward_decode(last, eager, se, 1), m.forward_decode(last, tabled, st, 1), 1e-4, 1e-5));
}

TEST_CASE("the generator gives the same tokens through resident tables as through eager steps") {
  GeneratorOptions o;
  o.sampling.temperature = 1.0;
  o.sampling.top_k = 40;
  o.max_new_tokens = 12;
  o.eos_ids = {-1};
  o.sink = 2;
  o.window = 4;
  o.page_size = 4;
  o.seed = 7;
  o.max_batch = 3;  // continuous batching: batch sizes 3, 2, 1 each get their own StaticDecode
  std::vector<GenerationRequest> reqs;
  const ModelConfig& c = tiny_llama().config();
  for (int i = 0; i < 5; ++i) {
    std::vector<int32_t> p = {603, 17, 250, 9, 481, 33, 120, 77};
    p.resize(size_t(2 + i));
    reqs.push_back({i, p, mask_for(c, i), uint64_t(i)});
  }
  const auto eager = Generator(tiny_llama(), nullptr, o).run(reqs);
  o.resident_tables = true;
  const auto tabled = Generator(tiny_llama(), nullptr, o).run(reqs);
  o.cuda_graphs = CudaGraphs::kOn;  // on the CPU: the same tables, no capture
  const auto graphs_on_cpu = Generator(tiny_llama(), nullptr, o).run(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    REQUIRE(eager[i].tokens == tabled[i].tokens);
    REQUIRE(eager[i].tokens == graphs_on_cpu[i].tokens);
  }
}

TEST_CASE("CudaGraphs::kAuto takes graphs on a GPU without tensor parallelism or token dropping, eager elsewhere") {
  for (bool gpu : {false, true})
    for (bool tp : {false, true})
      for (bool dropping : {false, true}) {
        INFO("gpu " << gpu << " tp " << tp << " dropping " << dropping);
        CHECK(resolve_cuda_graphs(CudaGraphs::kAuto, gpu, tp, dropping) == (gpu && !tp && !dropping));
        CHECK(resolve_cuda_graphs(CudaGraphs::kOn, gpu, tp, dropping));
        CHECK_FALSE(resolve_cuda_graphs(CudaGraphs::kOff, gpu, tp, dropping));
      }
  GeneratorOptions o;
  CHECK(o.cuda_graphs == CudaGraphs::kAuto);                       // the default
  CHECK_FALSE(Generator(tiny_llama(), nullptr, o).cuda_graphs());  // a CPU model: eager
  o.cuda_graphs = CudaGraphs::kOn;
  CHECK(Generator(tiny_llama(), nullptr, o).cuda_graphs());
}
