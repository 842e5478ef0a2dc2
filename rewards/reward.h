// Scoring one rollout: extraction (rewards/extract.h) + equivalence (rewards/math_equal.h) + length
// consistency (rewards/length_reward.h), every component kept for metrics. docs/design.md section 4.
//
// The work budget (rewards/work_budget.h) is per item: each response gets its own budget of
// `work_budget` steps for extraction, normalisation and comparison; a reference gets one of the same
// size when it is prepared. An item that runs out scores as wrong (c = 0, `budget_hit`), its length
// term computed as usual, so exhausting the budget is never better for the policy than a wrong
// answer. The default, 2^22 (4.2M) steps, is about 1000x what a 4 KB maths response costs (~4,200
// steps: bench/bench_rewards.cpp) and a few milliseconds of CPU at most; a 1 MB response without any
// answer marker, or a quadratic trap such as thousands of unclosed boxes, runs out, which is the point.
//
// Errors: check_reward_options throws UserError naming the bad field. Scoring never throws (bad
// input scores 0 with a reason in `why`), except std::bad_alloc. Thread safety: pure functions; a
// Reference may be shared read-only between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rewards/extract.h"
#include "rewards/length_reward.h"

namespace rlkv {

struct RewardOptions {
  RewardTask task = RewardTask::kMath;
  double slack = kDefaultSlack;            // free length beyond ref_len, as a fraction of ref_len
  double lambda_len = kDefaultLambdaLen;   // weight of the excess-length penalty
  int64_t work_budget = int64_t(1) << 22;  // steps per item (response or reference)
};

void check_reward_options(const RewardOptions& o);

// A reference answer, extracted once per prompt and shared by its G rollouts.
struct Reference {
  bool usable = false;
  std::string text;  // the extracted reference answer
  std::string why;   // how it was extracted, or why it cannot be used
  bool budget_hit = false;
  int64_t work = 0;
};

Reference prepare_reference(std::string_view answer, const RewardOptions& o);

struct RewardScore {
  bool correct = false;   // c
  double excess = 0;      // e, in [0, 1]
  double reward = 0;      // c - lambda_len * e
  std::string extracted;  // the answer found in the response ("" when none)
  std::string why;        // one line: how it was judged
  bool budget_hit = false;
  int64_t work = 0;  // steps used on the response (<= work_budget)
};

RewardScore score_response(std::string_view response, int64_t length, std::string_view finish_reason,
                           const Reference& reference, double ref_len, const RewardOptions& o);

}  // namespace rlkv
