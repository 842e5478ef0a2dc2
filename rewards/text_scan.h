// Budgeted string scanning shared by the rewards code: every search charges the positions it looks
// at to a WorkBudget (rewards/work_budget.h), so callers never hide an unbounded loop in a library
// call. Byte-oriented: invalid UTF-8 and NUL bytes are ordinary bytes here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#include "rewards/work_budget.h"

namespace rlkv::text_scan {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// `s` without leading and trailing white space; one step per character looked at.
inline std::string_view trim(std::string_view s, WorkBudget& budget) {
  size_t b = 0, e = s.size();
  budget.charge();
  while (b < e && is_space(s[b])) {
    budget.charge();
    ++b;
  }
  while (e > b && is_space(s[e - 1])) {
    budget.charge();
    --e;
  }
  return s.substr(b, e - b);
}

// Length of the run of digits at `at`, counting at most `cap + 1` of them (callers only need to know
// whether it is longer than `cap`), so a lookahead never scans a long run.
inline size_t digit_run(std::string_view s, size_t at, size_t cap) {
  size_t k = at;
  while (k < s.size() && k - at <= cap && is_digit(s[k])) ++k;
  return k - at;
}

// The control word at `at` ("frac" for "\\frac{"), "" when there is none. Names longer than 32
// letters are no command we know: the scan stops there (bounded lookahead).
inline std::string_view command_at(std::string_view s, size_t at) {
  if (at >= s.size() || s[at] != '\\') return {};
  size_t j = at + 1;
  while (j < s.size() && j - at <= 32 && is_alpha(s[j])) ++j;
  return s.substr(at + 1, j - at - 1);
}

// True when `needle` occurs at `pos` (case-insensitive for ASCII letters when `ci`).
inline bool match_at(std::string_view s, size_t pos, std::string_view needle, bool ci = false) {
  if (pos > s.size() || s.size() - pos < needle.size()) return false;
  for (size_t i = 0; i < needle.size(); ++i) {
    const char a = s[pos + i], b = needle[i];
    if (ci ? lower(a) != lower(b) : a != b) return false;
  }
  return true;
}

// Last occurrence of `needle` starting strictly before `end` (npos when none). Charges one step per
// starting position tried.
inline size_t rfind(std::string_view s, std::string_view needle, WorkBudget& budget,
                    size_t end = std::string_view::npos, bool ci = false) {
  if (needle.empty() || s.size() < needle.size()) return std::string_view::npos;
  size_t pos = std::min(end == std::string_view::npos ? s.size() : end, s.size() - needle.size() + 1);
  while (pos > 0) {
    --pos;
    budget.charge();
    if (match_at(s, pos, needle, ci)) return pos;
  }
  return std::string_view::npos;
}

// First occurrence of `needle` at or after `from` (npos when none). One step per position tried.
inline size_t find(std::string_view s, std::string_view needle, WorkBudget& budget, size_t from = 0) {
  if (needle.empty() || s.size() < needle.size()) return std::string_view::npos;
  for (size_t pos = from; pos + needle.size() <= s.size(); ++pos) {
    budget.charge();
    if (match_at(s, pos, needle)) return pos;
  }
  return std::string_view::npos;
}

}  // namespace rlkv::text_scan
