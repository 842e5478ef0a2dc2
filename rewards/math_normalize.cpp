#include "rewards/math_normalize.h"

#include <vector>

#include "rewards/text_scan.h"

namespace rlkv {

using namespace text_scan;
constexpr size_t npos = std::string_view::npos;

namespace {

// Position of the '}' closing each unescaped '{' (npos when unclosed), in one O(n) pass.
std::vector<size_t> match_braces(std::string_view s, WorkBudget& budget) {
  budget.charge(int64_t(s.size()));
  std::vector<size_t> close(s.size(), npos), open;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '{') {
      open.push_back(i);
    } else if (s[i] == '}' && !open.empty()) {
      close[open.back()] = i;
      open.pop_back();
    }
  }
  return close;
}

struct Utf8Rewrite {
  std::string_view from, to;
};
// Multi-byte characters with a LaTeX / ASCII meaning. "\t" marks a thin space (see kThin below).
constexpr Utf8Rewrite kUtf8[] = {
    {"\xE2\x88\x92", "-"},      {"\xC3\x97", "\\times "}, {"\xC3\xB7", "\\div "},  {"\xCF\x80", "\\pi "},
    {"\xE2\x88\x9E", "\\infty "}, {"\xC2\xB0", ""},        {"\xE2\x88\x9A", "\\sqrt"}, {"\xE2\x89\xA4", "\\le "},
    {"\xE2\x89\xA5", "\\ge "},  {"\xC2\xA0", " "},        {"\xE2\x80\x89", "\t"},  {"\xE2\x80\xAF", "\t"},
    {"\xE2\x88\xAA", "\\cup "},
};

bool one_of(std::string_view name, std::initializer_list<std::string_view> names) {
  for (auto n : names)
    if (name == n) return true;
  return false;
}

char last_nonspace(const std::string& out) {
  for (size_t i = out.size(); i > 0; --i)
    if (out[i - 1] != ' ') return out[i - 1];
  return '\0';
}

// A unit's text: words only (letters, spaces, '.', '/'), at least one letter.
bool unit_like(std::string_view t, WorkBudget& budget) {
  bool letter = false;
  for (char c : t) {
    budget.charge();
    if (is_alpha(c)) letter = true;
    else if (!(c == ' ' || c == '.' || c == '/')) return false;
  }
  return letter;
}

// Drops trailing unit words after a number: "30 apples" -> "30", "2.5 km" -> "2.5". Every word must
// have two letters or more ("2 x" is a product, not a unit).
void drop_trailing_words(std::string& s, WorkBudget& budget) {
  size_t k = s.size();
  while (k > 0 && (is_alpha(s[k - 1]) || s[k - 1] == ' ')) {
    budget.charge();
    --k;
  }
  if (k == s.size() || k == 0 || s[k] != ' ') return;
  const char before = s[k - 1];
  if (!(is_digit(before) || before == '}' || before == '%')) return;
  size_t word = 0;
  for (size_t i = k; i <= s.size(); ++i) {
    budget.charge();
    if (i == s.size() || s[i] == ' ') {
      if (word == 1) return;
      word = 0;
    } else {
      ++word;
    }
  }
  s.resize(k);
}

}  // namespace

