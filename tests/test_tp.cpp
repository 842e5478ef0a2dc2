// Tensor-parallel execution against the whole model, run under mpirun (ctest: tp_np2,
// tp_np4): every rank loads the whole model alone and its share in the group of all ranks, and the
// two must agree: dense logits, step-by-step decode logits through caches whose masks compress some
// heads, greedy generations with continuous batching, and the bytes each rank read.
// Comparisons use CHECK, never REQUIRE, after the collectives of a case, so that a failing rank
// cannot leave the others waiting in a collective.
#define CATCH_CONFIG_RUNNER
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "comm/collectives.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "test_util.h"

using namespace rlkv;
using rlkv_test::fixture;

namespace {

std::shared_ptr<Collectives> g_world;

const char* kModels[] = {"models/llama_tiny", "models/qwen2_tiny", "models/qwen3_tiny", "models/mistral_tiny", "toy"};

std::string model_dir(const std::string& name) {
  return name == "toy" ? std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner" : fixture(name);
}

bool shares(const ModelConfig& c, int n) {
  try {
    tp_shard(c, 0, n);
    return true;
  } catch (const UserError&) {
    return false;
  }
}

Model load_tp(const std::string& dir, std::shared_ptr<Collectives> readers = nullptr, LoadStats* st = nullptr) {
  LoadOptions lo;
  lo.tp = host_tensor_comm(g_world);
  if (readers) lo.reader_group = host_tensor_comm(readers);
  return Model::load(dir, at::kFloat, lo, st);
}

// Max |a - b| relative to max(1, max |a|): "within 1e-5" in logit units for logits of order one.
double err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1.0, a.abs().max().item<double>());
}

at::Tensor random_tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(V, {B, T}, gen, at::TensorOptions().dtype(at::kLong));
}

std::vector<int64_t> to_vec(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Half the heads compressed (seeded), at least one of each kind.
std::vector<uint8_t> mixed_mask(const ModelConfig& c, uint64_t seed) {
  std::vector<uint8_t> keep(static_cast<size_t>(c.kv_heads_total()));
  std::mt19937_64 rng(seed);
  for (auto& k : keep) k = uint8_t(rng() & 1);
  keep[0] = 0;
  keep[1 % keep.size()] = 1;
  return keep;
}

// Prefill `prompt` then decode `cont` one token at a time (teacher forcing); logits of every step.
std::vector<at::Tensor> decode_logits(const Model& m, const std::vector<uint8_t>& keep, const at::Tensor& prompt,
                                      const std::vector<int64_t>& cont) {
  const ModelConfig& c = m.config();
  KvCache cache(m.local_config(), m.dtype(), m.device(), /*sink=*/2, /*window=*/3, /*page_size=*/4);
  const int64_t T = prompt.size(0);
  const int64_t seq = cache.add_sequence(m.shard().local_mask(keep, c.num_layers, c.num_kv_heads));
  cache.reserve(seq, T);
  at::Tensor h = m.forward_dense(prompt.unsqueeze(0), [&](int64_t l, const at::Tensor& k, const at::Tensor& v) {
    cache.write_prefill(seq, l, k[0].contiguous(), v[0].contiguous(), 1);
  });
  cache.set_length(seq, T);
  std::vector<at::Tensor> out{m.logits(h[0][T - 1])};
  for (int64_t t : cont)
    out.push_back(m.logits(m.forward_decode(at::tensor(std::vector<int64_t>{t}), cache, {seq}, 1))[0]);
  return out;
}

struct ModelPair {
  std::string name;
  ModelConfig config;
  Model whole, tp;
};

// The models the group of all ranks can share, each loaded whole and as this rank's share; loaded
// once per process (every rank makes the same first call, so the collectives pair up).
const std::vector<ModelPair>& shared_models() {
  static const std::vector<ModelPair> pairs = [] {
    std::vector<ModelPair> out;
    for (const char* name : kModels) {
      const std::string dir = model_dir(name);
      const ModelConfig c = load_model_config(dir);
      if (shares(c, g_world->size())) out.push_back({name, c, Model::load(dir, at::kFloat), load_tp(dir)});
    }
    return out;
  }();
  return pairs;
}

}  // namespace

TEST_CASE("tensor-parallel dense logits equal the whole model's (fp32, within 1e-5)") {
  const int n = g_world->size();
  for (const char* name : kModels) {  // the ones the group cannot share are refused
    const std::string dir = model_dir(name);
    if (!shares(load_model_config(dir), n))
      CHECK_THROWS_WITH(load_tp(dir), Catch::Contains("tensor_parallel = " + std::to_string(n)));
  }
  for (const auto& [name, c, whole, tp] : shared_models()) {
    INFO(name << ", tensor parallel " << n);
    CHECK(tp.local_config().num_kv_heads * std::min<int64_t>(n, c.num_kv_heads) == c.num_kv_heads);
    const at::Tensor tokens = random_tokens(2, 19, c.vocab_size, 7);
    const at::Tensor a = whole.logits(whole.forward_dense(tokens));
    const at::Tensor b = tp.logits(tp.forward_dense(tokens));
    CHECK(b.sizes() == a.sizes());
    CHECK(err(a, b) <= 1e-5);
  }
}

