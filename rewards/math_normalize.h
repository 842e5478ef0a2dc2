// Normalisation of an extracted maths answer into a canonical string. docs/design.md section 4
// item 2 ("LaTeX noise").
//
// What it removes or rewrites (one left-to-right pass plus a short clean-up):
//  - math delimiters `$`, `\(`, `\)`, `\[`, `\]`; currency `\$`; sizing `\left`, `\right`, `\big`...
//    (`\left.` included); `\displaystyle`; spacing `\!`, `\,`, `\;`, `\:`, `\ `, `~`, `\quad`: a thin
//    space between digits disappears ("3\,000" -> "3000"), elsewhere it becomes a space;
//  - `\dfrac`, `\tfrac`, `\cfrac` -> `\frac`; `\dbinom`, `\tbinom` -> `\binom`; `\leq` -> `\le` and
//    friends; `{,}` -> `,` (LaTeX thousands separator); `\%` -> `%`, " percent" -> `%`;
//  - degrees: `^\circ`, `^{\circ}`, `\circ`, `\degree`, U+00B0;
//  - `\text{...}` (and `\textrm`, `\mbox`, `\mathrm`, `\textbf`, `\mathbf`, `\boxed`, ...): a unit when
//    it follows a number and holds only words ("10\text{ cm}^2" -> "10"), otherwise unwrapped
//    ("\text{(B)}" -> "(b)"); trailing unit words after a number ("30 apples" -> "30");
//  - Unicode minus, times, divide, pi, infinity, square root, <=, >=, !=, cup, no-break space, and
//    the ASCII <=, >=, != (as \le, \ge, \ne; a '!' after a number, letter or bracket is a factorial);
//  - letters are lower-cased outside command names (as math-verify does: `X` and `x` are one symbol);
//  - runs of white space -> one space; trim; a trailing period; redundant outer braces "{5}" -> "5".
//
// The result keeps single spaces because they carry meaning for the value parser ("2 1/2" is a mixed
// number, "21/2" is not); compact() drops them for string comparison, but for a space between two
// digits ("1 2" is not "12").
//
// Cost: O(n) steps charged to the budget (about 3 per byte); throws BudgetExhausted only. Any bytes
// are accepted (invalid UTF-8 and NUL pass through). Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "rewards/work_budget.h"

namespace rlkv {

std::string normalize_answer(std::string_view answer, WorkBudget& budget);

// `s` without spaces but those between two digits (the form normalised strings are compared in).
std::string compact(std::string_view s, WorkBudget& budget);

}  // namespace rlkv
