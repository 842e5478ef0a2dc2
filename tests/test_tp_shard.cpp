// A rank's share of the model under tensor parallelism (runtime/tp_shard.h): KV heads split with
// their query groups, replicated when there are more ranks than KV heads, refused otherwise.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "runtime/tp_shard.h"

using namespace rlkv;

namespace {

ModelConfig cfg(int64_t hq, int64_t hkv, int64_t inter = 1024, int64_t vocab = 1000) {
  ModelConfig c;
  c.num_q_heads = hq;
  c.num_kv_heads = hkv;
  c.intermediate_size = inter;
  c.vocab_size = vocab;
  c.num_layers = 2;
  c.hidden_size = 64;
  c.head_dim = 16;
  return c;
}

}  // namespace

TEST_CASE("KV heads are split with their query groups when the group size divides them") {
  const ModelConfig c = cfg(32, 8);  // Llama-3.1-8B's heads
  for (int n : {1, 2, 4, 8}) {
    std::vector<int> owner(8, -1);
    for (int r = 0; r < n; ++r) {
      const TpShard s = tp_shard(c, r, n);
      CHECK(s.num_kv_heads == 8 / n);
      CHECK(s.num_q_heads == 32 / n);
      // Query heads of this rank belong to its KV heads: q head h uses KV head h / 4.
      CHECK(s.q_begin / 4 == s.kv_begin);
      CHECK((s.q_begin + s.num_q_heads - 1) / 4 == s.kv_begin + s.num_kv_heads - 1);
      for (int64_t h = s.kv_begin; h < s.kv_begin + s.num_kv_heads; ++h) {
        CHECK(owner[size_t(h)] == -1);
        owner[size_t(h)] = r;
      }
      CHECK(s.intermediate == 1024 / n);
      CHECK(s.i_begin == r * (1024 / n));
    }
    for (int o : owner) CHECK(o >= 0);  // every KV head has exactly one owner
  }
}

TEST_CASE("more ranks than KV heads replicate each KV head over the ranks of its query group") {
  const ModelConfig c = cfg(28, 4, 18944);  // Qwen2.5-7B's heads
  const TpShard s0 = tp_shard(c, 0, 4), s3 = tp_shard(c, 3, 4);
  CHECK(s0.num_kv_heads == 1);
  CHECK(s3.kv_begin == 3);
  const ModelConfig m = cfg(4, 1, 160, 609);  // the Mistral fixture: 1 KV head, 4 query heads
  for (int r = 0; r < 4; ++r) {
    const TpShard s = tp_shard(m, r, 4);
    CHECK(s.kv_begin == 0);
    CHECK(s.num_kv_heads == 1);
    CHECK(s.q_begin == r);
    CHECK(s.num_q_heads == 1);
  }
  const ModelConfig g = cfg(8, 2);  // group 4 over 8 ranks: ranks 0-3 share KV head 0, 4-7 head 1
  for (int r = 0; r < 8; ++r) CHECK(tp_shard(g, r, 8).kv_begin == r / 4);
}

TEST_CASE("group sizes that cannot share the heads or the MLP are refused with the sizes named") {
  CHECK_THROWS_WITH(tp_shard(cfg(32, 8), 0, 3),
                    Catch::Contains("tensor_parallel = 3 cannot share the model's 8 KV heads"));
  CHECK_THROWS_WITH(tp_shard(cfg(12, 4), 0, 8), Catch::Contains("does not divide the model's 12 query heads"));
  CHECK_THROWS_WITH(tp_shard(cfg(6, 2), 0, 4), Catch::Contains("query heads"));  // the Llama fixture
  CHECK_NOTHROW(tp_shard(cfg(32, 8), 0, 16));  // 2 ranks per KV head, 2 query heads each
  CHECK_THROWS_WITH(tp_shard(cfg(32, 8, 1000), 0, 16), Catch::Contains("intermediate size 1000"));
  CHECK_THROWS_WITH(tp_shard(cfg(32, 8), 0, 64), Catch::Contains("32 query heads"));
  CHECK_THROWS_WITH(tp_shard(cfg(32, 8, 1001), 0, 2), Catch::Contains("intermediate size 1001"));
  CHECK_THROWS_AS(tp_shard(cfg(32, 8), 2, 2), UserError);
  CHECK_THROWS_AS(tp_shard(cfg(32, 8), 0, 0), UserError);
}

TEST_CASE("vocabulary rows are split into equal padded blocks") {
  const ModelConfig c = cfg(8, 4, 64, 609);
  int64_t covered = 0;
  for (int r = 0; r < 4; ++r) {
    const TpShard s = tp_shard(c, r, 4);
    CHECK(s.vocab_padded == 153);
    CHECK(s.v_begin == covered);
    covered += s.v_count;
  }
  CHECK(covered == 609);
  CHECK(tp_shard(c, 3, 4).v_count == 609 - 3 * 153);
}

TEST_CASE("a rank's mask holds the columns of its own KV heads") {
  const ModelConfig c = cfg(8, 4);
  // Layer-major [L=2 x H=4]: layer 0 = 1 0 1 1, layer 1 = 0 0 1 0.
  const std::vector<uint8_t> keep = {1, 0, 1, 1, 0, 0, 1, 0};
  CHECK(tp_shard(c, 0, 2).local_mask(keep, 2, 4) == std::vector<uint8_t>{1, 0, 0, 0});
  CHECK(tp_shard(c, 1, 2).local_mask(keep, 2, 4) == std::vector<uint8_t>{1, 1, 1, 0});
  CHECK(tp_shard(c, 3, 4).local_mask(keep, 2, 4) == std::vector<uint8_t>{1, 0});
  CHECK(tp_shard(c, 0, 1).local_mask(keep, 2, 4) == keep);
  CHECK(tp_shard(c, 0, 2).local_mask({}, 2, 4).empty());  // empty = all full
  CHECK_THROWS_AS(tp_shard(c, 0, 2).local_mask({1, 0}, 2, 4), UserError);
}
