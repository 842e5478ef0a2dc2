// Generation: sampling determinism, stop conditions, continuous batching and KV byte accounting.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <set>
#include <thread>

#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/model_thread.h"
#include "runtime/tokenizer.h"
#include "test_models.h"
#include "test_util.h"

using namespace rlkv;
using rlkv_test::fixture;
using rlkv_test::tiny_llama;

namespace {

std::vector<int32_t> prompt_ids() { return {603, 17, 250, 9, 481, 33, 120, 77}; }

GeneratorOptions base_opts() {
  GeneratorOptions o;
  o.sampling.temperature = 1.0;
  o.max_new_tokens = 24;
  o.eos_ids = {-1};
  o.sink = 2;
  o.window = 6;
  o.page_size = 4;
  o.seed = 42;
  return o;
}

}  // namespace

TEST_CASE("sampling is reproducible per stream and independent of batch composition") {
  GeneratorOptions o = base_opts();
  o.sampling.top_p = 0.9;
  o.sampling.top_k = 50;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back({i, prompt_ids(), {}, uint64_t(i)});
  o.max_batch = 5;
  auto a = Generator(tiny_llama(), nullptr, o).run(reqs);
  o.max_batch = 2;
  auto b = Generator(tiny_llama(), nullptr, o).run(reqs);
  for (int i = 0; i < 5; ++i) REQUIRE(a[size_t(i)].tokens == b[size_t(i)].tokens);
  REQUIRE(a[0].tokens != a[1].tokens);  // different streams differ
  o.seed = 43;
  auto c = Generator(tiny_llama(), nullptr, o).run({reqs[0]});
  REQUIRE(c[0].tokens != a[0].tokens);  // and the seed matters
}

TEST_CASE("length cap, EOS and the repetition detector end sequences with their reason") {
  GeneratorOptions o = base_opts();
  o.sampling.temperature = 0;
  auto r = Generator(tiny_llama(), nullptr, o).run({{0, prompt_ids(), {}, 0}});
  REQUIRE(r[0].tokens.size() == 24);
  REQUIRE(r[0].finish == FinishReason::kLength);

  // EOS: declare the 5th greedy token an end-of-sequence id.
  GeneratorOptions e = o;
  const int32_t fifth = r[0].tokens[4];
  e.eos_ids = {fifth};
  auto re = Generator(tiny_llama(), nullptr, e).run({{0, prompt_ids(), {}, 0}});
  REQUIRE(re[0].finish == FinishReason::kEos);
  const auto first = std::find(r[0].tokens.begin(), r[0].tokens.end(), fifth) - r[0].tokens.begin();
  REQUIRE(int64_t(re[0].tokens.size()) == first + 1);

  // Repetition: K = 8 tokens must hold 9 distinct ones, which is impossible, so it stops at 8;
  // with U = 1 it can never fire.
  GeneratorOptions rep = o;
  rep.repetition_every = 8;
  rep.repetition_min_distinct = 9;
  auto rr = Generator(tiny_llama(), nullptr, rep).run({{0, prompt_ids(), {}, 0}});
  REQUIRE(rr[0].finish == FinishReason::kRepetition);
  REQUIRE(rr[0].tokens.size() == 8);
  rep.repetition_min_distinct = 1;
  REQUIRE(Generator(tiny_llama(), nullptr, rep).run({{0, prompt_ids(), {}, 0}})[0].finish == FinishReason::kLength);
  // Every threshold between: the detector fires at the first whole window of 8 greedy tokens with
  // fewer than U distinct ones (counted here with a std::set), and the greedy prefix is unchanged.
  rep.max_new_tokens = 40;
  const std::vector<int32_t> greedy = Generator(tiny_llama(), nullptr,
                                                [&] {
                                                  GeneratorOptions g = o;
                                                  g.max_new_tokens = 40;
                                                  return g;
                                                }())
                                          .run({{0, prompt_ids(), {}, 0}})[0]
                                          .tokens;
  REQUIRE(greedy.size() == 40);
  for (int64_t U = 1; U <= 9; ++U) {
    size_t want = 0;  // 0: never within the 4 windows before the cap
    for (size_t k = 1; k <= 4 && want == 0; ++k)
      if (int64_t(std::set<int32_t>(greedy.begin() + long(8 * (k - 1)), greedy.begin() + long(8 * k)).size()) < U)
        want = 8 * k;
    rep.repetition_min_distinct = U;
    const GenerationResult got = Generator(tiny_llama(), nullptr, rep).run({{0, prompt_ids(), {}, 0}})[0];
    INFO("U = " << U);
    if (want == 0) continue;  // the fifth window ends at the cap, where either reason may be given
    CHECK(got.finish == FinishReason::kRepetition);
    CHECK(got.tokens.size() == want);
    CHECK(std::equal(got.tokens.begin(), got.tokens.end(), greedy.begin()));
  }
}

