// The file names of training checkpoints (docs/checkpoint.md), without HDF5: ckpt-<step>.h5 with a
// canonical decimal step, so that commands built without the checkpoint library know them too.
#pragma once

#include <cstdint>
#include <string>

namespace rlkv {

// ckpt-<step>.h5 with a canonical decimal step (no sign, no leading zeros, at most 18 digits): the
// step, else -1.
inline int64_t checkpoint_step_of(const std::string& name) {
  const std::string pre = "ckpt-", suf = ".h5";
  if (name.size() <= pre.size() + suf.size() || name.compare(0, pre.size(), pre) != 0 ||
      name.compare(name.size() - suf.size(), suf.size(), suf) != 0)
    return -1;
  const std::string digits = name.substr(pre.size(), name.size() - pre.size() - suf.size());
  if (digits.empty() || digits.size() > 18 || (digits.size() > 1 && digits[0] == '0')) return -1;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace rlkv
