// Trains the embedded toy reasoning model from scratch with LibTorch autograd, through the
// runtime's own Model (forward_dense), so the shipped weights run on exactly the code that serves
// them. Loss: next-token cross-entropy on the response and EOS only (the prompt's operands are random
// and cannot be predicted). Optimiser: AdamW with linear warm-up, cosine decay and gradient-norm
// clipping, written out here (a dozen lines) rather than pulling in torch::optim.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "toy/toy_task.h"

namespace rlkv {

struct ToyTrainOptions {
  ToyTaskOptions task;
  int64_t layers = 4, hidden = 128, q_heads = 8, kv_heads = 4, head_dim = 16, intermediate = 384;
  double rope_theta = 10000.0;
  int64_t steps = 3000;  // optimizer steps
  int64_t batch = 64;    // problems per step
  double lr = 3e-3, min_lr = 1e-4;
  int64_t warmup = 100;  // steps of linear warm-up
  double weight_decay = 0.01, clip = 1.0, init_std = 0.02;
  uint64_t seed = 1;
  int64_t log_every = 50;
  int64_t eval_every = 500;  // greedy accuracy on eval_problems held-out problems (0 = never)
  int64_t eval_problems = 200;
  double time_limit_s = 0;  // stop early after this many seconds (0 = no limit)
};

struct ToyTrainPoint {
  int64_t step;
  double loss, lr, grad_norm, seconds;
  double eval_accuracy;  // < 0 when not evaluated at this step
};

struct ToyTrainResult {
  Model model;
  std::vector<ToyTrainPoint> history;
  double seconds = 0;
  int64_t tokens = 0;  // tokens through the model (padding excluded)
};

ModelConfig toy_model_config(const ToyTrainOptions& opts);
ToyTrainResult train_toy_model(const ToyTrainOptions& opts, const std::function<void(const std::string&)>& log);

// Writes the trained model as a Hugging Face directory (config.json declaring rlkv_task = toy,
// model.safetensors, the toy tokenizer), with its loss curve (train_log.jsonl) and the settings that
// made it (training.json: `command`, seed, steps, timing) beside it, for the model card.
void save_toy_model(const ToyTrainResult& r, const ToyTrainOptions& opts, const std::string& dir,
                    const std::string& command);

// Greedy accuracy of `model` on `problems` with every head full (quick check used during training).
double toy_greedy_accuracy(const Model& model, const std::vector<ToyProblem>& problems, int64_t max_new_tokens);

}  // namespace rlkv