TEST_CASE("a sequence stops with reason length once prompt and response fill max_position_embeddings") {
  // The fixture with max_position_embeddings cut to 11: the 8-token prompt leaves room for 3 tokens.
  rlkv_test::TempDir d;
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(fixture("models/llama_tiny")))
    fs::copy(e.path(), fs::path(d.str()) / e.path().filename());
  std::string cfg = rlkv_test::read_text(d / "config.json");
  const std::string key = "\"max_position_embeddings\": 2048";
  REQUIRE(cfg.find(key) != std::string::npos);
  cfg.replace(cfg.find(key), key.size(), "\"max_position_embeddings\": 11");
  rlkv_test::write_text(d / "config.json", cfg);
  const Model small = Model::load(d.str(), at::kFloat);
  GeneratorOptions o = base_opts();
  o.sampling.temperature = 0;
  const auto r = Generator(small, nullptr, o).run({{0, prompt_ids(), {}, 0}});
  CHECK(r[0].tokens.size() == 3);
  CHECK(r[0].finish == FinishReason::kLength);
  // The same prompt on the full model goes on to the max_new_tokens cap, through the same tokens.
  const auto full = Generator(tiny_llama(), nullptr, o).run({{0, prompt_ids(), {}, 0}});
  CHECK(full[0].tokens.size() == 24);
  CHECK(std::equal(r[0].tokens.begin(), r[0].tokens.end(), full[0].tokens.begin()));
}

TEST_CASE("stop strings end the text right after the stop string") {
  const Tokenizer tok = Tokenizer::from_file(fixture("models/llama_tiny/tokenizer.json"));
  GeneratorOptions o = base_opts();
  o.sampling.temperature = 0;
  o.max_new_tokens = 32;
  auto full = Generator(tiny_llama(), &tok, o).run({{0, prompt_ids(), {}, 0}});
  const std::string text = full[0].text;
  REQUIRE(text.size() > 12);
  const std::string stop = text.substr(text.size() / 2, 3);
  o.stop = {stop};
  auto cut = Generator(tiny_llama(), &tok, o).run({{0, prompt_ids(), {}, 0}});
  REQUIRE(cut[0].finish == FinishReason::kStop);
  REQUIRE(cut[0].text == text.substr(0, text.find(stop) + stop.size()));
}

TEST_CASE("continuous batching: more requests than batch slots all finish, in request order") {
  GeneratorOptions o = base_opts();
  o.max_batch = 3;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 10; ++i) {
    std::vector<int32_t> p = prompt_ids();
    p.resize(size_t(1 + i % 7));
    reqs.push_back({100 + i, p, {}, uint64_t(i)});
  }
  o.max_new_tokens = 5;
  Generator g(tiny_llama(), nullptr, o);
  std::vector<int64_t> finished;
  auto res = g.run(reqs, [&](const GenerationResult& r) { finished.push_back(r.id); });
  REQUIRE(res.size() == 10);
  REQUIRE(finished.size() == 10);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(res[size_t(i)].id == 100 + i);
    REQUIRE(res[size_t(i)].prompt_len == 1 + i % 7);
    REQUIRE(res[size_t(i)].tokens.size() == 5);
  }
  REQUIRE(g.stats().sequences == 10);
  REQUIRE(g.stats().generated_tokens == 50);
}

