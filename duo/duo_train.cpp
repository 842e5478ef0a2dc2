#include "duo/duo_train.h"

#include <ATen/TensorIndexing.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"
#include "masks/head_mask.h"
#include "masks/mask_export.h"
#include "runtime/torch_attention.h"

namespace rlkv {

void check_duo_options(const DuoTrainOptions& o) {
  RLKV_CHECK(o.steps >= 1 && o.steps <= 100000000, "--steps must be in 1..1e8, got ", o.steps);
  RLKV_CHECK(o.batch >= 1 && o.batch <= 1000000, "--batch must be in 1..1e6, got ", o.batch);
  RLKV_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a number > 0, got ", o.lr);
  RLKV_CHECK(o.reg >= 0 && std::isfinite(o.reg), "--reg must be a number >= 0, got ", o.reg);
  RLKV_CHECK(o.clip >= 0 && std::isfinite(o.clip), "--clip must be a number >= 0 (0 = off), got ", o.clip);
  RLKV_CHECK(o.sink >= 0 && o.window >= 1, "duo-train needs cache.sink >= 0 and cache.window >= 1, got ", o.sink,
             " and ", o.window);
}

DuoBatch make_duo_batch(const std::vector<DuoSequence>& seqs, int32_t pad) {
  RLKV_ASSERT(!seqs.empty(), "make_duo_batch: no sequences");
  int64_t tmax = 0;
  for (const auto& s : seqs) {
    RLKV_ASSERT(s.tokens.size() == s.label.size(), "make_duo_batch: tokens and labels differ in length");
    tmax = std::max<int64_t>(tmax, int64_t(s.tokens.size()));
  }
  const int64_t B = int64_t(seqs.size());
  DuoBatch b{at::full({B, tmax}, int64_t(pad), at::kLong), at::zeros({B, tmax}, at::kBool)};
  auto tk = b.tokens.accessor<int64_t, 2>();
  auto lb = b.labels.accessor<bool, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = seqs[size_t(i)];
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      tk[i][int64_t(t)] = s.tokens[t];
      lb[i][int64_t(t)] = s.label[t] != 0;
    }
  }
  return b;
}

DuoSequence duo_retrieval_sequence(std::mt19937_64& rng, const ToyTaskOptions& task) {
  const ToyProblem p = toy_problem(rng, task);
  DuoSequence s;
  auto append = [&](const std::string& text, bool target) {
    for (int32_t id : toy_encode(text)) {
      // The hidden state before a target token is the one that predicts it.
      if (target) s.label.back() = 1;
      s.tokens.push_back(id);
      s.label.push_back(0);
    }
  };
  s.tokens.push_back(kToyBos);
  s.label.push_back(0);
  append(p.prompt(), false);
  int64_t sum = p.numbers[0];
  append(std::to_string(p.numbers[0]), true);
  for (size_t i = 1; i < p.numbers.size(); ++i) {
    if (i > 1) append(";" + std::to_string(sum), false);
    append("+", false);
    append(std::to_string(p.numbers[i]), true);
    sum += p.numbers[i];
    append("=" + std::to_string(sum), false);
  }
  append(";A:" + std::to_string(sum), false);
  s.tokens.push_back(kToyEos);
  s.label.push_back(0);
  return s;
}

