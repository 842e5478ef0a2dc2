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
    {"\xE2\x88\x92", "-"},        {"\xC3\x97", "\\times "},  {"\xC3\xB7", "\\div "},     {"\xCF\x80", "\\pi "},
    {"\xE2\x88\x9E", "\\infty "}, {"\xC2\xB0", ""},          {"\xE2\x88\x9A", "\\sqrt"}, {"\xE2\x89\xA4", "\\le "},
    {"\xE2\x89\xA5", "\\ge "},    {"\xC2\xA0", " "},         {"\xE2\x80\x89", "\t"},     {"\xE2\x80\xAF", "\t"},
    {"\xE2\x88\xAA", "\\cup "},   {"\xE2\x89\xA0", "\\ne "},
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
    if (is_alpha(c))
      letter = true;
    else if (!(c == ' ' || c == '.' || c == '/'))
      return false;
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

// The left-to-right pass over a trimmed answer: each step rewrites the construct at s[i] (a
// character, a control symbol, a control word with its argument) into `out`.
class LatexScan {
 public:
  LatexScan(std::string_view s, WorkBudget& budget)
      : s_(s), n_(s.size()), budget_(budget), close_(match_braces(s, budget)) {
    out_.reserve(n_);
  }

  std::string run() {
    while (i_ < n_) {
      budget_.charge();
      if (at_unwrapped_close()) continue;
      step();
    }
    return std::move(out_);
  }

 private:
  // One construct at s[i]: dispatches on its first byte.
  void step() {
    const char c = s_[i_];
    if (static_cast<unsigned char>(c) >= 0x80) {
      utf8_char();
    } else if (c == '$') {
      ++i_;
    } else if (c == '~' || is_space(c)) {
      space();
      ++i_;
    } else if (c == '{' && match_at(s_, i_, "{,}")) {
      out_ += ',';
      i_ += 3;
    } else if (c == '^') {
      caret();
    } else if ((c == '<' || c == '>' || (c == '!' && !factorial_before())) && i_ + 1 < n_ && s_[i_ + 1] == '=') {
      // ASCII <=, >=, != as \le, \ge, \ne: their '=' is not an equation's ("x >= 5" is not 5). A '!'
      // right after a number or a closing bracket is a factorial ("5!=120", "(3)!=6"); after a letter it
      // is the relation ("x!=5": x is not 5).
      out_ += c == '<' ? "\\le " : c == '>' ? "\\ge " : "\\ne ";
      i_ += 2;
    } else if (c != '\\') {
      out_ += lower(c);
      ++i_;
    } else {
      backslash();
    }
  }

  // The '}' of an unwrapped \text{...} group: dropped (groups already passed are forgotten).
  bool at_unwrapped_close() {
    while (!skip_.empty() && skip_.back() < i_) skip_.pop_back();
    if (skip_.empty() || i_ != skip_.back()) return false;
    skip_.pop_back();
    ++i_;
    return true;
  }

  // Whether the '!' at i_ follows a digit or a closing bracket in the input.
  bool factorial_before() const {
    if (i_ == 0) return false;
    const char p = s_[i_ - 1];
    return is_digit(p) || p == ')' || p == '}' || p == ']';
  }

  // White space, '~' and spacing commands: one space, never two, none at the start.
  void space() {
    if (!out_.empty() && out_.back() != ' ') out_ += ' ';
  }

  // A thin space between two digits joins them (3\,000); elsewhere it separates.
  void thin(size_t next) {
    if (!out_.empty() && is_digit(out_.back()) && next < n_ && is_digit(s_[next])) return;
    space();
  }

  // A multi-byte character: rewritten by kUtf8 when listed there, else its first byte copied.
  void utf8_char() {
    for (const auto& r : kUtf8) {
      if (!match_at(s_, i_, r.from)) continue;
      i_ += r.from.size();
      if (r.to == "\t")
        thin(i_);
      else if (r.to == " ")
        space();
      else
        out_ += r.to;
      return;
    }
    out_ += s_[i_++];
  }

  // Degrees (^\circ, ^{\circ}, ^\degree, ^{\degree}) and an empty power ^{}: dropped; any other '^' kept.
  void caret() {
    for (std::string_view d : {"^\\circ", "^{\\circ}", "^\\degree", "^{\\degree}", "^{}"}) {
      if (match_at(s_, i_, d) && !(d.back() != '}' && i_ + d.size() < n_ && is_alpha(s_[i_ + d.size()]))) {
        i_ += d.size();
        return;
      }
    }
    out_ += '^';
    ++i_;
  }

