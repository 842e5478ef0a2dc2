// A deterministic per-item work budget for the reward code (docs/design.md section 4).
//
// Why work and not time: a reward worker must never let one hostile or pathological response (1 MB
// of text, 10,000 nested braces, a set of 50,000 elements) hold up a training step, but a wall-clock
// deadline makes rewards depend on machine load, so two runs with the same seeds could train
// differently. Instead every loop in extraction, normalisation, parsing and comparison charges the
// steps it is about to do (about one step per byte examined or per element compared) to a
// WorkBudget; when a charge would pass the limit the budget throws BudgetExhausted *before* doing
// that work, the scorer catches it at the top (reward.cpp) and the item scores 0 with
// `budget_hit = true`. So for any input: used() <= limit(), and the same input always costs the
// same number of steps on every machine.
//
// BudgetExhausted deliberately does not derive from std::exception: library code that catches
// std::exception (for instance around a numeric conversion) cannot swallow it by accident. It never
// leaves the rewards library (every public entry point catches it).
//
// Thread safety: a WorkBudget belongs to one scoring call on one thread; not shared.
#pragma once

#include <cstdint>

namespace rlkv {

struct BudgetExhausted {};

class WorkBudget {
 public:
  explicit WorkBudget(int64_t limit) : limit_(limit < 0 ? 0 : limit) {}

  // Charges `steps` (>= 0) for work about to be done; throws BudgetExhausted, leaving used()
  // unchanged, when that would exceed the limit.
  void charge(int64_t steps = 1) {
    if (steps < 0) steps = 0;
    if (steps > limit_ - used_) {
      exhausted_ = true;
      throw BudgetExhausted{};
    }
    used_ += steps;
  }

  int64_t used() const { return used_; }
  int64_t limit() const { return limit_; }
  int64_t left() const { return limit_ - used_; }
  bool exhausted() const { return exhausted_; }

 private:
  int64_t limit_;
  int64_t used_ = 0;
  bool exhausted_ = false;
};

}  // namespace rlkv
