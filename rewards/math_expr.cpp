#include "rewards/math_expr.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <system_error>

#include "rewards/text_scan.h"

namespace rlkv {

using namespace text_scan;

namespace {

using i128 = __int128;
constexpr int kMaxDepth = 200;  // recursion levels (~5 per bracket): ~40 nested brackets
constexpr double kPi = 3.14159265358979323846;
constexpr double kE = 2.71828182845904523536;
constexpr i128 kI128Max = i128((~static_cast<unsigned __int128>(0)) >> 1);

struct ParseFail {};

i128 abs128(i128 v) { return v < 0 ? -v : v; }

i128 gcd128(i128 a, i128 b) {
  a = abs128(a), b = abs128(b);
  while (b != 0) {
    const i128 t = a % b;
    a = b, b = t;
  }
  return a;
}

// Checked 128-bit arithmetic: false on overflow, and the most negative value is refused too, so
// that every value held can be negated.
bool mul_ok(i128 a, i128 b, i128* r) { return !__builtin_mul_overflow(a, b, r) && *r >= -kI128Max; }
bool add_ok(i128 a, i128 b, i128* r) { return !__builtin_add_overflow(a, b, r) && *r >= -kI128Max; }

// Reduces num/den into v (exact); den != 0, both within +-kI128Max.
void set_rational(ExprValue& v, i128 num, i128 den) {
  if (den == 0) {
    v.exact = false;
    return;
  }
  if (den < 0) num = -num, den = -den;
  const i128 g = gcd128(num, den);
  if (g > 1) num /= g, den /= g;
  v.exact = true;
  v.num = num, v.den = den;
}

ExprValue constant(double x) {
  ExprValue v;
  v.at.fill(x);
  return v;
}

ExprValue integer(i128 n) {
  ExprValue v = constant(double(n));
  v.exact = true, v.num = n, v.den = 1;
  v.rational = true;
  return v;
}

ExprValue combine(const ExprValue& a, const ExprValue& b) {
  ExprValue r;
  r.decimal = a.decimal || b.decimal;
  r.variables = a.variables || b.variables;
  return r;
}

// a.num/a.den + sign * b.num/b.den into r, exact when nothing overflows.
void exact_add(ExprValue& r, const ExprValue& a, const ExprValue& b, int sign) {
  const i128 g = gcd128(a.den, b.den);
  i128 x, y, n, d;
  if (mul_ok(a.num, b.den / g, &x) && mul_ok(sign * b.num, a.den / g, &y) && add_ok(x, y, &n) &&
      mul_ok(a.den / g, b.den, &d))
    set_rational(r, n, d);
}

// (an/ad) * (bn/bd) into r, cross-reduced first so that (1/3)^40 stays exact.
void exact_mul(ExprValue& r, i128 an, i128 ad, i128 bn, i128 bd) {
  const i128 g1 = an == 0 ? 1 : gcd128(an, bd), g2 = bn == 0 ? 1 : gcd128(bn, ad);
  i128 n, d;
  if (mul_ok(an / g1, bn / g2, &n) && mul_ok(ad / g2, bd / g1, &d)) set_rational(r, n, d);
}

ExprValue add(const ExprValue& a, const ExprValue& b, int sign) {
  ExprValue r = combine(a, b);
  for (int p = 0; p < kEvalPoints; ++p) r.at[p] = a.at[p] + sign * b.at[p];
  r.rational = a.rational && b.rational;
  if (a.exact && b.exact) exact_add(r, a, b, sign);
  return r;
}

ExprValue mul(const ExprValue& a, const ExprValue& b) {
  ExprValue r = combine(a, b);
  for (int p = 0; p < kEvalPoints; ++p) r.at[p] = a.at[p] * b.at[p];
  r.rational = a.rational && b.rational;
  if (a.exact && b.exact) exact_mul(r, a.num, a.den, b.num, b.den);
  return r;
}

ExprValue div(const ExprValue& a, const ExprValue& b) {
  for (int p = 0; p < kEvalPoints; ++p)
    if (b.at[p] == 0) throw ParseFail{};  // division by zero (at some point): undecidable
  ExprValue r = combine(a, b);
  for (int p = 0; p < kEvalPoints; ++p) r.at[p] = a.at[p] / b.at[p];
  r.rational = a.rational && b.rational;
  if (a.exact && b.exact && b.num != 0) {
    const bool negative = b.num < 0;
    exact_mul(r, a.num, a.den, negative ? -b.den : b.den, negative ? -b.num : b.num);
  }
  return r;
}

ExprValue neg(const ExprValue& a) { return add(integer(0), a, -1); }

bool is_integer(const ExprValue& v) { return v.exact && v.den == 1; }

ExprValue power(const ExprValue& a, const ExprValue& e) {
  ExprValue r = combine(a, e);
  for (int p = 0; p < kEvalPoints; ++p) r.at[p] = std::pow(a.at[p], e.at[p]);
  r.rational = a.rational && is_integer(e);
  if (a.exact && is_integer(e) && e.num >= -128 && e.num <= 128 && !(a.num == 0 && e.num < 0)) {
    i128 n = 1, d = 1;
    bool fits = true;
    for (int k = 0; k < int(e.num < 0 ? -e.num : e.num) && fits; ++k)
      fits = mul_ok(n, a.num, &n) && mul_ok(d, a.den, &d);
    if (fits) {
      if (e.num < 0) std::swap(n, d);
      set_rational(r, n, d);
    }
  }
  return r;
}

// c^k, or false when it exceeds `limit`.
bool power_at_most(i128 c, int k, i128 limit, i128* out) {
  i128 p = 1;
  for (int i = 0; i < k; ++i)
    if (!mul_ok(p, c, &p) || p > limit) return false;
  *out = p;
  return true;
}

// Exact integer k-th root of n >= 0 when there is one (a binary search: a double's guess is off by
// thousands near 2^127).
bool exact_root(i128 n, int k, i128* out) {
  if (n < 0) return false;
  i128 lo = 0, hi = i128(1) << (126 / k + 1);  // hi^k > 2^126: above every root of interest
  while (lo < hi) {                            // the largest c with c^k <= n
    const i128 mid = lo + (hi - lo + 1) / 2;
    i128 p;
    if (power_at_most(mid, k, n, &p))
      lo = mid;
    else
      hi = mid - 1;
  }
  i128 p;
  if (!power_at_most(lo, k, n, &p) || p != n) return false;
  *out = lo;
  return true;
}

ExprValue root(const ExprValue& a, const ExprValue& index) {
  if (!is_integer(index) || index.num < 2 || index.num > 64) throw ParseFail{};
  const int k = int(index.num);
  ExprValue r = combine(a, index);
  for (int p = 0; p < kEvalPoints; ++p) {
    const double x = a.at[p];
    r.at[p] = (x < 0 && k % 2 == 1) ? -std::pow(-x, 1.0 / k) : std::pow(x, 1.0 / k);
  }
  i128 rn = 0, rd = 0;
  if (a.exact && a.num >= 0 && exact_root(a.num, k, &rn) && exact_root(a.den, k, &rd)) set_rational(r, rn, rd);
  r.rational = r.exact;
  return r;
}

ExprValue factorial(const ExprValue& a) {
  if (!is_integer(a) || a.num < 0 || a.num > 170) throw ParseFail{};
  const int n = int(a.num);
  ExprValue r = combine(a, a);
  // The product in long double (64-bit mantissa), rounded once: 21! and 22! come out exact, where
  // tgamma is off by an ulp.
  long double f = 1;
  for (int k = 2; k <= n; ++k) f *= (long double)k;
  r.at.fill(double(f));
  r.rational = true;
  i128 e = 1;
  bool fits = true;
  for (int k = 2; k <= n && fits; ++k) fits = mul_ok(e, k, &e);  // exact up to 33!
  if (fits) set_rational(r, e, 1);
  return r;
}

ExprValue binomial(const ExprValue& n, const ExprValue& k) {
  if (!is_integer(n) || !is_integer(k) || n.num < 0 || n.num > 1000 || k.num < 0 || k.num > n.num) throw ParseFail{};
  const int64_t nn = int64_t(n.num), kk = int64_t(std::min(k.num, n.num - k.num));
  ExprValue r = combine(n, k);
  double d = 1;
  i128 e = 1;
  bool fits = true;
  for (int64_t i = 1; i <= kk; ++i) {
    d = d * double(nn - kk + i) / double(i);
    // Exact at every step (a product of i consecutive integers over i!), while the product fits.
    if (fits) fits = mul_ok(e, nn - kk + i, &e) && ((e /= i), true);
  }
  r.at.fill(d);
  r.rational = true;
  if (fits) set_rational(r, e, 1);
  return r;
}

// A variable's value at point p: pseudo-random in [0.5, 2), from its name only (FNV-1a).
ExprValue variable(std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (char c : name) h = (h ^ uint8_t(c)) * 1099511628211ull;
  ExprValue v;
  v.variables = true;
  for (int p = 0; p < kEvalPoints; ++p) {
    const uint64_t x = (h ^ (uint64_t(p + 1) * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    v.at[p] = 0.5 + 1.5 * double(x >> 11) / double(uint64_t(1) << 53);
  }
  return v;
}

bool is_greek(std::string_view n) {
  for (std::string_view g :
       {"alpha",    "beta",    "gamma", "delta",  "epsilon", "varepsilon", "zeta",  "eta",   "theta",
        "vartheta", "iota",    "kappa", "lambda", "mu",      "nu",         "xi",    "rho",   "sigma",
        "tau",      "upsilon", "phi",   "varphi", "chi",     "psi",        "omega", "Gamma", "Delta",
        "Theta",    "Lambda",  "Xi",    "Sigma",  "Phi",     "Psi",        "Omega"})
    if (n == g) return true;
  return false;
}

class Parser {
 public:
  Parser(std::string_view s, WorkBudget& budget) : s_(s), budget_(budget) {}

  ExprValue parse_all() {
    ExprValue v = expr();
    skip();
    if (i_ != s_.size()) throw ParseFail{};
    // NaN (a root of a negative number...) or an overflow to infinity is undecidable.
    for (double x : v.at)
      if (std::isnan(x) || (std::isinf(x) && !saw_infinity_)) throw ParseFail{};
    return v;
  }

 private:
  struct Depth {
    explicit Depth(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) throw ParseFail{};
    }
    ~Depth() { --p_.depth_; }
    Parser& p_;
  };

  bool at_end() const { return i_ >= s_.size(); }
  char cur() const { return at_end() ? '\0' : s_[i_]; }
  void skip() {
    while (!at_end() && s_[i_] == ' ') {
      budget_.charge();
      ++i_;
    }
  }
  void expect(char c) {
    skip();
    if (cur() != c) throw ParseFail{};
    ++i_;
  }
  std::string_view command_at(size_t at) const { return text_scan::command_at(s_, at); }
  bool eat_command(std::string_view name) {
    skip();
    if (command_at(i_) != name) return false;
    i_ += name.size() + 1;
    return true;
  }

  static bool value_command(std::string_view c) {
    for (std::string_view v : {"frac", "sqrt", "binom", "pi", "infty", "sin", "cos", "tan", "ln", "log", "exp"})
      if (c == v) return true;
    return is_greek(c);
  }

  // Can an implicit product continue here ("2x", "3\sqrt{2}", "2(x+1)")? Digits cannot ("2 3").
  bool starts_factor() const {
    const char c = cur();
    if (is_alpha(c) || c == '(' || c == '{') return true;
    return c == '\\' && value_command(command_at(i_));
  }

  ExprValue expr() {
    Depth guard(*this);
    ExprValue v = term();
    for (;;) {
      skip();
      if (cur() == '+') {
        ++i_;
        v = add(v, term(), +1);
      } else if (cur() == '-') {
        ++i_;
        v = add(v, term(), -1);
      } else {
        return v;
      }
    }
  }

  ExprValue term() {
    Depth guard(*this);
    ExprValue v = unary();
    for (;;) {
      skip();
      budget_.charge();
      if (cur() == '*') {
        ++i_;
        v = mul(v, unary());
      } else if (cur() == '/') {
        ++i_;
        v = div(v, unary());
      } else if (eat_command("cdot") || eat_command("times")) {
        v = mul(v, unary());
      } else if (eat_command("div")) {
        v = div(v, unary());
      } else if (starts_factor()) {
        v = mul(v, pow_expr());
      } else {
        return v;
      }
    }
  }

  ExprValue unary() {
    Depth guard(*this);
    skip();
    if (cur() == '-') {
      ++i_;
      return neg(unary());
    }
    if (cur() == '+') {
      ++i_;
      return unary();
    }
    return pow_expr();
  }

  ExprValue pow_expr() {
    Depth guard(*this);
    ExprValue base = postfix();
    skip();
    if (cur() == '^') {
      ++i_;
      base = power(base, exponent());
    }
    return base;
  }

  ExprValue exponent() {
    Depth guard(*this);
    skip();
    if (cur() == '-') {
      ++i_;
      return neg(exponent());
    }
    if (cur() == '+') ++i_;
    if (cur() == '{') return group('{', '}');
    return postfix();
  }

  ExprValue postfix() {
    ExprValue v = primary();
    while (cur() == '!') {
      ++i_;
      v = factorial(v);
    }
    return v;
  }

  ExprValue group(char open, char close) {
    Depth guard(*this);
    skip();
    if (cur() != open) throw ParseFail{};
    ++i_;
    ExprValue v = expr();
    expect(close);
    return v;
  }

  // One macro argument: a {group}, or a single token (\frac12 = \frac{1}{2}).
  ExprValue argument() {
    Depth guard(*this);
    skip();
    const char c = cur();
    if (c == '{') return group('{', '}');
    if (is_digit(c)) {
      ++i_;
      return integer(c - '0');
    }
    if (is_alpha(c) || c == '\\') return primary();
    throw ParseFail{};
  }

  ExprValue primary() {
    Depth guard(*this);
    skip();
    budget_.charge();
    const char c = cur();
    if (is_digit(c) || c == '.') return number();
    if (c == '(') return group('(', ')');
    if (c == '[') return group('[', ']');
    if (c == '{') return group('{', '}');
    if (is_alpha(c)) {
      const size_t start = i_++;
      subscript();
      const std::string_view name = s_.substr(start, i_ - start);
      if (name == "e") return constant(kE);
      return variable(name);
    }
    if (c != '\\') throw ParseFail{};
    const std::string_view cmd = command_at(i_);
    if (cmd.empty()) throw ParseFail{};
    const size_t start = i_;
    i_ += cmd.size() + 1;
    if (cmd == "frac") {
      ExprValue a = argument();
      return div(a, argument());
    }
    if (cmd == "sqrt") {
      skip();
      ExprValue index = integer(2);
      if (cur() == '[') index = group('[', ']');
      return root(argument(), index);
    }
    if (cmd == "binom") {
      ExprValue n = argument();
      ExprValue k = argument();
      budget_.charge(is_integer(k) && k.num > 0 ? int64_t(std::min<i128>(k.num, 1000)) : 1);  // its loop
      return binomial(n, k);
    }
    if (cmd == "pi") return constant(kPi);
    if (cmd == "infty") {
      saw_infinity_ = true;
      return constant(std::numeric_limits<double>::infinity());
    }
    if (cmd == "sin" || cmd == "cos" || cmd == "tan" || cmd == "ln" || cmd == "log" || cmd == "exp") {
      ExprValue x = pow_expr();
      ExprValue r = combine(x, x);
      for (int p = 0; p < kEvalPoints; ++p) {
        const double a = x.at[p];
        r.at[p] = cmd == "sin"   ? std::sin(a)
                  : cmd == "cos" ? std::cos(a)
                  : cmd == "tan" ? std::tan(a)
                  : cmd == "exp" ? std::exp(a)
                                 : std::log(a);
      }
      return r;
    }
    if (is_greek(cmd)) {
      subscript();
      return variable(s_.substr(start, i_ - start));
    }
    throw ParseFail{};
  }

  // An optional subscript after a variable: x_1, x_{12}, a_n.
  void subscript() {
    if (cur() != '_') return;
    ++i_;
    if (is_digit(cur()) || is_alpha(cur())) {
      ++i_;
      return;
    }
    if (cur() != '{') throw ParseFail{};
    ++i_;
    while (!at_end() && (is_digit(cur()) || is_alpha(cur()))) {
      budget_.charge();
      ++i_;
    }
    if (cur() != '}') throw ParseFail{};
    ++i_;
  }

  // Digits at `at`, counting at most cap + 1 (a bounded lookahead).
  size_t digits_at(size_t at, size_t cap) const { return digit_run(s_, at, cap); }

  // Mixed number after the whole part `whole`: "\frac{1}{2}" or " 1/2" with a proper fraction.
  bool mixed_fraction(int64_t* n, int64_t* d) {
    size_t k = i_;
    if (k < s_.size() && s_[k] == ' ') ++k;
    auto read_int = [&](size_t& at, int64_t* out) {
      const size_t nd = digits_at(at, 9);
      if (nd == 0 || nd > 9) return false;
      std::from_chars(s_.data() + at, s_.data() + at + nd, *out);
      at += nd;
      return true;
    };
    if (command_at(k) == "frac") {
      k += 5;
      auto braced = [&](int64_t* out) {
        if (k < s_.size() && is_digit(s_[k])) {  // \frac12
          *out = s_[k++] - '0';
          return true;
        }
        if (k >= s_.size() || s_[k] != '{') return false;
        ++k;
        if (!read_int(k, out) || k >= s_.size() || s_[k] != '}') return false;
        ++k;
        return true;
      };
      if (!braced(n) || !braced(d)) return false;
    } else if (k > i_) {  // " a/b": a space was required
      if (!read_int(k, n) || k >= s_.size() || s_[k] != '/') return false;
      ++k;
      if (!read_int(k, d)) return false;
      if (k < s_.size() && (is_digit(s_[k]) || s_[k] == '.' || s_[k] == '^')) return false;
    } else {
      return false;
    }
    if (*d == 0 || *n >= *d) return false;
    i_ = k;
    return true;
  }

  ExprValue number() {
    std::string mant;  // all digits, no separators
    size_t frac_digits = 0;
    bool decimal = false;
    const size_t first = i_;
    while (!at_end() && is_digit(cur())) {
      budget_.charge();
      mant += s_[i_++];
    }
    // Thousands groups: "1,234,567" or "10 000" (exactly three digits per group).
    if (!mant.empty() && mant.size() <= 3) {
      for (;;) {
        const char sep = cur();
        if ((sep != ',' && sep != ' ') || digits_at(i_ + 1, 3) != 3) break;
        const size_t after = i_ + 4;
        if (after < s_.size() && (s_[after] == '/' || (sep == ' ' && s_[after] == '.'))) break;
        budget_.charge(4);
        mant.append(s_.substr(i_ + 1, 3));
        i_ = after;
      }
    }
    if (cur() == '.' && digits_at(i_ + 1, 1) > 0) {
      ++i_;
      decimal = true;
      while (!at_end() && is_digit(cur())) {
        budget_.charge();
        mant += s_[i_++];
        ++frac_digits;
      }
    }
    if (mant.empty()) throw ParseFail{};
    int64_t exp10 = 0;
    if (cur() == 'e') {
      size_t k = i_ + 1;
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) ++k;
      const size_t nd = digits_at(k, 4);
      if (nd > 0 && nd <= 4) {
        std::from_chars(s_.data() + k, s_.data() + k + nd, exp10);
        if (s_[i_ + 1] == '-') exp10 = -exp10;
        i_ = k + nd;
        decimal = true;
      }
    }
    ExprValue v;
    v.decimal = decimal;
    v.rational = true;  // a written number, exact or too long for 64 bits
    std::string text = mant;
    text.insert(text.size() - frac_digits, ".");
    text += "e" + std::to_string(exp10);
    double x = 0;
    // Out of the double range (1e9999, 1e-9999): no value, rather than a silent 0 or infinity.
    if (std::from_chars(text.data(), text.data() + text.size(), x).ec != std::errc()) throw ParseFail{};
    v.at.fill(x);
    // Exact value: mant / 10^frac_digits * 10^exp10, when it fits.
    const int64_t shift = exp10 - int64_t(frac_digits);
    size_t lead = 0;
    while (lead + 1 < mant.size() && mant[lead] == '0') {
      budget_.charge();
      ++lead;
    }
    if (mant.size() - lead <= 38 && shift >= -38 && shift <= 38) {
      i128 m = 0, p10 = 1;
      bool fits = true;
      for (size_t k = lead; k < mant.size() && fits; ++k) fits = mul_ok(m, 10, &m) && add_ok(m, mant[k] - '0', &m);
      for (int64_t k = 0; k < (shift < 0 ? -shift : shift) && fits; ++k) fits = mul_ok(p10, 10, &p10);
      if (fits && shift >= 0) {
        fits = mul_ok(m, p10, &m);
        p10 = 1;
      }
      if (fits) set_rational(v, m, p10);
    }
    if (!decimal && i_ > first && is_integer(v)) {
      int64_t n = 0, d = 1;
      if (mixed_fraction(&n, &d)) v = add(v, div(integer(n), integer(d)), +1);
    }
    return v;
  }

  std::string_view s_;
  WorkBudget& budget_;
  size_t i_ = 0;
  int depth_ = 0;
  bool saw_infinity_ = false;
};

bool close_enough(double a, double b, double tolerance) {
  if (std::isnan(a) || std::isnan(b)) return false;
  if (a == b) return true;  // infinities of one sign included
  if (std::isinf(a) || std::isinf(b)) return false;
  return std::fabs(a - b) <= tolerance * std::max(std::fabs(a), std::fabs(b));
}

}  // namespace

std::optional<ExprValue> eval_expr(std::string_view normalized, WorkBudget& budget) {
  if (normalized.empty()) return std::nullopt;
  try {
    return Parser(normalized, budget).parse_all();
  } catch (const ParseFail&) {
    return std::nullopt;
  }
}

// A rational with a finite decimal expansion (its denominator has no prime factor but 2 and 5).
bool terminating(const ExprValue& v) {
  i128 d = v.den;
  while (d % 2 == 0) d /= 2;
  while (d % 5 == 0) d /= 5;
  return d == 1;
}

bool expr_values_equal(const ExprValue& a, const ExprValue& b) {
  // Exact unless a decimal stands for a value that has no finite decimal form (0.333333 for 1/3):
  // the tolerance is there to accept rounding, and two finite decimals that differ (1848.1 and 1848)
  // are different answers, however close.
  if (a.exact && b.exact && ((!a.decimal && !b.decimal) || (terminating(a) && terminating(b))))
    return a.num == b.num && a.den == b.den;
  // Rationals past 128 bits (3^{81}, 35!): their doubles, within the rounding of the operations
  // that made them, not the 1e-4 that accepts a rounded answer.
  const double tolerance = a.rational && b.rational && !a.decimal && !b.decimal && !a.variables && !b.variables
                               ? kOverflowTolerance
                               : kRelTolerance;
  for (int p = 0; p < kEvalPoints; ++p)
    if (!close_enough(a.at[p], b.at[p], tolerance)) return false;
  return true;
}

ExprValue expr_value_percent(const ExprValue& v) { return div(v, integer(100)); }

}  // namespace rlkv
