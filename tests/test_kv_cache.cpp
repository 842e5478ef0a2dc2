// KvCache bookkeeping: pages and rings return to the pools, masks are per sequence.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "core/error.h"
#include "runtime/kv_cache.h"

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

TEST_CASE("pages and rings are reused after release; reserved memory stops growing") {
  KvCache cache(tiny(), at::kFloat, at::kCPU, 2, 4, 3);
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
