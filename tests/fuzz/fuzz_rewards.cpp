// libFuzzer target for the reward code, which reads model output (hostile by nature: any bytes, any
// length) and dataset answers: extraction, normalisation, the expression parser and the comparison,
// through score_response and math_equal. Input layout: byte 0 = flags (task, finish reason), bytes
// 1-2 = length of the reference (little endian, taken modulo what is left), then the reference, then
// the response. Crashes, sanitizer reports and any exception are failures; so is a call that uses
// more work than its budget, a budget hit that still scores as correct, a reward out of range, or
// two identical calls that cost different work (nondeterminism).
#include <cstddef>
#include <cstdint>
#include <string>

#include "rewards/math_equal.h"
#include "rewards/reward.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const size_t rest = size - 3;
  const size_t ref_len = rest == 0 ? 0 : (size_t(data[1]) | size_t(data[2]) << 8) % (rest + 1);
  const std::string reference(reinterpret_cast<const char*>(data + 3), ref_len);
  const std::string response(reinterpret_cast<const char*>(data + 3 + ref_len), rest - ref_len);
  static const char* kFinish[] = {"eos", "stop", "length", "repetition"};

  rlkv::RewardOptions o;
  o.task = (flags & 1) ? rlkv::RewardTask::kToy : rlkv::RewardTask::kMath;
  o.work_budget = (flags & 2) ? 64 : 200000;  // a tiny budget exercises every early exit
  const char* finish = kFinish[(flags >> 2) & 3];

  const rlkv::Reference ref = rlkv::prepare_reference(reference, o);
  if (ref.work > o.work_budget) __builtin_trap();
  const rlkv::RewardScore a = rlkv::score_response(response, int64_t(response.size()), finish, ref, 100, o);
  const rlkv::RewardScore b = rlkv::score_response(response, int64_t(response.size()), finish, ref, 100, o);
  if (a.work > o.work_budget || a.work < 0) __builtin_trap();
  if (a.budget_hit && a.correct) __builtin_trap();
  if (!(a.reward >= -o.lambda_len && a.reward <= 1.0)) __builtin_trap();
  if (a.work != b.work || a.correct != b.correct || a.extracted != b.extracted) __builtin_trap();

  // The comparison on its own, on the raw strings (no extraction in front of it).
  rlkv::WorkBudget budget(o.work_budget);
  try {
    (void)rlkv::math_equal(response, reference, budget);
  } catch (const rlkv::BudgetExhausted&) {
  }
  if (budget.used() > budget.limit()) __builtin_trap();
  return 0;
}