std::vector<DuoSequence> duo_reasoning_sequences(const Model& model, const Tokenizer* tok,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 GeneratorOptions go) {
  go.sampling.temperature = 0;  // greedy; every head full (requests carry no mask)
  Generator gen(model, tok, go);
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    RLKV_CHECK(!prompts[i].empty(), "duo-train: prompt ", i, " has no tokens");
    GenerationRequest r;
    r.id = int64_t(i);
    r.prompt = prompts[i];
    r.stream = uint64_t(i);
    reqs.push_back(std::move(r));
  }
  std::vector<DuoSequence> out;
  for (const GenerationResult& res : gen.run(reqs)) {
    if (res.tokens.empty()) continue;  // nothing to learn from
    DuoSequence s;
    s.tokens = prompts[size_t(res.id)];
    s.label.assign(s.tokens.size(), 0);
    for (int32_t t : res.tokens) {
      s.label.back() = 1;  // predicts a response token
      s.tokens.push_back(t);
      s.label.push_back(0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

at::Tensor streaming_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale, int64_t sink,
                               int64_t window) {
  RLKV_ASSERT(sink >= 0 && window >= 1, "streaming_attention: need sink >= 0 and window >= 1");
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3);
  const auto [qh, kh, vh] = group_heads(q, k, v);
  // Query blocks of at most kBlock rows; a block needs only the keys [0, S) and [t0 - W + 1, t0 + rows).
  constexpr int64_t kBlock = 256;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(q.device());
  std::vector<at::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += kBlock) {
    const int64_t rows = std::min(kBlock, T - t0), end = t0 + rows;
    const int64_t lo = std::max<int64_t>(0, t0 - window + 1), sink_end = std::min(sink, lo);
    at::Tensor keys = at::cat({at::arange(0, sink_end, long_opts), at::arange(lo, end, long_opts)});  // [n]
    at::Tensor t = at::arange(t0, end, long_opts).unsqueeze(1);                                       // [rows, 1]
    at::Tensor p = keys.unsqueeze(0);                                                                 // [1, n]
    at::Tensor visible = (p <= t).logical_and((p < sink).logical_or(p > t - window));
    at::Tensor kb = kh.index_select(3, keys), vb = vh.index_select(3, keys);
    at::Tensor scores = at::matmul(qh.narrow(3, t0, rows), kb.transpose(-1, -2)) * scale;  // [B, Hkv, G, rows, n]
    scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<float>::infinity());
    at::Tensor w = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    outs.push_back(at::matmul(w, vb));  // [B, Hkv, G, rows, D]
  }
  at::Tensor o = outs.size() == 1 ? outs[0] : at::cat(outs, 3);
  return o.reshape({B, Hq, T, D}).permute({0, 2, 1, 3});
}

at::Tensor duo_gated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale,
                               const at::Tensor& alpha, int64_t sink, int64_t window) {
  const int64_t Hq = q.size(2), Hkv = k.size(2);
  RLKV_ASSERT(alpha.dim() == 1 && alpha.size(0) == Hkv, "duo_gated_attention: alpha must be [Hkv]");
  // Query head j belongs to KV head j / G (dense_causal_attention's grouping).
  at::Tensor a = alpha.to(q.scalar_type()).repeat_interleave(Hq / Hkv).view({1, 1, Hq, 1});
  return dense_causal_attention(q, k, v, scale) * a + streaming_attention(q, k, v, scale, sink, window) * (1 - a);
}

DuoBatchSource duo_retrieval_source(const ToyTaskOptions& task) {
  validate_toy_options(task);
  return [task](std::mt19937_64& rng, int64_t batch) {
    // One count of numbers per batch: its sequences then have nearly equal lengths and padding costs
    // little; over the steps every count is drawn uniformly.
    ToyTaskOptions t = task;
    t.k_min = t.k_max = std::uniform_int_distribution<int64_t>(task.k_min, task.k_max)(rng);
    std::vector<DuoSequence> out;
    for (int64_t i = 0; i < batch; ++i) out.push_back(duo_retrieval_sequence(rng, t));
    return out;
  };
}

namespace {

// A random order of the pool in which runs of `batch` sequences have similar lengths (less padding):
// shuffled, sorted by length within windows of 16 batches, cut into batches, the batches shuffled.
std::vector<size_t> pass_order(const std::vector<DuoSequence>& pool, size_t batch, std::mt19937_64& rng) {
  std::vector<size_t> order(pool.size());
  for (size_t j = 0; j < order.size(); ++j) order[j] = j;
  std::shuffle(order.begin(), order.end(), rng);
  const auto shorter = [&](size_t a, size_t b) { return pool[a].tokens.size() < pool[b].tokens.size(); };
  for (size_t w = 0; w < order.size(); w += 16 * batch)
    std::stable_sort(order.begin() + long(w), order.begin() + long(std::min(order.size(), w + 16 * batch)), shorter);
  std::vector<std::vector<size_t>> runs;
  for (size_t j = 0; j < order.size(); j += batch)
    runs.emplace_back(order.begin() + long(j), order.begin() + long(std::min(order.size(), j + batch)));
  std::shuffle(runs.begin(), runs.end(), rng);
  order.clear();
  for (const auto& r : runs) order.insert(order.end(), r.begin(), r.end());
  return order;
}

}  // namespace

