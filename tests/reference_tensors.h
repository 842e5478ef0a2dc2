// Reads the golden tensors that tools/golden/make_fixtures.py wrote next to each fixture model.
#pragma once

#include <ATen/ATen.h>

#include <cstring>
#include <string>

#include "runtime/safetensors.h"

namespace rlkv_test {

inline at::Tensor reference_tensor(const rlkv::SafetensorsFile& f, const std::string& name) {
  const auto& info = f.info(name);
  at::ScalarType t = info.dtype == rlkv::SAFETENSORS_DTYPE_I64 ? at::kLong : at::kFloat;
  at::Tensor out = at::empty(info.shape, at::TensorOptions().dtype(t));
  std::memcpy(out.data_ptr(), f.data(name), size_t(info.end - info.begin));
  return out;
}

inline std::vector<int32_t> to_ids(const at::Tensor& t) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t.numel(); ++i) ids.push_back(int32_t(t[i].item<int64_t>()));
  return ids;
}

}  // namespace rlkv_test
