#include "rewards/math_equal.h"

#include <string>
#include <vector>

#include "rewards/math_expr.h"
#include "rewards/math_normalize.h"
#include "rewards/text_scan.h"

namespace rlkv {

using namespace text_scan;

namespace {

constexpr int kMaxListDepth = 16;

// "-123": an optional minus sign and digits only.
bool plain_integer(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

// "1,234": a comma between a group of 1-3 digits and exactly three digits.
bool thousands_comma(std::string_view s, size_t i) {
  if (i == 0 || s.size() - i < 4 || !is_digit(s[i - 1])) return false;
  for (size_t k = 1; k <= 3; ++k)
    if (!is_digit(s[i + k])) return false;
  if (i + 4 < s.size() && is_digit(s[i + 4])) return false;
  size_t run = 0, k = i;
  while (k > 0 && run <= 3 && is_digit(s[k - 1])) --k, ++run;  // bounded look-behind
  // The leading group never starts with 0 ("0,100" is two numbers; "1,047,076" has later groups of
  // 0xx), nor follows a decimal point.
  const bool leading = !(k > 0 && s[k - 1] == ',');
  return run <= 3 && !(leading && s[k] == '0') && !(k > 0 && s[k - 1] == '.');
}

enum class Sep { kComma, kEquals, kCup, kIn };

// Whether the command at i follows "\not" ("\not\in" is not "\in").
bool negated(std::string_view s, size_t i) {
  while (i > 0 && s[i - 1] == ' ') --i;
  return i >= 4 && s.substr(i - 4, 4) == "\\not";
}

// Splits at separators outside any bracket: ( ) [ ] { } and \{ \}. Unbalanced input is one piece.
// Commas: with `grouping`, one of a thousands group ("1,234") does not split; inside the brackets of
// an interval, a set or a tuple every comma does ("[0,100]" holds 0 and 100).
std::vector<std::string_view> split_top(std::string_view s, Sep sep, WorkBudget& budget, bool grouping = true) {
  std::vector<std::string_view> parts;
  int64_t depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    budget.charge();
    const char c = s[i];
    if (c == '\\') {
      if (i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
        depth += s[i + 1] == '{' ? 1 : -1;
        ++i;
        continue;
      }
      const std::string_view cmd = command_at(s, i);
      if (depth == 0 && ((sep == Sep::kCup && cmd == "cup") || (sep == Sep::kIn && cmd == "in" && !negated(s, i)))) {
        parts.push_back(trim(s.substr(start, i - start), budget));
        start = i + 1 + cmd.size();
      }
      i += cmd.size();
      continue;
    }
    if (c == '(' || c == '[' || c == '{')
      ++depth;
    else if (c == ')' || c == ']' || c == '}')
      --depth;
    if (depth < 0) return {s};
    if (depth != 0) continue;
    if ((sep == Sep::kComma && c == ',' && !(grouping && thousands_comma(s, i))) || (sep == Sep::kEquals && c == '=')) {
      parts.push_back(trim(s.substr(start, i - start), budget));
      start = i + 1;
    }
  }
  if (depth != 0) return {s};
  parts.push_back(trim(s.substr(start), budget));
  return parts;
}

// True when the bracket opening at 0 closes exactly at the end (open_len/close_len: 1, or 2 for \{ \}).
bool enclosed(std::string_view s, size_t open_len, size_t close_len, WorkBudget& budget) {
  int64_t depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    budget.charge();
    const char c = s[i];
    if (c == '\\') {
      if (i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if (c == ')' || c == ']' || c == '}') {
      --depth;
    }
    if (depth == 0) return i + 1 == s.size() && i + 1 >= open_len + close_len;
  }
  return false;
}

struct List {
  enum Kind { kSet, kInterval, kTuple } kind;
  char open = 0, close = 0;
  std::vector<std::string_view> elems;
};

std::optional<List> as_list(std::string_view s, WorkBudget& budget) {
  if (s == "\\emptyset") return List{List::kSet, 0, 0, {}};
  if (s.size() >= 4 && match_at(s, 0, "\\{") && match_at(s, s.size() - 2, "\\}") && enclosed(s, 2, 2, budget)) {
    const std::string_view inner = trim(s.substr(2, s.size() - 4), budget);
    List l{List::kSet, 0, 0, {}};
    if (!inner.empty()) l.elems = split_top(inner, Sep::kComma, budget, /*grouping=*/false);
    return l;
  }
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') && (s.back() == ')' || s.back() == ']') &&
      enclosed(s, 1, 1, budget)) {
    auto elems = split_top(s.substr(1, s.size() - 2), Sep::kComma, budget, /*grouping=*/false);
    if (elems.size() == 2) return List{List::kInterval, s.front(), s.back(), std::move(elems)};
    if (elems.size() >= 3) return List{List::kTuple, 0, 0, std::move(elems)};
    return std::nullopt;  // "(x+1)": brackets around one value
  }
  auto elems = split_top(s, Sep::kComma, budget);
  if (elems.size() >= 2) return List{List::kSet, 0, 0, std::move(elems)};
  return std::nullopt;
}