DuoBatchSource duo_pool_source(std::vector<DuoSequence> pool) {
  RLKV_CHECK(!pool.empty(), "duo-train: no training sequences");
  struct State {
    std::vector<DuoSequence> pool;
    std::vector<size_t> order;
    size_t next = 0;
  };
  auto st = std::make_shared<State>();
  st->pool = std::move(pool);
  return [st](std::mt19937_64& rng, int64_t batch) {
    std::vector<DuoSequence> out;
    for (int64_t i = 0; i < batch; ++i) {
      if (st->next == st->order.size()) {  // a new pass, in a new order
        st->order = pass_order(st->pool, size_t(batch), rng);
        st->next = 0;
      }
      out.push_back(st->pool[st->order[st->next++]]);
    }
    return out;
  };
}

namespace {

double duo_lr_at(const DuoTrainOptions& o, int64_t step) {
  const double w = double(std::max<int64_t>(1, o.steps / 5));
  return o.lr * std::min({1.0, double(step + 1) / w, double(o.steps - step) / w});
}

// The gates and their AdamW state.
struct Gates {
  at::Tensor alpha;  // [L, Hkv] fp32, requires grad
  at::Tensor m, v;
};

Gates make_gates(const ModelConfig& c) {
  Gates g{at::ones({c.num_layers, c.num_kv_heads}, at::kFloat), {}, {}};
  g.m = at::zeros_like(g.alpha);
  g.v = at::zeros_like(g.alpha);
  g.alpha.requires_grad_(true);
  return g;
}

struct StepLoss {
  at::Tensor loss, mse, reg;
  int64_t labels = 0;
};

// The loss of one batch: the full model's hidden states (no gradient) against the gated model's, at
// the label positions, plus the gates' L1 term.
StepLoss duo_loss(const Model& model, const Gates& g, const DuoBatch& b, const DuoTrainOptions& o) {
  const at::Tensor tokens = b.tokens.to(model.device());
  const at::Tensor labels = b.labels.to(model.device());
  at::Tensor full;
  {
    at::NoGradGuard no_grad;
    full = model.forward_dense(tokens).index({labels}).to(at::kFloat);
  }
  const float scale = 1.0f / std::sqrt(float(model.config().head_dim));
  const at::Tensor alpha = g.alpha.to(model.device());
  at::Tensor gated =
      model.forward_dense_with(tokens, [&](int64_t l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return duo_gated_attention(q, k, v, scale, alpha[l], o.sink, o.window);
      });
  StepLoss s;
  s.labels = labels.sum().item<int64_t>();
  RLKV_CHECK(s.labels > 0, "duo-train: a batch without label positions");
  s.mse = (gated.index({labels}).to(at::kFloat) - full).pow(2).mean();
  s.reg = o.reg * g.alpha.abs().mean();
  s.loss = s.mse + s.reg.to(s.mse.device());
  return s;
}

// One AdamW update of the gates (the gradient clipped to norm o.clip), then the clamp to [0, 1].
// Returns the gradient's norm before clipping.
double adamw_step(Gates& g, const DuoTrainOptions& o, int64_t step, double lr) {
  at::NoGradGuard no_grad;
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  at::Tensor grad = g.alpha.grad();
  const double norm = grad.norm().item<double>();
  if (o.clip > 0 && norm > o.clip) grad = grad * (o.clip / norm);
  g.m.mul_(b1).add_(grad, 1 - b1);
  g.v.mul_(b2).addcmul_(grad, grad, 1 - b2);
  const double bc1 = 1 - std::pow(b1, double(step + 1)), bc2 = 1 - std::pow(b2, double(step + 1));
  g.alpha.addcdiv_(g.m / bc1, (g.v / bc2).sqrt_().add_(eps), -lr);
  g.alpha.clamp_(0, 1);
  g.alpha.mutable_grad() = at::Tensor();
  return norm;
}

std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kDouble).contiguous().cpu();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