  // A backslash: a control symbol (\, \% \{ ...) or a control word (\frac ...); a last lone one is dropped.
  void backslash() {
    if (i_ + 1 >= n_) {
      ++i_;
      return;
    }
    if (!is_alpha(s_[i_ + 1]))
      control_symbol();
    else
      control_word();
  }

  // Control symbols: delimiters \( \) \[ \] and currency \$ dropped, \% -> %, \! dropped, thin
  // spaces \, \: \; "\ " as thin(), a line break \\ as a space; others kept.
  void control_symbol() {
    const char d = s_[i_ + 1];
    i_ += 2;
    switch (d) {
      case '$':
      case '(':
      case ')':
      case '[':
      case ']':
        break;
      case '%':
        out_ += '%';
        break;
      case '!':
        break;
      case ',':
      case ':':
      case ';':
      case ' ':
        thin(i_);
        break;
      case '\\':
        space();
        break;
      default:
        out_ += '\\';
        out_ += d;
    }
  }

  // A control word: dropped, rewritten to its canonical synonym, unwrapped with its argument, or kept.
  void control_word() {
    size_t j = i_ + 1;
    while (j < n_ && is_alpha(s_[j])) {
      budget_.charge();
      ++j;
    }
    const std::string_view name = s_.substr(i_ + 1, j - i_ - 1);
    i_ = j;
    if (layout_command(name) || synonym_command(name)) return;
    const bool text_like = one_of(name, {"text", "textrm", "textnormal", "textup", "textsf", "texttt", "mbox", "hbox",
                                         "mathrm", "textbf", "textit", "emph"});
    if (text_like || one_of(name, {"mathbf", "mathit", "mathsf", "mathtt", "boldsymbol", "bm", "boxed", "fbox",
                                   "operatorname", "mathnormal"})) {
      argument_command(text_like);
      return;
    }
    out_ += '\\';
    out_ += name;
  }

  // Sizing (\left, \big ...; \left. included), style (\displaystyle ...) and degree words: dropped;
  // spacing words (\quad ...): a space. True when `name` is one of them.
  bool layout_command(std::string_view name) {
    if (one_of(name, {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
                      "Biggl", "Biggr", "middle"})) {
      if (i_ < n_ && s_[i_] == '.') ++i_;  // \left. is an invisible delimiter
      return true;
    }
    if (one_of(name, {"displaystyle", "textstyle", "scriptstyle", "limits", "nolimits", "circ", "degree"})) return true;
    if (one_of(name, {"quad", "qquad", "enspace", "thinspace", "medspace", "thickspace"})) {
      space();
      return true;
    }
    return false;
  }

  // Commands with a canonical synonym (\dfrac -> \frac, \leq -> \le, \lbrace -> \{ ...): rewritten.
  // True when `name` is one of them.
  bool synonym_command(std::string_view name) {
    if (one_of(name, {"dfrac", "tfrac", "cfrac"}))
      out_ += "\\frac";
    else if (one_of(name, {"dbinom", "tbinom"}))
      out_ += "\\binom";
    else if (one_of(name, {"le", "leq", "leqslant"}))
      out_ += "\\le ";
    else if (one_of(name, {"ge", "geq", "geqslant"}))
      out_ += "\\ge ";
    else if (one_of(name, {"ne", "neq"}))
      out_ += "\\ne ";
    else if (name == "lbrace")
      out_ += "\\{";
    else if (name == "rbrace")
      out_ += "\\}";
    else if (name == "ast")
      out_ += "\\cdot ";
    else if (name == "infin")
      out_ += "\\infty ";
    else if (name == "varnothing")
      out_ += "\\emptyset ";
    else
      return false;
    return true;
  }

