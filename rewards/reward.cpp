#include "rewards/reward.h"

#include <cmath>

#include "core/error.h"
#include "core/finish_reason.h"
#include "rewards/math_equal.h"

namespace rlkv {

void check_reward_options(const RewardOptions& o) {
  RLKV_CHECK(std::isfinite(o.slack) && o.slack >= 0, "slack must be a number >= 0, got ", o.slack);
  RLKV_CHECK(std::isfinite(o.lambda_len) && o.lambda_len >= 0, "lambda_len must be a number >= 0, got ", o.lambda_len);
  RLKV_CHECK(o.work_budget > 0, "work_budget must be > 0 steps, got ", o.work_budget);
}

Reference prepare_reference(std::string_view answer, const RewardOptions& o) {
  Reference ref;
  WorkBudget budget(o.work_budget);
  try {
    const Extracted x = extract_reference(answer, o.task, budget);
    ref.text = x.text;
    ref.why = x.how;
    ref.usable = x.found;
    if (ref.usable && o.task == RewardTask::kToy && !integer_equal(x.text, x.text, budget)) {
      ref.usable = false;
      ref.why = "toy reference is not an integer";
    }
  } catch (const BudgetExhausted&) {
    ref.usable = false;
    ref.budget_hit = true;
    ref.why = "work budget exhausted on the reference";
  }
  ref.work = budget.used();
  return ref;
}

RewardScore score_response(std::string_view response, int64_t length, std::string_view finish_reason,
                           const Reference& reference, double ref_len, const RewardOptions& o) {
  RewardScore s;
  const bool forced = finish_forces_wrong(finish_reason);
  s.excess = forced ? 1.0 : length_excess(length, ref_len, o.slack);
  WorkBudget budget(o.work_budget);
  try {
    const Extracted x = extract_answer(response, o.task, budget);
    s.extracted = x.text;
    if (forced) {
      const bool capped = finish_reason == finish_reason_name(FinishReason::kLength);
      s.why =
          str_cat(capped ? "truncated at the length cap" : "stopped by the repetition detector", ": wrong, excess 1");
    } else if (!reference.usable) {
      s.why = "reference unusable: " + reference.why;
    } else if (!x.found) {
      s.why = x.how;
    } else {
      s.correct = o.task == RewardTask::kToy ? integer_equal(x.text, reference.text, budget)
                                             : math_equal(x.text, reference.text, budget);
      s.why = str_cat(s.correct ? "correct (" : "wrong answer (", x.how, ")");
    }
  } catch (const BudgetExhausted&) {
    s.correct = false;
    s.budget_hit = true;
    s.why = str_cat("work budget exhausted (", o.work_budget, " steps): scored as wrong");
  }
  s.work = budget.used();
  s.reward = length_reward(s.correct, s.excess, o.lambda_len);
  return s;
}

}  // namespace rlkv