DuoTrainResult train_duo_gates(const Model& model, const DuoBatchSource& source, const DuoTrainOptions& o,
                               const std::function<void(const DuoStepPoint&)>& on_step) {
  check_duo_options(o);
  RLKV_CHECK(model.tp() == nullptr, "duo-train runs on a whole model, not a tensor-parallel shard");
  const ModelConfig& c = model.config();
  DuoTrainResult r;
  r.num_layers = c.num_layers;
  r.num_kv_heads = c.num_kv_heads;
  Gates g = make_gates(c);
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + 3);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    const StepLoss s = duo_loss(model, g, make_duo_batch(source(rng, o.batch), 0), o);
    s.loss.backward();
    const double lr = duo_lr_at(o, step);
    DuoStepPoint pt;
    pt.step = step + 1;
    pt.loss = s.loss.item<double>();
    pt.mse = s.mse.item<double>();
    pt.reg = s.reg.item<double>();
    pt.lr = lr;
    pt.grad_norm = adamw_step(g, o, step, lr);
    pt.alphas = to_vector(g.alpha);
    for (double a : pt.alphas) pt.mean_alpha += a / double(pt.alphas.size());
    pt.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.label_tokens += s.labels;
    if (on_step) on_step(pt);
    r.history.push_back(std::move(pt));
  }
  r.alphas = r.history.back().alphas;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<std::string> duo_output_names() {
  std::vector<std::string> names = export_file_names("duo");
  names.insert(names.end(), {"head_mask.json", "metrics.jsonl", "duo_train.json"});
  return names;
}

void save_duo_outputs(const std::string& dir, const DuoTrainResult& r, const DuoTrainOptions& o,
                      const DuoOutputInfo& info) {
  HeadScores s;
  s.num_layers = r.num_layers;
  s.num_kv_heads = r.num_kv_heads;
  s.values = r.alphas;
  s.source = "rlkv duo-train --data " + info.data;
  s.format = "duo";
  s.model = info.model;
  s.sink = o.sink;
  s.window = o.window;
  ExportInfo e;
  e.model = info.model;
  e.sink = o.sink;
  e.window = o.window;
  e.sparsity = info.sparsity;
  e.head_dim = info.head_dim;
  export_duo(dir, s, e);  // creates the directory
  export_json(dir + "/head_mask.json", s, mask_at_sparsity(s, info.sparsity), e);
  std::string metrics;
  for (const DuoStepPoint& p : r.history)
    metrics += nlohmann::json{{"step", p.step},
                              {"loss", p.loss},
                              {"mse", p.mse},
                              {"reg", p.reg},
                              {"lr", p.lr},
                              {"grad_norm", p.grad_norm},
                              {"mean_alpha", p.mean_alpha},
                              {"alphas", p.alphas},
                              {"seconds", p.seconds}}
                   .dump() +
               "\n";
  write_file_atomic(dir + "/metrics.jsonl", metrics);
  const nlohmann::json settings = {{"command", info.command},
                                   {"model", info.model},
                                   {"data", info.data},
                                   {"steps", o.steps},
                                   {"batch", o.batch},
                                   {"lr", o.lr},
                                   {"reg", o.reg},
                                   {"clip", o.clip},
                                   {"sink", o.sink},
                                   {"window", o.window},
                                   {"seed", o.seed},
                                   {"seconds", r.seconds},
                                   {"label_tokens", r.label_tokens}};
  write_file_atomic(dir + "/duo_train.json", dump_json(settings, 2) + "\n");
}

}  // namespace rlkv
