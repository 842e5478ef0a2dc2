// DuoAttention's gate training (duo/): the streaming mask against a float64 hand computation, alpha = 1
// reproducing forward_dense, the passkey format's targets, a few training steps on an in-process toy
// model, and the output directory as a mask source.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "duo/duo_train.h"
#include "masks/head_mask.h"
#include "masks/mask_spec.h"
#include "runtime/model.h"
#include "runtime/torch_attention.h"
#include "test_models.h"
#include "test_util.h"
#include "toy/toy_task.h"
#include "toy/toy_trainer.h"

using namespace rlkv;

namespace {

// out[b][t][j][:] for query head j of KV head j / G, in float64, attending to the positions `visible`
// allows; alpha[h] mixes full causal (1) and streaming (0) attention.
at::Tensor reference_gated(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                           const std::vector<double>& alpha, int64_t S, int64_t W) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), G = Hq / k.size(2);
  const at::Tensor q64 = q.to(at::kDouble), k64 = k.to(at::kDouble), v64 = v.to(at::kDouble);
  auto qa = q64.accessor<double, 4>();
  auto ka = k64.accessor<double, 4>();
  auto va = v64.accessor<double, 4>();
  at::Tensor out = at::zeros({B, T, Hq, D}, at::kDouble);
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < Hq; ++j) {
        const int64_t h = j / G;
        for (int streaming = 0; streaming < 2; ++streaming) {
          const double weight = streaming ? 1 - alpha[size_t(h)] : alpha[size_t(h)];
          std::vector<double> s;
          std::vector<int64_t> keys;
          for (int64_t p = 0; p <= t; ++p) {
            if (streaming && !(p < S || p > t - W)) continue;
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += qa[b][t][j][d] * ka[b][p][h][d];
            s.push_back(dot * scale);
            keys.push_back(p);
          }
          const double mx = *std::max_element(s.begin(), s.end());
          double z = 0;
          for (double& x : s) z += (x = std::exp(x - mx));
          for (size_t i = 0; i < keys.size(); ++i)
            for (int64_t d = 0; d < D; ++d) oa[b][t][j][d] += weight * s[i] / z * va[b][keys[i]][h][d];
        }
      }
  return out;
}

}  // namespace

TEST_CASE("duo: streaming attention sees exactly the sink and the window, gates mix it with full attention") {
  at::manual_seed(7);
  // T = 300 spans two of the kernels' 256-row query blocks.
  const int64_t B = 2, T = 300, Hq = 4, Hkv = 2, D = 8, S = 4, W = 16;
  const at::Tensor q = at::randn({B, T, Hq, D}), k = at::randn({B, T, Hkv, D}), v = at::randn({B, T, Hkv, D});
  const float scale = 1.0f / std::sqrt(float(D));
  for (const std::vector<double>& alpha : {std::vector<double>{0, 0}, {0.3, 0.8}, {1, 0}}) {
    const at::Tensor got = duo_gated_attention(q, k, v, scale, at::tensor(alpha).to(at::kFloat), S, W);
    const at::Tensor want = reference_gated(q, k, v, double(scale), alpha, S, W);
    INFO("alpha " << alpha[0] << ", " << alpha[1]);
    REQUIRE((got.to(at::kDouble) - want).abs().max().item<double>() < 1e-5);
  }
  // alpha = 0 is streaming attention itself; a window as long as the sequence is full attention.
  REQUIRE(at::equal(duo_gated_attention(q, k, v, scale, at::zeros({Hkv}), S, W),
                    streaming_attention(q, k, v, scale, S, W)));
  REQUIRE(
      (streaming_attention(q, k, v, scale, 0, T) - dense_causal_attention(q, k, v, scale)).abs().max().item<double>() <
      1e-5);
}

TEST_CASE("duo: gates at 1 reproduce forward_dense exactly") {
  const Model m = Model::random(toy_model_config(rlkv_test::tiny_toy_options()), at::kFloat, 3, 0.2);
  std::mt19937_64 rng(1);
  ToyTaskOptions task;
  task.k_min = 8;
  task.k_max = 10;  // sequences longer than S + W
  const DuoBatch b = make_duo_batch({duo_retrieval_sequence(rng, task), duo_retrieval_sequence(rng, task)}, kToyPad);
  REQUIRE(b.tokens.size(1) > 40);
  const at::Tensor alpha = at::ones({m.config().num_kv_heads});
  const float scale = 1.0f / std::sqrt(float(m.config().head_dim));
  const at::Tensor gated =
      m.forward_dense_with(b.tokens, [&](int64_t, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return duo_gated_attention(q, k, v, scale, alpha, 4, 16);
      });
  REQUIRE(at::equal(gated, m.forward_dense(b.tokens)));
  // With every gate at 0 the output differs: the sequences are longer than the ring.
  const at::Tensor streamed =
      m.forward_dense_with(b.tokens, [&](int64_t, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return duo_gated_attention(q, k, v, scale, at::zeros_like(alpha), 4, 16);
      });
  REQUIRE_FALSE(at::allclose(streamed, gated));
}