TEST_CASE("tensor-parallel decode through compressed caches equals the whole model's at every step") {
  for (const auto& [name, c, whole, tp] : shared_models()) {
    INFO(name << ", tensor parallel " << g_world->size());
    const std::vector<uint8_t> keep = mixed_mask(c, 11);
    const at::Tensor prompt = random_tokens(1, 11, c.vocab_size, 3)[0];
    const std::vector<int64_t> cont = to_vec(random_tokens(1, 20, c.vocab_size, 5)[0]);
    const auto a = decode_logits(whole, keep, prompt, cont);
    const auto b = decode_logits(tp, keep, prompt, cont);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, err(a[i], b[i]));
    CHECK(worst <= 1e-5);
    // The mask matters: the same steps with every head full give other logits.
    const auto full = decode_logits(whole, {}, prompt, cont);
    CHECK(err(full.back(), a.back()) > 1e-3);
  }
}

TEST_CASE("tensor-parallel greedy generations equal the whole model's, masks and batching mixed") {
  for (const auto& [name, c, whole, tp] : shared_models()) {
    INFO(name << ", tensor parallel " << g_world->size());
    GeneratorOptions o;
    o.sampling.temperature = 0;
    o.max_new_tokens = 24;
    o.max_batch = 2;  // three requests: the third joins when a slot frees up
    o.eos_ids = {-1};
    o.sink = 2;
    o.window = 3;
    o.page_size = 4;
    std::vector<GenerationRequest> reqs;
    const std::vector<std::vector<uint8_t>> masks = {
        {}, mixed_mask(c, 1), std::vector<uint8_t>(size_t(c.kv_heads_total()), 0)};
    for (size_t i = 0; i < masks.size(); ++i) {
      const auto toks = to_vec(random_tokens(1, int64_t(5 + 3 * i), c.vocab_size, 100 + i)[0]);
      GenerationRequest r;
      r.id = int64_t(i);
      r.prompt.assign(toks.begin(), toks.end());
      r.keep = masks[i];
      r.stream = i;
      reqs.push_back(std::move(r));
    }
    const auto a = Generator(whole, nullptr, o).run(reqs);
    const auto b = Generator(tp, nullptr, o).run(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) CHECK(a[i].tokens == b[i].tokens);
  }
}

TEST_CASE("each rank reads only its share of the weights; broadcast loading reads once") {
  const int n = g_world->size();
  const std::string dir = model_dir("toy");  // 4 KV heads: split (not replicated) for 2 and 4 ranks
  const ModelConfig c = load_model_config(dir);
  SafetensorsModelFiles files(dir);
  int64_t total = 0, replicated = 0;
  for (const auto& name : files.names()) {
    const auto& info = files.file_of(name).info(name);
    total += int64_t(info.end - info.begin);
    if (name.find("norm") != std::string::npos) replicated += int64_t(info.end - info.begin);
  }
  LoadStats st;
  const Model tp = load_tp(dir, nullptr, &st);
  std::vector<double> sums = {double(st.bytes_read), double(st.weight_bytes)};
  g_world->allreduce_sum(sums);
  // The shares partition every tensor except the norms, which every rank holds.
  CHECK(int64_t(sums[0]) == total + (n - 1) * replicated);
  CHECK(st.bytes_received == 0);
  // Memory: about 1/N of the model, plus the norms and the vocabulary padding.
  const int64_t padding = (tp.shard().vocab_padded * n - c.vocab_size) * c.hidden_size * 4 * 2;
  CHECK(st.weight_bytes <= total / n + replicated + padding);

  LoadStats bst;
  const Model tb = load_tp(dir, g_world, &bst);
  CHECK(bst.bytes_read == (g_world->rank() == 0 ? total : 0));
  CHECK(bst.bytes_received == (g_world->rank() == 0 ? 0 : total));
  CHECK(bst.weight_bytes == st.weight_bytes);
  const at::Tensor tokens = random_tokens(1, 9, c.vocab_size, 1);
  const at::Tensor a = tp.logits(tp.forward_dense(tokens));
  const at::Tensor b = tb.logits(tb.forward_dense(tokens));
  CHECK(at::equal(a, b));
}

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  g_world =
      mpi.active() ? std::shared_ptr<Collectives>(mpi_world()) : std::shared_ptr<Collectives>(local_collectives());
  at::set_num_threads(1);
  const int rc = Catch::Session().run(argc, argv);
  std::vector<double> failed = {rc != 0 ? 1.0 : 0.0};
  g_world->allreduce_sum(failed);  // every rank exits with the group's verdict
  g_world.reset();
  return failed[0] > 0 ? 1 : 0;
}
