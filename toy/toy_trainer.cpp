#include "toy/toy_trainer.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/model_writer.h"

namespace rlkv {
namespace {

// One batch: BOS + prompt + response + EOS, right-padded; labels are the next token on the response
// (and EOS) positions, -100 elsewhere.
void make_batch(std::mt19937_64& rng, const ToyTrainOptions& o, at::Tensor& tokens, at::Tensor& labels,
                int64_t& real_tokens) {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int64_t> prompt_lens;
  int64_t tmax = 0;
  real_tokens = 0;
  // One operand count per batch: sequences then have nearly equal lengths and padding costs little;
  // over many steps every count is seen uniformly.
  ToyTaskOptions task = o.task;
  task.k_min = task.k_max = std::uniform_int_distribution<int64_t>(o.task.k_min, o.task.k_max)(rng);
  for (int64_t b = 0; b < o.batch; ++b) {
    const ToyProblem p = toy_problem(rng, task);
    std::vector<int32_t> ids{kToyBos};
    for (int32_t t : toy_encode(p.prompt())) ids.push_back(t);
    prompt_lens.push_back(int64_t(ids.size()));
    for (int32_t t : toy_encode(p.response())) ids.push_back(t);
    ids.push_back(kToyEos);
    tmax = std::max<int64_t>(tmax, int64_t(ids.size()));
    real_tokens += int64_t(ids.size());
    seqs.push_back(std::move(ids));
  }
  tokens = at::full({o.batch, tmax - 1}, kToyPad, at::kLong);
  labels = at::full({o.batch, tmax - 1}, -100, at::kLong);
  auto tk = tokens.accessor<int64_t, 2>();
  auto lb = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < o.batch; ++b) {
    const auto& s = seqs[size_t(b)];
    for (int64_t t = 0; t + 1 < int64_t(s.size()); ++t) {
      tk[b][t] = s[size_t(t)];
      if (t + 1 >= prompt_lens[size_t(b)]) lb[b][t] = s[size_t(t + 1)];
    }
  }
}

double lr_at(const ToyTrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
  const double progress = double(step - o.warmup) / double(std::max<int64_t>(1, o.steps - o.warmup));
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + std::cos(M_PI * std::min(1.0, progress)));
}

}  // namespace

ModelConfig toy_model_config(const ToyTrainOptions& o) {
  ModelConfig c;
  c.model_type = "llama";
  c.task = "toy";  // config.json declares the answer checker, so commands need no --task
  c.vocab_size = kToyVocab;
  c.hidden_size = o.hidden;
  c.intermediate_size = o.intermediate;
  c.num_layers = o.layers;
  c.num_q_heads = o.q_heads;
  c.num_kv_heads = o.kv_heads;
  c.head_dim = o.head_dim;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = o.rope_theta;
  c.max_position_embeddings = 1024;
  c.tie_word_embeddings = false;
  c.bos_token_ids = {kToyBos};
  c.eos_token_ids = {kToyEos};
  RLKV_CHECK(o.q_heads % o.kv_heads == 0 && o.q_heads / o.kv_heads >= 1,
             "toy model: q_heads must be a multiple of kv_heads");
  RLKV_CHECK(o.head_dim % 2 == 0, "toy model: head_dim must be even");
  // A toy is trained on the CPU in fp32 with two Adam moments: 16 bytes a parameter before the
  // activations. Counted in double so that no product of the options overflows.
  const double h = double(o.hidden), attn = double(o.q_heads + o.kv_heads) * double(o.head_dim) * h * 2,
               mlp = 3 * h * double(o.intermediate),
               params = double(o.layers) * (attn + mlp + 2 * h) + 2 * double(kToyVocab) * h + h;
  constexpr double kMaxParams = 100e6;
  RLKV_CHECK(params <= kMaxParams, "toy model: ", int64_t(std::min(params, 1e18) / 1e6),
             "M parameters with these --layers, --hidden, --heads, --kv-heads, --head-dim and --intermediate; a toy "
             "trained on the CPU holds at most ",
             int64_t(kMaxParams / 1e6), "M");
  return c;
}

double toy_greedy_accuracy(const Model& model, const std::vector<ToyProblem>& problems, int64_t max_new_tokens) {
  GeneratorOptions g;
  g.sampling.temperature = 0;
  g.max_new_tokens = max_new_tokens;
  g.max_batch = 64;
  Generator gen(model, nullptr, g);
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < problems.size(); ++i) {
    GenerationRequest r;
    r.id = int64_t(i);
    r.prompt = {kToyBos};
    for (int32_t t : toy_encode(problems[i].prompt())) r.prompt.push_back(t);
    reqs.push_back(std::move(r));
  }
  int64_t correct = 0;
  const auto results = gen.run(reqs);
  for (size_t i = 0; i < results.size(); ++i) {
    std::vector<int32_t> want = toy_encode(problems[i].response());
    want.push_back(kToyEos);
    correct += results[i].tokens == want ? 1 : 0;
  }
  return problems.empty() ? 0.0 : double(correct) / double(problems.size());
}

