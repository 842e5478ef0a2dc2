// libFuzzer target for the one function that reads hostile bytes: safetensors_parse_header. The
// input is split so the fuzzer controls both the header text and the data size it is checked
// against (which decides whether offsets are in range). Only rlkv::UserError is an accepted outcome;
// any other exception escapes and aborts, so the fuzzer records it as a crash, as it does for
// ASan/UBSan reports.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/error.h"
#include "runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t data_size = 0;
  for (int i = 7; i >= 0; --i) data_size = (data_size << 8) | data[i];
  const char* header = reinterpret_cast<const char*>(data + 8);
  const size_t header_len = size - 8;
  try {
    std::map<std::string, std::string> metadata;
    auto tensors = rlkv::safetensors_parse_header(header, header_len, data_size, "fuzz", &metadata);
    // Accepted headers must keep the promises callers rely on.
    for (const auto& [name, info] : tensors) {
      if (!(info.begin <= info.end && info.end <= data_size)) __builtin_trap();
      uint64_t bytes = rlkv::safetensors_dtype_size(info.dtype);
      for (int64_t d : info.shape) {
        if (d < 0) __builtin_trap();
        bytes *= static_cast<uint64_t>(d);  // wraps only when a later 0 dimension zeroes it anyway
      }
      if (bytes != info.end - info.begin) __builtin_trap();
    }
  } catch (const rlkv::UserError&) {
  }
  return 0;
}