  // \text{...}, \mathbf{...}, \boxed{...} and friends: a unit after a number goes (drop_unit),
  // otherwise the argument stays and its closing brace is dropped when reached; no argument: the
  // command alone goes.
  void argument_command(bool text_like) {
    size_t k = i_;
    while (k < n_ && is_space(s_[k])) {
      budget_.charge();
      ++k;
    }
    if (k >= n_ || s_[k] != '{' || close_[k] == npos) return;  // no argument: drop the command
    const std::string_view arg = s_.substr(k + 1, close_[k] - k - 1);
    const char prev = last_nonspace(out_);
    if (text_like && (is_digit(prev) || prev == '}' || prev == ')') && unit_like(arg, budget_) && drop_unit(k)) return;
    skip_.push_back(close_[k]);
    i_ = k + 1;
  }

  // A unit ("10\text{ cm}^2", its argument closing at close[k]): dropped, with its power, when
  // nothing but a separator follows. True when dropped.
  bool drop_unit(size_t k) {
    size_t e = close_[k] + 1;
    for (std::string_view p : {"^{2}", "^{3}", "^2", "^3"})
      if (match_at(s_, e, p)) {
        e += p.size();
        break;
      }
    size_t f = e;
    while (f < n_ && is_space(s_[f])) {
      budget_.charge();
      ++f;
    }
    if (f >= n_ || s_[f] == ',' || s_[f] == ')' || s_[f] == ']' || s_[f] == ';' || s_[f] == '.' ||
        match_at(s_, f, "\\}") || match_at(s_, f, "\\\\") || match_at(s_, f, "$")) {
      i_ = e;
      return true;
    }
    return false;
  }

  const std::string_view s_;
  const size_t n_;
  WorkBudget& budget_;
  const std::vector<size_t> close_;  // match_braces(s)
  std::vector<size_t> skip_;         // '}' of unwrapped \text{...} groups still ahead, innermost on top
  std::string out_;
  size_t i_ = 0;
};

// A final word "percent" (alone, after a space or after a digit) -> "%", the spaces before it dropped.
void percent_word_to_sign(std::string& r) {
  if (r.size() >= 7 && r.compare(r.size() - 7, 7, "percent") == 0 &&
      (r.size() == 7 || r[r.size() - 8] == ' ' || is_digit(r[r.size() - 8]))) {
    r.resize(r.size() - 7);
    while (!r.empty() && r.back() == ' ') r.pop_back();
    r += '%';
  }
}

// Trailing periods and spaces go (a control symbol "\." stays).
void drop_trailing_periods(std::string& r, WorkBudget& budget) {
  while (!r.empty() && (r.back() == '.' || r.back() == ' ')) {
    budget.charge();
    if (r.size() >= 2 && r.back() == '.' && r[r.size() - 2] == '\\') break;
    r.pop_back();
  }
}

// Trailing spaces go.
void drop_trailing_spaces(std::string& r, WorkBudget& budget) {
  while (!r.empty() && r.back() == ' ') {
    budget.charge();
    r.pop_back();
  }
}

// Braces around the whole answer go, every layer of them: "{{5}}" -> "5".
void strip_outer_braces(std::string& r, WorkBudget& budget) {
  if (r.empty() || r.front() != '{') return;
  const std::vector<size_t> m = match_braces(r, budget);
  size_t layers = 0;
  while (2 * layers + 1 < r.size() && r[layers] == '{' && m[layers] == r.size() - 1 - layers) {
    budget.charge();
    ++layers;
  }
  if (layers > 0) r = std::string(trim(std::string_view(r).substr(layers, r.size() - 2 * layers), budget));
}

// The clean-up after the scan: trim, "percent", trailing period, unit words, redundant outer braces.
std::string clean_up(std::string_view scanned, WorkBudget& budget) {
  std::string r(trim(scanned, budget));
  percent_word_to_sign(r);
  drop_trailing_periods(r, budget);
  drop_trailing_words(r, budget);
  drop_trailing_spaces(r, budget);
  strip_outer_braces(r, budget);
  return r;
}

}  // namespace

std::string normalize_answer(std::string_view in, WorkBudget& budget) {
  const std::string_view s = trim(in, budget);
  const std::string out = LatexScan(s, budget).run();
  return clean_up(out, budget);
}

std::string compact(std::string_view s, WorkBudget& budget) {
  budget.charge(int64_t(s.size()));
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    // A space between two digits stays: "1 2" is not "12", nor "2 1/2" (a mixed number) "21/2".
    if (c != ' ' || (!out.empty() && is_digit(out.back()) && i + 1 < s.size() && is_digit(s[i + 1]))) out += c;
  }
  return out;
}

}  // namespace rlkv