ToyTrainResult train_toy_model(const ToyTrainOptions& o, const std::function<void(const std::string&)>& log) {
  validate_toy_options(o.task);
  RLKV_CHECK(o.steps >= 1 && o.batch >= 1, "toy train: steps and batch must be >= 1");
  const ModelConfig cfg = toy_model_config(o);
  ToyTrainResult res{Model::random(cfg, at::kFloat, o.seed, o.init_std), {}, 0, 0};
  std::vector<at::Tensor> params = res.model.parameters();
  for (auto& p : params) p.requires_grad_(true);
  std::vector<at::Tensor> m, v;
  for (auto& p : params) {
    m.push_back(at::zeros_like(p));
    v.push_back(at::zeros_like(p));
  }
  const double b1 = 0.9, b2 = 0.95, eps = 1e-8;
  // Training problems come from their own stream; held-out problems from another.
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + 1);
  std::mt19937_64 eval_rng(o.seed * 0x9e3779b97f4a7c15ull + 2);
  std::vector<ToyProblem> held_out;
  for (int64_t i = 0; i < o.eval_problems; ++i) held_out.push_back(toy_problem(eval_rng, o.task));
  const int64_t max_new = toy_max_response_tokens(o.task) + 1;  // the longest response and its EOS

  const auto t0 = std::chrono::steady_clock::now();
  double loss_acc = 0;
  int64_t loss_n = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    at::Tensor tokens, labels;
    int64_t real = 0;
    make_batch(rng, o, tokens, labels, real);
    res.tokens += real;
    at::Tensor logits = res.model.logits(res.model.forward_dense(tokens));
    at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, cfg.vocab_size}), labels.reshape({-1}));
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    loss.backward();
    const double lr = lr_at(o, step);
    double norm2 = 0;
    {
      at::NoGradGuard no_grad;
      for (auto& p : params) norm2 += p.grad().pow(2).sum().item<double>();
      const double norm = std::sqrt(norm2);
      const double scale = (o.clip > 0 && norm > o.clip) ? o.clip / norm : 1.0;
      const double bc1 = 1 - std::pow(b1, double(step + 1)), bc2 = 1 - std::pow(b2, double(step + 1));
      for (size_t i = 0; i < params.size(); ++i) {
        at::Tensor g = params[i].grad() * scale;
        m[i].mul_(b1).add_(g, 1 - b1);
        v[i].mul_(b2).addcmul_(g, g, 1 - b2);
        if (params[i].dim() >= 2) params[i].mul_(1 - lr * o.weight_decay);  // no decay on norms
        params[i].addcdiv_(m[i] / bc1, (v[i] / bc2).sqrt_().add_(eps), -lr);
      }
    }
    loss_acc += loss.item<double>();
    ++loss_n;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool last = step + 1 == o.steps || (o.time_limit_s > 0 && secs >= o.time_limit_s);
    const bool do_eval = o.eval_every > 0 && ((step + 1) % o.eval_every == 0 || last);
    if ((step + 1) % o.log_every == 0 || last || do_eval) {
      ToyTrainPoint pt{step + 1, loss_acc / double(loss_n), lr, std::sqrt(norm2), secs, -1.0};
      if (do_eval) pt.eval_accuracy = toy_greedy_accuracy(res.model, held_out, max_new);
      res.history.push_back(pt);
      char buf[256];
      std::snprintf(buf, sizeof buf, "step %lld loss %.5f lr %.2e grad %.3f %.0f tok/s %.0f s%s", (long long)pt.step,
                    pt.loss, lr, pt.grad_norm, double(res.tokens) / secs, secs,
                    do_eval ? (" held-out greedy accuracy " + std::to_string(pt.eval_accuracy)).c_str() : "");
      if (log) log(buf);
      loss_acc = 0;
      loss_n = 0;
    }
    if (last) break;
  }
  for (auto& p : params) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void save_toy_model(const ToyTrainResult& r, const ToyTrainOptions& o, const std::string& dir,
                    const std::string& command) {
  save_hf_model(r.model, dir, toy_tokenizer_json());
  std::string log;
  for (const auto& p : r.history) {
    nlohmann::json j = {
        {"step", p.step}, {"loss", p.loss}, {"lr", p.lr}, {"grad_norm", p.grad_norm}, {"seconds", p.seconds}};
    if (p.eval_accuracy >= 0) j["heldout_greedy_accuracy"] = p.eval_accuracy;
    log += j.dump() + "\n";
  }
  write_file_atomic(dir + "/train_log.jsonl", log);
  nlohmann::json info = {{"command", command},
                         {"seed", o.seed},
                         {"chain", toy_chain_name(o.task.chain)},
                         {"steps_run", r.history.empty() ? 0 : r.history.back().step},
                         {"batch", o.batch},
                         {"lr", o.lr},
                         {"seconds", r.seconds},
                         {"tokens", r.tokens},
                         {"threads", at::get_num_threads()},
                         {"parameters", r.model.parameter_bytes() / 4}};
  write_file_atomic(dir + "/training.json", info.dump(2) + "\n");
}

}  // namespace rlkv
