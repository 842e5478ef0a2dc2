// Parity with Hugging Face transformers on the tiny random models of tests/fixtures/models (made by
// tools/golden/make_fixtures.py): full-sequence logits and 32-token greedy continuations, for the
// Llama (sharded, llama3 rope scaling), Qwen2 (bf16 weights, qkv bias, tied), Qwen3 (q/k norm,
// group 4, head_dim != hidden / heads) and Mistral layouts.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "reference_tensors.h"
#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "test_util.h"

using namespace rlkv;
using rlkv_test::fixture;

namespace {

const char* kModels[] = {"llama_tiny", "qwen2_tiny", "qwen3_tiny", "mistral_tiny"};

// Max |a - b| over the tensor, relative to the logit scale max |b|.
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-6, b.abs().max().item<double>());
}

std::vector<std::vector<int32_t>> greedy(const Model& m, const std::vector<std::vector<int32_t>>& prompts,
                                         int64_t max_batch, const std::vector<uint8_t>& keep = {}) {
  GeneratorOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 32;
  o.max_batch = max_batch;
  o.eos_ids = {-1};  // the references never stop on EOS
  o.sink = 4;
  o.window = 8;
  o.page_size = 5;
  Generator g(m, nullptr, o);
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) reqs.push_back({int64_t(i), prompts[i], keep, i});
  std::vector<std::vector<int32_t>> out;
  for (const auto& r : g.run(reqs)) out.push_back(r.tokens);
  return out;
}

}  // namespace

TEST_CASE("fp32 logits match transformers within 1e-4 of the logit scale") {
  for (const char* name : kModels) {
    const Model m = Model::load(fixture(std::string("models/") + name), at::kFloat);
    SafetensorsFile ref(fixture(std::string("models/") + name + ".reference.safetensors"));
    for (int i = 0; i < 4; ++i) {
      at::Tensor prompt = rlkv_test::reference_tensor(ref, "prompt_" + std::to_string(i));
      at::Tensor want = rlkv_test::reference_tensor(ref, "logits_" + std::to_string(i));
      at::Tensor got = m.logits(m.forward_dense(prompt.unsqueeze(0)))[0];
      INFO(name << " prompt " << i << " (" << prompt.numel() << " tokens)");
      REQUIRE(got.sizes() == want.sizes());
      CHECK(rel_err(got, want) <= 1e-4);
    }
  }
}

TEST_CASE("greedy continuations through the KV cache equal transformers' tokens, in any batching") {
  for (const char* name : kModels) {
    const Model m = Model::load(fixture(std::string("models/") + name), at::kFloat);
    SafetensorsFile ref(fixture(std::string("models/") + name + ".reference.safetensors"));
    std::vector<std::vector<int32_t>> prompts, want;
    for (int i = 0; i < 4; ++i) {
      prompts.push_back(rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "prompt_" + std::to_string(i))));
      want.push_back(rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "greedy_" + std::to_string(i))));
    }
    for (int64_t batch : {1, 3, 4}) {
      INFO(name << " max_batch " << batch);
      CHECK(greedy(m, prompts, batch) == want);
    }
    // An explicit mask with every head full is the plain model.
    const int64_t heads = m.config().num_layers * m.config().num_kv_heads;
    CHECK(greedy(m, prompts, 4, std::vector<uint8_t>(size_t(heads), 1)) == want);
  }
}

TEST_CASE("decode logits through the cache equal the dense forward pass") {
  // The cache path (prefill, then one token at a time through the kernels) against one dense pass
  // over the whole sequence: fp32, so only summation order differs.
  const Model m = Model::load(fixture("models/qwen3_tiny"), at::kFloat);
  SafetensorsFile ref(fixture("models/qwen3_tiny.reference.safetensors"));
  std::vector<int32_t> prompt = rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "prompt_2"));
  std::vector<int32_t> cont = rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "greedy_2"));
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), cont.begin(), cont.end());
  at::Tensor dense = m.logits(m.forward_dense(at::tensor(all).unsqueeze(0)))[0];

  KvCache cache(m.config(), at::kFloat, at::kCPU, 4, 8, 5);
  const int64_t seq = cache.add_sequence({});
  const int64_t T = int64_t(prompt.size());
  cache.reserve(seq, T);
  m.forward_dense(at::tensor(std::vector<int64_t>(all.begin(), all.begin() + T)).unsqueeze(0),
                  [&](int64_t l, const at::Tensor& k, const at::Tensor& v) {
                    cache.write_prefill(seq, l, k[0].contiguous(), v[0].contiguous(), 1);
                  });
  cache.set_length(seq, T);
  for (size_t i = 0; i + 1 < cont.size(); ++i) {
    at::Tensor lg = m.logits(m.forward_decode(at::tensor(std::vector<int64_t>{cont[i]}), cache, {seq}, 1))[0];
    INFO("decode step " << i);
    REQUIRE(rel_err(lg, dense[T + int64_t(i)]) <= 1e-5);
  }
}

