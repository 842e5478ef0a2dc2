// Models the LibTorch tests share: loaded once per test binary (a function-local static), not once
// per file that uses them.
#pragma once

#include <ATen/ATen.h>

#include "runtime/model.h"
#include "test_util.h"

namespace rlkv_test {

inline const rlkv::Model& tiny_llama() {
  static const rlkv::Model m = rlkv::Model::load(fixture("models/llama_tiny"), at::kFloat);
  return m;
}

}  // namespace rlkv_test