TEST_CASE("KV bytes: allocation follows the two-pool formula, and compression saves memory") {
  GeneratorOptions o = base_opts();
  o.max_new_tokens = 40;
  o.page_size = 1;  // no page rounding: allocated bytes equal the formula exactly
  const ModelConfig& c = tiny_llama().config();
  const int64_t heads = c.num_layers * c.num_kv_heads;
  std::vector<uint8_t> half(size_t(heads), 1);
  for (int64_t i = 0; i < heads; i += 2) half[size_t(i)] = 0;
  Generator full(tiny_llama(), nullptr, o), comp(tiny_llama(), nullptr, o);
  full.run({{0, prompt_ids(), {}, 0}});
  comp.run({{0, prompt_ids(), half, 0}});
  const int64_t n = int64_t(prompt_ids().size()) + 40 - 1;  // tokens in the cache at the last step
  const int64_t row = 2 * 4 * c.head_dim;                   // K and V, fp32
  REQUIRE(full.stats().peak_kv_formula_bytes == row * n * heads);
  REQUIRE(full.stats().peak_kv_allocated_bytes == full.stats().peak_kv_formula_bytes);
  const int64_t compressed = heads / 2 + heads % 2;
  REQUIRE(comp.stats().peak_kv_formula_bytes == row * (n * (heads - compressed) + (o.sink + o.window) * compressed));
  REQUIRE(comp.stats().peak_kv_allocated_bytes == comp.stats().peak_kv_formula_bytes);
  REQUIRE(comp.stats().peak_kv_full_bytes == full.stats().peak_kv_formula_bytes);
}

TEST_CASE("generator refuses bad requests with a UserError") {
  Generator g(tiny_llama(), nullptr, base_opts());
  REQUIRE_THROWS_AS(g.run({{0, {}, {}, 0}}), UserError);
  REQUIRE_THROWS_AS(g.run({{0, {1, 100000}, {}, 0}}), UserError);
  REQUIRE_THROWS_AS(g.run({{0, {1, 2}, {1, 0, 1}, 0}}), UserError);
}

// A checkpoint damaged into NaN weights would otherwise generate token 0 to the length cap and score
// nothing: the generator stops at the prompt's logits with one line naming the cause.
TEST_CASE("a model whose weights hold NaN is refused at the first prompt, not sampled") {
  Model m = Model::random(tiny_llama().config(), at::kFloat, 7);
  {
    Generator g(m, nullptr, base_opts());
    REQUIRE(g.run({{0, prompt_ids(), {}, 0}}).size() == 1);  // the same model, finite, generates
  }
  m.mutable_weights().layers[0].w_down.view({-1})[3] = std::numeric_limits<float>::quiet_NaN();
  Generator g(m, nullptr, base_opts());
  REQUIRE_THROWS_AS(g.run({{0, prompt_ids(), {}, 0}}), UserError);
  REQUIRE_THROWS_WITH(g.run({{0, prompt_ids(), {}, 0}}),
                      Catch::Contains("NaN or Inf logits") && Catch::Contains("weights hold NaN or Inf"));
}

// Actor threads come and go over a training run, and several share one model. Each generator
// thread, under a ModelThread, runs with the intra-op thread count it was given (not the process
// default of every core), and gives the tokens a single thread gives: 20 threads one after another,
// then 4 at once.
TEST_CASE("generator threads: 20 one after another and 4 at once, each with its own thread count") {
  GeneratorOptions o = base_opts();
  o.max_batch = 2;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 3; ++i) reqs.push_back({i, prompt_ids(), {}, uint64_t(i)});
  const auto want = Generator(tiny_llama(), nullptr, o).run(reqs);
  std::atomic<int> wrong_threads{0}, wrong_tokens{0};
  auto body = [&] {
    const ModelThread mt(tiny_llama(), 1);
    if (at::get_num_threads() != 1) ++wrong_threads;
    const auto got = Generator(tiny_llama(), nullptr, o).run(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) wrong_tokens += got[i].tokens != want[i].tokens;
  };
  for (int i = 0; i < 20; ++i) std::thread(body).join();
  std::vector<std::thread> four;
  for (int i = 0; i < 4; ++i) four.emplace_back(body);
  for (auto& t : four) t.join();
  CHECK(wrong_threads == 0);
  CHECK(wrong_tokens == 0);
}
