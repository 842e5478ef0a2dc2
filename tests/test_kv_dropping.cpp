// Token dropping in the runtime (runtime/kv_cache.h "Token dropping", runtime/eviction.h): every
// method keeps each head within its capacity and always keeps the sink and the window; a budget
// that never fills reproduces the full cache's greedy tokens exactly; bad requests are refused.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "test_models.h"
#include "test_util.h"

using namespace rlkv;
using rlkv_test::tiny_llama;

namespace {

std::vector<int32_t> prompt_ids() { return {603, 17, 250, 9, 481, 33, 120, 77}; }

GeneratorOptions greedy(EvictionMethod m) {
  GeneratorOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 40;
  o.eos_ids = {-1};
  o.sink = 2;
  o.window = 4;
  o.page_size = 4;
  o.dropping = m;
  o.dropping_params.snap_every = 5;  // compress often: the point is to exercise the rules
  o.dropping_params.snap_queries = 3;
  o.dropping_params.rkv_buffer = 5;
  o.dropping_params.rkv_queries = 3;
  return o;
}

}  // namespace

TEST_CASE("token dropping with a budget that never fills gives the full cache's tokens") {
  const Model& m = tiny_llama();
  for (EvictionMethod method : {EvictionMethod::kH2O, EvictionMethod::kSnapKV, EvictionMethod::kRKV}) {
    INFO(eviction_method_name(method));
    GeneratorOptions o = greedy(method);
    const auto full = Generator(m, nullptr, o).run({{0, prompt_ids(), {}, 0}});
    GenerationRequest r{0, prompt_ids(), {}, 0};
    r.budget = int64_t(prompt_ids().size()) + o.max_new_tokens;  // room for every token
    const auto dropped = Generator(m, nullptr, o).run({r});
    CHECK(dropped[0].tokens == full[0].tokens);
    const int64_t heads = m.config().num_layers * m.config().num_kv_heads;
    // Every token but the last sampled one entered the cache.
    CHECK(dropped[0].kv_rows_peak == heads * (int64_t(prompt_ids().size()) + o.max_new_tokens - 1));
  }
}

TEST_CASE("every token-dropping head stays within its capacity and keeps its sink and window") {
  const Model& m = tiny_llama();
  const ModelConfig& c = m.config();
  const int64_t heads = c.num_layers * c.num_kv_heads, budget = 10;
  for (EvictionMethod method : {EvictionMethod::kH2O, EvictionMethod::kSnapKV, EvictionMethod::kRKV}) {
    INFO(eviction_method_name(method));
    GeneratorOptions o = greedy(method);
    EvictionParams p = o.dropping_params;
    p.budget = budget;
    p.sink = o.sink;
    p.window = o.window;
    const int64_t capacity = eviction_capacity(method, p);
    GenerationRequest r{0, prompt_ids(), {}, 0};
    r.budget = budget;
    const auto res = Generator(m, nullptr, o).run({r});
    REQUIRE(int64_t(res[0].tokens.size()) == o.max_new_tokens);
    CHECK(res[0].kv_rows_peak == heads * capacity);  // filled up to its capacity, never beyond

    // The cache itself, step by step: after each decode step every head holds at most `capacity`
    // positions, its sink and its most recent `window` positions among them.
    KvCache cache(c, m.dtype(), m.device(), o.sink, o.window, o.page_size);
    cache.set_token_dropping(method, o.dropping_params);
    const int64_t seq = cache.add_sequence({}, budget);
    const auto ids = prompt_ids();
    cache.reserve(seq, int64_t(ids.size()));
    at::Tensor tok = at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1});
    m.forward_dense(tok, [&](int64_t l, const at::Tensor& k, const at::Tensor& v) {
      cache.write_prefill(seq, l, k[0].contiguous(), v[0].contiguous(), 1);
    });
    cache.set_length(seq, int64_t(ids.size()));
    for (int step = 0; step < 30; ++step) {
      m.forward_decode(at::tensor(std::vector<int64_t>{int64_t(step % 50)}), cache, {seq}, 1);
      const int64_t len = cache.length(seq);
      for (int64_t i = 0; i < heads; ++i) {
        const auto pos = cache.dropping_positions(seq, i);
        REQUIRE(int64_t(pos.size()) <= capacity);
        REQUIRE(std::is_sorted(pos.begin(), pos.end()));
        for (int64_t p0 = 0; p0 < o.sink; ++p0) CHECK(std::count(pos.begin(), pos.end(), p0) == 1);
        for (int64_t p0 = len - o.window; p0 < len; ++p0) CHECK(std::count(pos.begin(), pos.end(), p0) == 1);
      }
    }
  }
}

TEST_CASE("token budgets that cannot work are refused with a UserError") {
  const Model& m = tiny_llama();
  GeneratorOptions plain;
  plain.max_new_tokens = 4;
  GenerationRequest r{0, prompt_ids(), {}, 0};
  r.budget = 20;
  CHECK_THROWS_AS(Generator(m, nullptr, plain).run({r}), UserError);  // no method
  GeneratorOptions o = greedy(EvictionMethod::kH2O);
  r.budget = o.sink + o.window;  // nothing beyond the sink and the window
  CHECK_THROWS_WITH(Generator(m, nullptr, o).run({r}), Catch::Matchers::Contains("budget"));
  r.budget = 20;
  r.keep.assign(size_t(m.config().num_layers * m.config().num_kv_heads), 0);
  CHECK_THROWS_WITH(Generator(m, nullptr, o).run({r}), Catch::Matchers::Contains("head mask"));
}
