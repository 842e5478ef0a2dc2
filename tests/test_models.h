// Models the LibTorch tests share: loaded once per test binary (a function-local static), not once
// per file that uses them.
#pragma once

#include <ATen/ATen.h>

#include "runtime/model.h"
#include "test_util.h"
#include "toy/toy_trainer.h"

namespace rlkv_test {

inline const rlkv::Model& tiny_llama() {
  static const rlkv::Model m = rlkv::Model::load(fixture("models/llama_tiny"), at::kFloat);
  return m;
}

// A toy model small enough to train in a test: 2 layers, hidden 32, 4 query and 2 KV heads of 8,
// problems of 3 to 5 operands, 30 steps.
inline rlkv::ToyTrainOptions tiny_toy_options() {
  rlkv::ToyTrainOptions o;
  o.layers = 2;
  o.hidden = 32;
  o.q_heads = 4;
  o.kv_heads = 2;
  o.head_dim = 8;
  o.intermediate = 64;
  o.batch = 16;
  o.steps = 30;
  o.warmup = 5;
  o.lr = 1e-2;
  o.log_every = 10;
  o.eval_every = 0;
  o.task.k_min = 3;
  o.task.k_max = 5;
  return o;
}

}  // namespace rlkv_test
