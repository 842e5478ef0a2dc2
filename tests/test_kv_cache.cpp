// KvCache bookkeeping: pages and rings return to the pools, masks are per sequence.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/torch_attention.h"

using namespace rlkv;

namespace {
ModelConfig tiny() {
  ModelConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 2;
  c.num_q_heads = 4;
  c.head_dim = 8;
  return c;
}
}  // namespace

TEST_CASE("pages and rings are reused after release, reserved memory stops growing") {
  KvCache cache(tiny(), at::kFloat, at::kCPU, 2, 4, 3);
  int64_t after_first = -1;  // reserved after round 0: every later round reuses what it released
  for (int round = 0; round < 5; ++round) {
    const int64_t a = cache.add_sequence({1, 0, 0, 1});
    const int64_t b = cache.add_sequence({});
    cache.reserve(a, 20);
    cache.reserve(b, 20);
    cache.set_length(a, 20);
    cache.set_length(b, 20);
    // a: 2 full heads x ceil(20/3) = 7 pages, 2 rings; b: 4 x 7 pages.
    REQUIRE(cache.allocated_bytes() == 2 * 4 * 8 * (6 * 7 * 3 + 2 * 6));
    REQUIRE(cache.formula_bytes() == 2 * 4 * 8 * (6 * 20 + 2 * 6));
    INFO("round " << round);
    if (round == 0) after_first = cache.reserved_bytes();
    REQUIRE(cache.reserved_bytes() == after_first);
    cache.release(a);
    cache.release(b);
    REQUIRE(cache.allocated_bytes() == 0);
    REQUIRE(cache.live_sequences() == 0);
  }
  const int64_t reserved = cache.reserved_bytes();
  const int64_t c = cache.add_sequence({});
  cache.reserve(c, 20);
  REQUIRE(cache.reserved_bytes() == reserved);
}

TEST_CASE("a head mask of the wrong size is a UserError") {
  KvCache cache(tiny(), at::kFloat, at::kCPU, 2, 4, 3);
  REQUIRE_THROWS_AS(cache.add_sequence({1, 0, 1}), UserError);
}

TEST_CASE("reserve_capacity sizes the pools in one step") {
  KvCache cache(tiny(), at::kFloat, at::kCPU, 2, 4, 3);
  cache.reserve_capacity(100, 20);
  REQUIRE(cache.reserved_bytes() == 2 * 4 * 8 * (100 * 3 + 20 * 6));
  const int64_t a = cache.add_sequence({1, 0, 0, 1});
  cache.reserve(a, 90);  // 2 full heads x 30 pages + 2 rings: within the capacity
  REQUIRE(cache.reserved_bytes() == 2 * 4 * 8 * (100 * 3 + 20 * 6));
}

// The page table (the GPU layout of the page lists, PageLists::table) run on the CPU against the
// host page lists: the same pages in every span and write, bit-identical attention, through table
// growth (rows as sequences are added, columns as they lengthen) and the reuse of a released slot.
TEST_CASE("page-table caches give the same spans and attention as host page lists") {
  const ModelConfig cfg = tiny();
  const int64_t S = 2, W = 3, page = 2;
  KvCache host(cfg, at::kFloat, at::kCPU, S, W, page, KvCache::PageLists::host);
  KvCache table(cfg, at::kFloat, at::kCPU, S, W, page, KvCache::PageLists::table);
  REQUIRE_FALSE(host.uses_page_table());
  REQUIRE(table.uses_page_table());
  REQUIRE_FALSE(table.pages_on_device());  // a CPU table is host memory
  at::manual_seed(5);
  const std::vector<std::vector<uint8_t>> masks = {{1, 1, 1, 1}, {1, 0, 0, 1}, {}, {0, 1, 1, 0}};
  std::vector<int64_t> hs, ts;
  auto add = [&](size_t m) {
    hs.push_back(host.add_sequence(masks[m]));
    ts.push_back(table.add_sequence(masks[m]));
    REQUIRE(hs.back() == ts.back());
  };
  add(0);
  add(1);
  int checked_pages = 0;
  for (int64_t step = 0; step < 40; ++step) {
    if (step == 12) add(2);  // more rows
    if (step == 20) {        // a released slot is reused by a sequence with another mask
      host.release(hs[0]);
      table.release(ts[0]);
      hs.erase(hs.begin());
      ts.erase(ts.begin());
      add(3);
    }
    const int64_t B = int64_t(hs.size());
    for (size_t b = 0; b < hs.size(); ++b) {
      host.reserve(hs[b], host.length(hs[b]) + 1);
      table.reserve(ts[b], table.length(ts[b]) + 1);
    }
    at::Tensor q = at::randn({B, cfg.num_q_heads, cfg.head_dim});
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      at::Tensor k = at::randn({B, cfg.num_kv_heads, cfg.head_dim}), v = at::randn({B, cfg.num_kv_heads, cfg.head_dim});
      host.write_decode(hs, l, k, v, 1);
      table.write_decode(ts, l, k, v, 1);
      const std::vector<rlkv_kv_span> hsp = host.spans(hs, l, 1), tsp = table.spans(ts, l, 1);
      REQUIRE(hsp.size() == tsp.size());
      for (size_t i = 0; i < hsp.size(); ++i) {
        REQUIRE(hsp[i].len == tsp[i].len);
        REQUIRE((hsp[i].pages == nullptr) == (tsp[i].pages == nullptr));
        if (hsp[i].pages == nullptr) continue;
        for (int64_t j = 0; j < (hsp[i].len + page - 1) / page; ++j, ++checked_pages)
          REQUIRE(hsp[i].pages[j] == tsp[i].pages[j]);
      }
      at::Tensor oh = decode_attention(q, hsp, cfg.num_kv_heads, 0.3f, 1);
      at::Tensor ot = decode_attention(q, tsp, cfg.num_kv_heads, 0.3f, 1, table.pages_on_device());
      REQUIRE(at::equal(oh, ot));
    }
    for (size_t b = 0; b < hs.size(); ++b) {
      host.set_length(hs[b], host.length(hs[b]) + 1);
      table.set_length(ts[b], table.length(ts[b]) + 1);
    }
  }
  REQUIRE(checked_pages > 1000);
}