TEST_CASE("compressed heads whose ring never wraps give exactly the full-cache tokens") {
  // With S + W >= prompt + generated length, a ring holds every position: same math, same order.
  const Model m = Model::load(fixture("models/llama_tiny"), at::kFloat);
  SafetensorsFile ref(fixture("models/llama_tiny.reference.safetensors"));
  std::vector<int32_t> prompt = rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "prompt_1"));
  GeneratorOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 32;
  o.eos_ids = {-1};
  o.sink = 8;
  o.window = 40;  // 7 + 32 tokens fit
  Generator g(m, nullptr, o);
  const int64_t n = m.config().num_layers * m.config().num_kv_heads;
  auto full = g.run({{0, prompt, std::vector<uint8_t>(size_t(n), 1), 0}});
  auto comp = g.run({{0, prompt, std::vector<uint8_t>(size_t(n), 0), 0}});
  REQUIRE(full[0].tokens == comp[0].tokens);
  REQUIRE(full[0].tokens == rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "greedy_1")));
}

TEST_CASE("compression changes generations once the ring wraps") {
  // Guards against a mask that is silently ignored: every head compressed to S + W = 6 positions
  // must change some of the 32-token continuations of the 41-token prompt.
  const Model m = Model::load(fixture("models/llama_tiny"), at::kFloat);
  SafetensorsFile ref(fixture("models/llama_tiny.reference.safetensors"));
  std::vector<int32_t> prompt = rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "prompt_3"));
  const int64_t n = m.config().num_layers * m.config().num_kv_heads;
  GeneratorOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 32;
  o.eos_ids = {-1};
  o.sink = 2;
  o.window = 4;
  Generator g(m, nullptr, o);
  auto comp = g.run({{0, prompt, std::vector<uint8_t>(size_t(n), 0), 0}});
  REQUIRE(comp[0].tokens != rlkv_test::to_ids(rlkv_test::reference_tensor(ref, "greedy_3")));
}

TEST_CASE("bf16: logits stay as close to transformers' bf16 run as bf16 rounding itself moves them") {
  // Tolerance: HF's own bf16 run differs from the fp32 reference by e_hf (bf16 rounding through two
  // layers). Ours computes in bf16 too but in another summation order, so we require our distance to
  // HF's bf16 logits to be within 2 * e_hf + 1e-3 (relative to the logit scale), and our distance to
  // fp32 within 3 * e_hf + 1e-3.
  const Model m = Model::load(fixture("models/qwen2_tiny"), at::kBFloat16);
  SafetensorsFile ref(fixture("models/qwen2_tiny.reference.safetensors"));
  for (int i = 0; i < 4; ++i) {
    at::Tensor prompt = rlkv_test::reference_tensor(ref, "prompt_" + std::to_string(i));
    at::Tensor f32 = rlkv_test::reference_tensor(ref, "logits_" + std::to_string(i));
    at::Tensor hf16 = rlkv_test::reference_tensor(ref, "logits_bf16_" + std::to_string(i));
    at::Tensor got = m.logits(m.forward_dense(prompt.unsqueeze(0)))[0];
    const double e_hf = rel_err(hf16, f32);
    INFO("prompt " << i << ": HF bf16 vs fp32 " << e_hf << ", ours vs HF bf16 " << rel_err(got, hf16)
                   << ", ours vs fp32 " << rel_err(got, f32));
    CHECK(rel_err(got, hf16) <= 2 * e_hf + 1e-3);
    CHECK(rel_err(got, f32) <= 3 * e_hf + 1e-3);
  }
}
