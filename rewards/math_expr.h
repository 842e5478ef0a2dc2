// Value of a normalised maths answer read as an arithmetic expression. docs/design.md section 4
// item 2 (numbers).
//
// Accepted (after rewards/math_normalize.h): integers, decimals (".5" too), thousands separators
// ("1,234,567", "10 000"), scientific notation ("1.5e3", "1.5\times10^{3}"), signs, `a/b`,
// `\frac{a}{b}` and `\frac12`, mixed numbers ("2\frac{1}{2}", "2 1/2": a whole number followed by a
// proper fraction), + - * / `\cdot` `\times` `\div`, implicit products ("2\sqrt{3}", "3x", "2(x+1)"),
// powers, `\sqrt{}` and `\sqrt[n]{}`, `n!`, `\binom{n}{k}`, `\pi`, `e`, `\infty`, `\sin` `\cos` `\tan`
// `\ln` `\log` `\exp`, and variables (single letters, optionally subscripted, and Greek letters).
// Percent is not handled here: the caller strips a trailing `%` and remembers it.
//
// Variables: the expression is evaluated at kEvalPoints fixed points, each variable taking a
// pseudo-random value in [0.5, 2) that depends only on its name and the point. Two expressions that
// agree at all points are taken as equal (a numeric identity test: x^2+2x+1 and (x+1)^2 agree).
//
// Exactness: integers and fractions combined with + - * / and integer powers are tracked as exact
// rationals (128-bit numerator and denominator, checked arithmetic; on overflow only the double is
// kept). Decimals are
// exact too but flagged `decimal`, so the comparison may apply its relative tolerance to them.
//
// Failure: anything outside the grammar, division by zero, NaN or overflow, brackets nested deeper
// than about 40 levels -> no value (nullopt). Never throws except BudgetExhausted; recursion is
// bounded, so 10,000 nested brackets cannot exhaust the stack. Thread safety: pure function.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "rewards/work_budget.h"

namespace rlkv {

constexpr int kEvalPoints = 3;

struct ExprValue {
  std::array<double, kEvalPoints> at{};  // value at each evaluation point (equal when no variables)
  bool exact = false;                    // `num / den` holds the exact value (den > 0, reduced)
  __int128 num = 0, den = 1;
  bool decimal = false;    // a decimal point or an exponent was written somewhere
  bool variables = false;  // depends on a variable
  // A rational number by construction (numbers combined by + - * /, integer powers, n!, binomials),
  // whether or not `exact` could keep it: one whose 128 bits overflowed (3^{81}, 35!) is compared
  // within kOverflowTolerance, not the tolerance for rounded answers.
  bool rational = false;
};

std::optional<ExprValue> eval_expr(std::string_view normalized, WorkBudget& budget);

// Relative tolerance of numeric comparisons (1e-4). It serves to accept ROUNDED values, so
// it applies only where rounding can be at stake: a decimal against a rational without a finite
// decimal form (0.333333 vs 1/3), or anything involving roots, constants, functions or variables
// (1.4142 vs \sqrt{2}). Two exact rationals with finite decimal forms compare exactly (0.5 == 1/2,
// but 1848.1 != 1848 and 12345 != 12346, which a blanket 1e-4 would accept), and so do two
// fractions (1/3 == 2/6).
constexpr double kRelTolerance = 1e-4;

// Two rationals of which one overflowed 128 bits (neither written as a decimal, no variables): their
// doubles within 1e-12 relative, the rounding of the few dozen operations that can make such a value
// (a double cannot tell 3^{81} from 3^{81} + 1 either way).
constexpr double kOverflowTolerance = 1e-12;

// a == b under the rules above, at every evaluation point.
bool expr_values_equal(const ExprValue& a, const ExprValue& b);

// The value divided by 100 (for a percent written on one side).
ExprValue expr_value_percent(const ExprValue& v);

}  // namespace rlkv