TEST_CASE("duo: passkey targets are the numbers the chain copies, all of them beyond the window") {
  std::mt19937_64 rng(5);
  const ToyTaskOptions task;
  int64_t targets = 0, far = 0;
  for (int i = 0; i < 50; ++i) {
    std::mt19937_64 copy = rng;
    const ToyProblem p = toy_problem(copy, task);
    const DuoSequence s = duo_retrieval_sequence(rng, task);
    std::vector<int32_t> want{kToyBos};
    for (int32_t t : toy_encode(p.prompt() + p.response())) want.push_back(t);
    want.push_back(kToyEos);
    REQUIRE(s.tokens == want);
    // The targets, in order, spell the operands; each target's copy in the prompt is found by
    // position (the i-th number), and its distance from the predicting position counts.
    const std::string prompt = p.prompt();
    std::string spelled;
    std::vector<size_t> digit_at;  // token positions of the prompt's digits, operand by operand
    for (size_t c = 0; c < prompt.size(); ++c)
      if (prompt[c] >= '0' && prompt[c] <= '9') digit_at.push_back(1 + c);
    size_t next_digit = 0;
    for (size_t t = 0; t < s.label.size(); ++t) {
      if (!s.label[t]) continue;
      REQUIRE(t >= prompt.size());  // only response tokens are predicted (the first from the "=")
      spelled += std::string(1, "0123456789"[s.tokens[t + 1] - 3]);
      ++targets;
      far += int64_t(t - digit_at[next_digit++]) >= 16 ? 1 : 0;
    }
    std::string operands;
    for (int64_t x : p.numbers) operands += std::to_string(x);
    REQUIRE(spelled == operands);
  }
  // With K >= 6 numbers every copy lies at least 3K - 1 = 17 tokens back: outside a 16-token window.
  REQUIRE(far == targets);
}

TEST_CASE("duo: pool batches visit every sequence once per pass") {
  std::vector<DuoSequence> pool;
  for (int32_t i = 0; i < 5; ++i) pool.push_back({{kToyBos, 3 + i}, {1, 0}});
  const DuoBatchSource src = duo_pool_source(pool);
  std::mt19937_64 rng(2);
  std::multiset<int32_t> seen;
  for (int i = 0; i < 5; ++i)
    for (const auto& s : src(rng, 2)) seen.insert(s.tokens[1]);
  for (int32_t i = 0; i < 5; ++i) REQUIRE(seen.count(3 + i) == 2);
}

TEST_CASE("duo: a few steps on a toy model lower the loss, keep the gates in [0, 1], and save a mask source") {
  ToyTrainOptions to = rlkv_test::tiny_toy_options();
  const ToyTrainResult toy = train_toy_model(to, {});
  DuoTrainOptions o;
  o.steps = 20;
  o.batch = 4;
  o.lr = 0.05;
  const DuoTrainResult r = train_duo_gates(toy.model, duo_retrieval_source(to.task), o);
  REQUIRE(r.history.size() == 20);
  REQUIRE(r.history.front().mse < 1e-12);  // every gate starts at 1: the gated model is the full one
  REQUIRE(r.history.front().loss == Approx(o.reg).epsilon(1e-6));
  REQUIRE(r.history.back().loss < r.history.front().loss);
  REQUIRE(r.history.back().mean_alpha < 1);
  for (const DuoStepPoint& p : r.history) {
    REQUIRE(p.loss == Approx(p.mse + p.reg).epsilon(1e-6));
    for (double a : p.alphas) REQUIRE((a >= 0 && a <= 1));
  }
  REQUIRE(r.alphas.size() == size_t(to.layers * to.kv_heads));
  // The lower bound too: a regulariser far above the distillation loss and a large step drive the
  // gates down past 0, where the clamp holds them (the run above never comes near it).
  DuoTrainOptions hard = o;
  hard.steps = 10;
  hard.lr = 0.5;
  hard.reg = 100;
  const DuoTrainResult z = train_duo_gates(toy.model, duo_retrieval_source(to.task), hard);
  int64_t at_zero = 0;
  for (double a : z.alphas) {
    REQUIRE((a >= 0 && a <= 1));
    at_zero += a == 0;
  }
  CHECK(at_zero > 0);

  rlkv_test::TempDir dir;
  const std::string out = dir / "duo";
  DuoOutputInfo info;
  info.model = "tiny-toy";
  info.data = "retrieval";
  info.head_dim = to.head_dim;
  save_duo_outputs(out, r, o, info);
  const HeadScores s = load_mask_source(out);
  REQUIRE(s.format == "duo");
  REQUIRE(s.num_layers == toy.model.config().num_layers);
  REQUIRE(s.num_kv_heads == toy.model.config().num_kv_heads);
  REQUIRE(s.sink == o.sink);
  REQUIRE(s.window == o.window);
  for (size_t i = 0; i < s.values.size(); ++i) REQUIRE(s.values[i] == Approx(r.alphas[i]).epsilon(1e-8));
  const HeadScores j = load_mask_source(out + "/head_mask.json");
  REQUIRE(j.values == s.values);
  REQUIRE(load_head_scores_for(out, toy.model.config()).values == s.values);
  const std::string metrics = rlkv_test::read_text(out + "/metrics.jsonl");
  REQUIRE(std::count(metrics.begin(), metrics.end(), '\n') == 20);
  REQUIRE(metrics.find("\"mean_alpha\"") != std::string::npos);
}