bool simple_variable(std::string_view s, WorkBudget& budget) {
  if (s.empty()) return false;
  size_t i = 0;
  if (is_alpha(s[0])) {
    i = 1;
  } else {
    const std::string_view cmd = command_at(s, 0);
    if (cmd.empty() || cmd == "pi") return false;
    i = cmd.size() + 1;
  }
  if (i == s.size()) return true;
  if (s[i] != '_') return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    budget.charge();
    if (!(is_alpha(s[k]) || is_digit(s[k]) || s[k] == '{' || s[k] == '}')) return false;
  }
  return true;
}

class Comparer {
 public:
  explicit Comparer(WorkBudget& budget) : budget_(budget) {}

  bool equal(std::string_view p, std::string_view r, int depth) {
    budget_.charge();
    p = trim(p, budget_), r = trim(r, budget_);
    if (p.empty() || r.empty() || depth > kMaxListDepth) return false;
    if (compact(p, budget_) == compact(r, budget_)) return true;

    auto pin = split_top(p, Sep::kIn, budget_), rin = split_top(r, Sep::kIn, budget_);
    if (pin.size() == 2 || rin.size() == 2) return equal(pin.back(), rin.back(), depth + 1);

    const auto lp = as_list(p, budget_), lr = as_list(r, budget_);
    if (lp || lr) return lp && lr && lists_equal(*lp, *lr, depth);

    const auto up = split_top(p, Sep::kCup, budget_), ur = split_top(r, Sep::kCup, budget_);
    if (up.size() > 1 || ur.size() > 1) return up.size() == ur.size() && unordered_equal(up, ur, depth);

    const auto ep = split_top(p, Sep::kEquals, budget_), er = split_top(r, Sep::kEquals, budget_);
    if (ep.size() > 1 && er.size() == 1) return equal(ep.back(), r, depth + 1);
    if (er.size() > 1 && ep.size() == 1) return simple_variable(er.front(), budget_) && equal(p, er.back(), depth + 1);
    if (ep.size() > 1) return equal(ep.front(), er.front(), depth + 1) && equal(ep.back(), er.back(), depth + 1);

    return values_equal(p, r);
  }

 private:
  bool lists_equal(const List& a, const List& b, int depth) {
    if (a.kind != b.kind || a.elems.size() != b.elems.size()) return false;
    if (a.kind == List::kSet) return unordered_equal(a.elems, b.elems, depth);
    if (a.kind == List::kInterval && (a.open != b.open || a.close != b.close)) return false;
    for (size_t i = 0; i < a.elems.size(); ++i)
      if (!equal(a.elems[i], b.elems[i], depth + 1)) return false;
    return true;
  }

  // Greedy matching: each element of `a` takes the first unused equal element of `b`.
  bool unordered_equal(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b, int depth) {
    if (a.size() != b.size()) return false;
    std::vector<bool> used(b.size(), false);
    for (const auto& x : a) {
      bool found = false;
      for (size_t j = 0; j < b.size() && !found; ++j) {
        budget_.charge();
        if (used[j] || !equal(x, b[j], depth + 1)) continue;
        used[j] = found = true;
      }
      if (!found) return false;
    }
    return true;
  }

