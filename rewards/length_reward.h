// Length consistency (docs/design.md section 4): the reward penalises answers much longer
// than the full-cache model's own answer on the same prompt, because a compressed cache that loses the
// thread of reasoning shows it first as rambling (the paper's s = 0.8 runs: 6806 tokens on average
// against 3108, 60% at the length cap).
//
//   e = clamp(len / ref_len - (1 + slack), 0, 1)      excess length, in [0, 1]
//   r = c - lambda_len * e                              c in {0, 1}: correctness
//
// with ref_len the full-cache reference length in tokens (recorded by `rlkv prepare`). Defaults
// slack 0.5, lambda_len 0.25: up to 1.5 x ref_len is free, 2.5 x or more costs the full 0.25.
// A rollout that hit the length cap (finish_reason "length") or was stopped by the repetition
// detector ("repetition") counts as wrong with e = 1, whatever it wrote.
// ref_len <= 0 (or not finite) means "unknown": e = 0 for finished rollouts.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace rlkv {

constexpr double kDefaultSlack = 0.5;
constexpr double kDefaultLambdaLen = 0.25;

double length_excess(int64_t length, double ref_len, double slack);

// "length" (hit the cap) or "repetition" (stopped by the repetition detector): a failed generation
// (core/finish_reason.h). Any other name, valid or not, does not force the answer wrong.
bool finish_forces_wrong(std::string_view finish_reason);

inline double length_reward(bool correct, double excess, double lambda_len) {
  return (correct ? 1.0 : 0.0) - lambda_len * excess;
}

}  // namespace rlkv