std::string normalize_answer(std::string_view in, WorkBudget& budget) {
  const std::string_view s = trim(in, budget);
  const size_t n = s.size();
  const std::vector<size_t> close = match_braces(s, budget);
  std::vector<size_t> skip;  // '}' of unwrapped \text{...} groups still ahead, innermost on top
  std::string out;
  out.reserve(n);
  auto space = [&] {
    if (!out.empty() && out.back() != ' ') out += ' ';
  };
  // A thin space between two digits joins them (3\,000); elsewhere it separates.
  auto thin = [&](size_t next) {
    if (!out.empty() && is_digit(out.back()) && next < n && is_digit(s[next])) return;
    space();
  };

  size_t i = 0;
  while (i < n) {
    budget.charge();
    while (!skip.empty() && skip.back() < i) skip.pop_back();
    if (!skip.empty() && i == skip.back()) {
      skip.pop_back();
      ++i;
      continue;
    }
    const char c = s[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      bool done = false;
      for (const auto& r : kUtf8) {
        if (!match_at(s, i, r.from)) continue;
        i += r.from.size();
        if (r.to == "\t") thin(i);
        else if (r.to == " ") space();
        else out += r.to;
        done = true;
        break;
      }
      if (!done) out += s[i++];
      continue;
    }
    if (c == '$') {
      ++i;
      continue;
    }
    if (c == '~' || is_space(c)) {
      space();
      ++i;
      continue;
    }
    if (c == '{' && match_at(s, i, "{,}")) {
      out += ',';
      i += 3;
      continue;
    }
    if (c == '^') {
      bool degree = false;
      for (std::string_view d : {"^\\circ", "^{\\circ}", "^\\degree", "^{\\degree}", "^{}"}) {
        if (match_at(s, i, d) && !(d.back() != '}' && i + d.size() < n && is_alpha(s[i + d.size()]))) {
          i += d.size();
          degree = true;
          break;
        }
      }
      if (degree) continue;
      out += c;
      ++i;
      continue;
    }
    if (c != '\\') {
      out += lower(c);
      ++i;
      continue;
    }
    // A backslash: a control symbol (\, \% \{ ...) or a control word (\frac ...).
    if (i + 1 >= n) {
      ++i;
      continue;
    }
    const char d = s[i + 1];
    if (!is_alpha(d)) {
      i += 2;
      switch (d) {
        case '$': case '(': case ')': case '[': case ']': break;
        case '%': out += '%'; break;
        case '!': break;
        case ',': case ':': case ';': case ' ': thin(i); break;
        case '\\': space(); break;
        default:
          out += '\\';
          out += d;
      }
      continue;
    }
    size_t j = i + 1;
    while (j < n && is_alpha(s[j])) {
      budget.charge();
      ++j;
    }
    const std::string_view name = s.substr(i + 1, j - i - 1);
    i = j;
    if (one_of(name, {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
                      "Biggl", "Biggr", "middle"})) {
      if (i < n && s[i] == '.') ++i;  // \left. is an invisible delimiter
      continue;
    }
    if (one_of(name, {"displaystyle", "textstyle", "scriptstyle", "limits", "nolimits", "circ", "degree"})) continue;
    if (one_of(name, {"quad", "qquad", "enspace", "thinspace", "medspace", "thickspace"})) {
      space();
      continue;
    }
    if (one_of(name, {"dfrac", "tfrac", "cfrac"})) {
      out += "\\frac";
      continue;
    }
    if (one_of(name, {"dbinom", "tbinom"})) {
      out += "\\binom";
      continue;
    }
    if (one_of(name, {"le", "leq", "leqslant"})) { out += "\\le "; continue; }
    if (one_of(name, {"ge", "geq", "geqslant"})) { out += "\\ge "; continue; }
    if (one_of(name, {"ne", "neq"})) { out += "\\ne "; continue; }
    if (name == "lbrace") { out += "\\{"; continue; }
    if (name == "rbrace") { out += "\\}"; continue; }
    if (name == "ast") { out += "\\cdot "; continue; }
    if (name == "infin") { out += "\\infty "; continue; }
    if (name == "varnothing") { out += "\\emptyset "; continue; }
    const bool text_like = one_of(name, {"text", "textrm", "textnormal", "textup", "textsf", "texttt", "mbox", "hbox",
                                         "mathrm", "textbf", "textit", "emph"});
    if (text_like || one_of(name, {"mathbf", "mathit", "mathsf", "mathtt", "boldsymbol", "bm", "boxed", "fbox",
                                   "operatorname", "mathnormal"})) {
      size_t k = i;
      while (k < n && is_space(s[k])) {
        budget.charge();
        ++k;
      }
      if (k >= n || s[k] != '{' || close[k] == npos) continue;  // no argument: drop the command
      const std::string_view arg = s.substr(k + 1, close[k] - k - 1);
      const char prev = last_nonspace(out);
      if (text_like && (is_digit(prev) || prev == '}' || prev == ')') && unit_like(arg, budget)) {
        // A unit ("10\text{ cm}^2"): dropped, with its power, when nothing but a separator follows.
        size_t e = close[k] + 1;
        for (std::string_view p : {"^{2}", "^{3}", "^2", "^3"})
          if (match_at(s, e, p)) {
            e += p.size();
            break;
          }
        size_t f = e;
        while (f < n && is_space(s[f])) {
          budget.charge();
          ++f;
        }
        if (f >= n || s[f] == ',' || s[f] == ')' || s[f] == ']' || s[f] == ';' || s[f] == '.' ||
            match_at(s, f, "\\}") || match_at(s, f, "\\\\") || match_at(s, f, "$")) {
          i = e;
          continue;
        }
      }
      skip.push_back(close[k]);
      i = k + 1;
      continue;
    }
    out += '\\';
    out += name;
  }

  // Clean-up: trim, "percent", trailing period, unit words, redundant outer braces.
  std::string_view t = trim(out, budget);
  std::string r(t);
  if (r.size() >= 7 && r.compare(r.size() - 7, 7, "percent") == 0 &&
      (r.size() == 7 || r[r.size() - 8] == ' ' || is_digit(r[r.size() - 8]))) {
    r.resize(r.size() - 7);
    while (!r.empty() && r.back() == ' ') r.pop_back();
    r += '%';
  }
  while (!r.empty() && (r.back() == '.' || r.back() == ' ')) {
    budget.charge();
    if (r.size() >= 2 && r.back() == '.' && r[r.size() - 2] == '\\') break;
    r.pop_back();
  }
  drop_trailing_words(r, budget);
  while (!r.empty() && r.back() == ' ') {
    budget.charge();
    r.pop_back();
  }
  if (!r.empty() && r.front() == '{') {
    const std::vector<size_t> m = match_braces(r, budget);
    size_t layers = 0;
    while (2 * layers + 1 < r.size() && r[layers] == '{' && m[layers] == r.size() - 1 - layers) {
      budget.charge();
      ++layers;
    }
    if (layers > 0) r = std::string(trim(std::string_view(r).substr(layers, r.size() - 2 * layers), budget));
  }
  return r;
}

std::string compact(std::string_view s, WorkBudget& budget) {
  budget.charge(int64_t(s.size()));
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (c != ' ') out += c;
  return out;
}

}  // namespace rlkv