  bool values_equal(std::string_view p, std::string_view r) {
    const bool pp = !p.empty() && p.back() == '%', rp = !r.empty() && r.back() == '%';
    if (pp) p = trim(p.substr(0, p.size() - 1), budget_);
    if (rp) r = trim(r.substr(0, r.size() - 1), budget_);
    // Two integers written out whole compare digit by digit, at any length (beyond 2^127 the parser
    // keeps only doubles).
    if (pp == rp && plain_integer(p) && plain_integer(r)) return integer_equal(p, r, budget_);
    const auto a = eval_expr(p, budget_);
    if (!a) return false;
    const auto b = eval_expr(r, budget_);
    if (!b) return false;
    if (pp == rp) return expr_values_equal(*a, *b);
    const ExprValue& pct = pp ? *a : *b;
    const ExprValue& other = pp ? *b : *a;
    return expr_values_equal(pct, other) || expr_values_equal(expr_value_percent(pct), other);
  }

  WorkBudget& budget_;
};

// "B" from "(b)", "b", "b) 42", "b. text", "b: ..." (normalised, so lower case).
std::optional<char> choice_prediction(std::string_view s, WorkBudget& budget) {
  s = trim(s, budget);
  size_t i = 0;
  const bool paren = !s.empty() && s[0] == '(';
  if (paren) ++i;
  if (i >= s.size() || s[i] < 'a' || s[i] > 'z') return std::nullopt;
  const char letter = char(s[i] - 'a' + 'A');
  ++i;
  if (paren) {
    if (i >= s.size() || s[i] != ')') return std::nullopt;
    ++i;
  } else if (i < s.size() && (s[i] == ')' || s[i] == '.' || s[i] == ':')) {
    ++i;
  }
  if (i < s.size() && s[i] != ' ') return std::nullopt;
  // A hedge names no single option: "b or d", "(a) or (b)", "a and b".
  for (size_t k = i; k < s.size(); ++k) {
    budget.charge();
    const bool word_start = k == 0 || !is_alpha(s[k - 1]);
    if (!word_start) continue;
    for (std::string_view w : {"or", "and"})
      if (match_at(s, k, w) && (k + w.size() == s.size() || !is_alpha(s[k + w.size()]))) return std::nullopt;
  }
  return letter;
}

}  // namespace

std::optional<char> choice_reference(std::string_view raw) {
  if (raw.size() > 64) return std::nullopt;  // an option letter with its wrapping is short
  // Keep only the characters that matter: drop $, spaces, braces and control words (\text...).
  std::string kept;
  for (size_t i = 0; i < raw.size() && kept.size() < 8; ++i) {
    const char c = raw[i];
    if (c == '\\') {
      while (i + 1 < raw.size() && is_alpha(raw[i + 1])) ++i;
      continue;
    }
    if (c == '$' || c == '{' || c == '}' || is_space(c)) continue;
    kept += c;
  }
  std::string_view k = kept;
  if (!k.empty() && k.back() == '.') k.remove_suffix(1);
  if (k.size() == 3 && k[0] == '(' && k[2] == ')') k = k.substr(1, 1);
  if (k.size() == 2 && k[1] == ')') k = k.substr(0, 1);
  if (k.size() == 1 && k[0] >= 'A' && k[0] <= 'E') return k[0];
  return std::nullopt;
}

bool math_equal_normalized(std::string_view prediction, std::string_view reference, WorkBudget& budget) {
  return Comparer(budget).equal(prediction, reference, 0);
}

bool math_equal(std::string_view prediction, std::string_view reference, WorkBudget& budget) {
  const std::string p = normalize_answer(prediction, budget);
  if (const auto letter = choice_reference(reference)) {
    const auto got = choice_prediction(p, budget);
    return got && *got == *letter;
  }
  const std::string r = normalize_answer(reference, budget);
  return math_equal_normalized(p, r, budget);
}

bool integer_equal(std::string_view a, std::string_view b, WorkBudget& budget) {
  auto canon = [&](std::string_view s, std::string* out) {
    budget.charge(int64_t(s.size()));
    s = trim(s, budget);
    bool negative = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
      negative = s[0] == '-';
      s.remove_prefix(1);
    }
    if (s.empty()) return false;
    for (char c : s)
      if (!is_digit(c)) return false;
    while (s.size() > 1 && s[0] == '0') s.remove_prefix(1);
    *out = (negative && s != "0" ? "-" : "") + std::string(s);
    return true;
  };
  std::string x, y;
  return canon(a, &x) && canon(b, &y) && x == y;
}

}  // namespace rlkv
