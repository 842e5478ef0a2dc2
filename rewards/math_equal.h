// Equivalence of an extracted answer and a reference. docs/design.md section 4.
//
// math_equal(prediction, reference), both raw extracted strings (rewards/extract.h), normalised here
// (rewards/math_normalize.h), then, in this order:
//  1. multiple choice: when the reference is a capital letter A-E (optionally "(B)", "B.", or in
//     \text{}), the prediction must designate the same letter ("B", "(b)", "B) 42", "\text{(B)}");
//  2. the normalised strings without spaces are equal;
//  3. `x \in S` is read as S;
//  4. lists: "\{a, b\}" and an unbracketed "a, b" are sets (order-free, element-wise); a bracketed
//     pair "(a, b)" / "[a, b)" is an interval (bracket kinds must match); three or more bracketed
//     elements are a tuple (ordered, brackets free); `\cup` joins intervals (order-free). A list never
//     equals a non-list. "1,234" is a number, not a list (a comma followed by exactly three digits);
//  5. equations: a prediction "... = v" against a non-equation reference compares v; a reference
//     "x = v" (a single variable on the left) against a non-equation compares v; two equations compare
//     their first and last sides;
//  6. values (rewards/math_expr.h): exact rationals compare exactly, a decimal against a rational
//     without a finite decimal form (1/3) or anything with a root, a constant or a variable within
//     relative 1e-4 (see kRelTolerance); a trailing `%` on one side makes both v and v/100
//     acceptable ("12%" equals 12 and 0.12), as math-verify does.
// Anything it cannot decide is "not equal". Recursion (lists of lists) is bounded to 16 levels.
//
// integer_equal(a, b): the toy task's exact integer comparison (sign, leading zeros ignored,
// arbitrary length).
//
// Errors: never throws except BudgetExhausted (rewards/work_budget.h). Thread safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "rewards/work_budget.h"

namespace rlkv {

bool math_equal(std::string_view prediction, std::string_view reference, WorkBudget& budget);

// Normalised forms (the output of normalize_answer) compared by rules 2-6 above.
bool math_equal_normalized(std::string_view prediction, std::string_view reference, WorkBudget& budget);

// The option letter (upper case) a multiple-choice reference names: "B", "(B)", "B.", "\text{(B)}".
std::optional<char> choice_reference(std::string_view raw_reference);

bool integer_equal(std::string_view a, std::string_view b, WorkBudget& budget);

}  // namespace rlkv
