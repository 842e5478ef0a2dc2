// Rewards: answer extraction, normalisation, equivalence, length consistency, one-call
// scoring. The agreement with math-verify is in test_rewards_corpus.cpp, hostile input in
// test_rewards_hostile.cpp, the worker in test_rewards_worker.cpp, `rlkv score` in test_rewards_cli.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "core/error.h"
#include "rewards/extract.h"
#include "rewards/math_equal.h"
#include "rewards/math_expr.h"
#include "rewards/math_normalize.h"
#include "rewards/reward.h"

using namespace rlkv;

namespace {

constexpr int64_t kBudget = int64_t(1) << 22;

Extracted extract(const std::string& s, RewardTask t = RewardTask::kMath) {
  WorkBudget b(kBudget);
  return extract_answer(s, t, b);
}

std::string norm(const std::string& s) {
  WorkBudget b(kBudget);
  return normalize_answer(s, b);
}

bool eq(const std::string& pred, const std::string& ref) {
  WorkBudget b(kBudget);
  return math_equal(pred, ref, b);
}

bool correct(const std::string& response, const std::string& answer, RewardTask t = RewardTask::kMath) {
  RewardOptions o;
  o.task = t;
  return score_response(response, 10, "eos", prepare_reference(answer, o), 10, o).correct;
}

}  // namespace

TEST_CASE("toy task: the integer after the last A:") {
  CHECK(extract("23+45=68;68+12=80;A:80", RewardTask::kToy).text == "80");
  CHECK(extract("A:1;A: -7", RewardTask::kToy).text == "-7");
  CHECK_FALSE(extract("23+45=68;", RewardTask::kToy).found);
  CHECK_FALSE(extract("A:80;A:", RewardTask::kToy).found);  // the LAST A: has no integer
  CHECK(correct("23+45=68;68+12=80;A:80", "80", RewardTask::kToy));
  CHECK(correct("23+45=68;68+12=80;A:080", "A:80", RewardTask::kToy));
  CHECK_FALSE(correct("23+45=68;68+12=80;A:81", "80", RewardTask::kToy));
  CHECK(correct("so A: 80", "80", RewardTask::kToy));
  CHECK_FALSE(correct("A:800", "80", RewardTask::kToy));
  // The integer is the whole answer, after an "A:" that starts a word.
  CHECK_FALSE(correct("A: 5.5", "5", RewardTask::kToy));
  CHECK_FALSE(correct("A: 12abc", "12", RewardTask::kToy));
  CHECK_FALSE(correct("A: 1,000", "1", RewardTask::kToy));
  CHECK(correct("A: 12. Done", "12", RewardTask::kToy));
  CHECK(correct("A:12\n", "12", RewardTask::kToy));
  CHECK(correct("A: 7 DATA: 9", "7", RewardTask::kToy));  // DATA: holds no "A:" of its own
  RewardOptions o;
  o.task = RewardTask::kToy;
  const Reference bad = prepare_reference("eighty", o);
  CHECK_FALSE(bad.usable);
  CHECK_FALSE(score_response("A:80", 5, "eos", bad, 5, o).correct);
}

TEST_CASE("maths extraction: last box with real brace matching, then final answer is, then answer is") {
  CHECK(extract("first \\boxed{1} then \\boxed{\\frac{1}{2}}").text == "\\frac{1}{2}");
  CHECK(extract("\\boxed{\\{1, 2\\}}").text == "\\{1, 2\\}");  // escaped braces do not close the box
  CHECK(extract("\\fbox{7}").text == "7");
  CHECK(extract("\\boxed 5 is it").text == "5");
  // An unclosed (truncated) last box falls back to the previous complete one.
  CHECK(extract("so \\boxed{12}. wait: \\boxed{\\frac{1").text == "12");
  CHECK(extract("The final answer is $\\frac{3}{4}$. I hope it is correct.").text == "\\frac{3}{4}");
  CHECK(extract("The final answer is 3.5.").text == "3.5");
  CHECK(extract("the answer is **42**.\nMore text").text == "42");
  CHECK(extract("Thus, the answer is: 17").text == "17");
  CHECK(extract("Answer: C").text == "C");
  // Precedence: a box beats "final answer is", which beats a later "answer is".
  CHECK(extract("The final answer is 5. Also the answer is 6. \\boxed{7}").text == "7");
  CHECK(extract("The final answer is 5. Also the answer is 6.").text == "5");
  const Extracted none = extract("I give up.");
  CHECK_FALSE(none.found);
  CHECK_THAT(none.how, Catch::Matchers::Contains("no answer"));
}

TEST_CASE("reasoning models: only the text after </think> counts") {
  CHECK(extract("<think>maybe \\boxed{3}</think> so \\boxed{4}").text == "4");
  CHECK_FALSE(extract("<think>maybe \\boxed{3}</think> I am not sure.").found);
  const Extracted unclosed = extract("<think>maybe \\boxed{3} and then");
  CHECK_FALSE(unclosed.found);
  CHECK_THAT(unclosed.how, Catch::Matchers::Contains("<think>"));
  CHECK(extract("no tags \\boxed{3}").text == "3");
}

TEST_CASE("references: bare, GSM8K ####, boxed solution") {
  WorkBudget b(kBudget);
  CHECK(extract_reference("  42 ", RewardTask::kMath, b).text == "42");
  CHECK(extract_reference("She sold 48/2 = <<48/2=24>>24.\n#### 1,024", RewardTask::kMath, b).text == "1,024");
  CHECK(extract_reference("So the area is $\\boxed{\\frac{\\sqrt3}{2}}$.", RewardTask::kMath, b).text ==
        "\\frac{\\sqrt3}{2}");
  CHECK_FALSE(extract_reference("  ", RewardTask::kMath, b).found);
  CHECK(correct("so \\boxed{1024}", "Work.\n#### 1,024"));
  CHECK(correct("so \\boxed{\\dfrac{\\sqrt{3}}{2}}", "So the area is $\\boxed{\\frac{\\sqrt3}{2}}$."));
}

TEST_CASE("normalisation removes LaTeX noise") {
  CHECK(norm("\\left( 1, 2 \\right)") == "( 1, 2 )");
  CHECK(norm("$\\dfrac{1}{2}$") == "\\frac{1}{2}");
  CHECK(norm("\\tfrac34") == "\\frac34");
  CHECK(norm("10\\text{ cm}^2") == "10");
  CHECK(norm("10 \\text{cm}") == "10");
  CHECK(norm("\\text{(B)}") == "(b)");
  CHECK(norm("30^\\circ") == "30");
  CHECK(norm("30^{\\circ}") == "30");
  CHECK(norm("3\\,000") == "3000");
  CHECK(norm("1{,}234") == "1,234");
  CHECK(norm("\\$4.50") == "4.50");
  CHECK(norm("5.") == "5");
  CHECK(norm("50\\%") == "50%");
  CHECK(norm("50 percent") == "50%");
  CHECK(norm("30 apples") == "30");
  CHECK(norm("2 x") == "2 x");  // one-letter words are variables, not units
  CHECK(norm("{{5}}") == "5");
  CHECK(norm("\\!\\displaystyle\\frac{a}{b}") == "\\frac{a}{b}");
  CHECK(norm("X^2") == "x^2");
  CHECK(norm("\xE2\x88\x92"
             "3 \xC3\x97 2") == "-3 \\times 2");  // Unicode minus and times
}

TEST_CASE("numbers: integers, decimals, separators, signs, fractions, mixed numbers, percent, scientific") {
  CHECK(eq("1,234", "1234"));
  CHECK(eq("1,234,567.5", "1234567.5"));
  CHECK(eq("10 000", "10000"));
  CHECK(eq("0.5", "\\frac{1}{2}"));
  CHECK(eq(".5", "0.50"));
  CHECK(eq("-3", "- 3"));
  CHECK(eq("+5", "5"));
  CHECK(eq("-\\frac{1}{2}", "\\frac{-1}{2}"));
  CHECK(eq("\\frac12", "1/2"));
  CHECK(eq("\\frac{6}{8}", "\\tfrac{3}{4}"));
  CHECK(eq("2\\frac{1}{3}", "\\frac{7}{3}"));
  CHECK(eq("2 1/3", "7/3"));
  CHECK(eq("-1\\frac{1}{2}", "-1.5"));
  CHECK(eq("25\\%", "25"));
  CHECK(eq("25\\%", "0.25"));
  CHECK(eq("0.25", "25\\%"));
  CHECK_FALSE(eq("25\\%", "2.5"));
  CHECK(eq("1.5e3", "1500"));
  CHECK(eq("2.5E-3", "0.0025"));
  CHECK(eq("1.5\\times 10^{3}", "1500"));
  CHECK(eq("3 \\cdot 10^{-2}", "0.03"));
  CHECK(eq("\\$18", "18"));
  CHECK(eq("30^\\circ", "30"));
  CHECK_FALSE(eq("1,234", "(1, 234)"));
  CHECK_FALSE(eq("-3", "3"));
  CHECK_FALSE(eq("2\\frac{1}{2}", "1"));  // a mixed number, not 2 * 1/2
}

TEST_CASE("tolerance: relative 1e-4 for rounded values, exact between finite decimals") {
  CHECK(eq("0.333333", "\\frac{1}{3}"));
  CHECK(eq("0.33333", "1/3"));  // relative error 1e-5
  CHECK_FALSE(eq("0.33", "1/3"));
  CHECK(eq("1.41421", "\\sqrt{2}"));
  CHECK(eq("3.14159", "\\pi"));
  CHECK_FALSE(eq("3.14", "\\pi"));
  // Two exact finite values compare exactly: a 1e-4 tolerance would call these equal.
  CHECK_FALSE(eq("12345", "12346"));
  CHECK_FALSE(eq("1848.1", "1848"));
  CHECK(eq("1848.10", "1848.1"));
  CHECK(eq("\\frac{1}{3}", "\\frac{2}{6}"));
  // Beyond 64 bits: exact to 128 bits (checked arithmetic), integers written out digit by digit at
  // any length, and rationals past 128 bits within 1e-12 (1e-4 of 1e40 is 1e36).
  CHECK_FALSE(eq("18446744073709551615", "18446744073709551616"));
  CHECK(eq("18446744073709551616", "018446744073709551616"));
  CHECK(eq("2^{64}", "18446744073709551616"));
  CHECK_FALSE(eq("2^{64}", "18446744073709551615"));  // a double holds both as 2^64
  CHECK_FALSE(eq("2^{64}-1", "2^{64}"));
  CHECK(eq("2^{64}-1", "18446744073709551615"));
  CHECK_FALSE(eq("10^{19}", "10^{19}+1"));
  CHECK_FALSE(eq("123450000000000000000", "123460000000000000000"));
  CHECK_FALSE(eq("21!", "51090942171709460000"));  // 21! is 51090942171709440000
  CHECK(eq("21!", "51090942171709440000"));
  CHECK(eq("33!", "8683317618811886495518194401280000000"));
  CHECK_FALSE(eq("33!", "8683317618811886495518194401280000001"));
  CHECK(eq("\\binom{100}{50}", "100891344545564193334812497256"));
  // The same value by two routes that round differently in doubles.
  CHECK(eq("\\left(\\frac{1}{3}\\right)^{40}", "\\frac{1}{3^{40}}"));
  CHECK(eq("(1/3)^{41}", "1/3^{41}"));
  CHECK(eq("10^{20}\\cdot\\frac17", "\\frac{10^{20}}{7}"));
  CHECK(eq("\\frac{10^{19}\\cdot 7}{3}", "\\frac73\\cdot10^{19}"));
  CHECK_FALSE(eq("\\frac{10^{19}\\cdot 7}{3}", "\\frac{7\\cdot10^{19}+1}{3}"));
  CHECK(eq("\\sqrt{10^{36}}", "10^{18}"));
  CHECK(eq("\\sqrt[3]{3^{60}}", "3^{20}"));
  CHECK(eq("3^{81}", "3^{80}\\cdot 3"));  // past 128 bits: doubles within 1e-12
  CHECK(eq("35!", "35\\cdot 34!"));
  CHECK_FALSE(eq("3^{81}", "3^{81}\\cdot\\frac{1000001}{1000000}"));
  // A decimal against an exact rational whose denominator is past 64 bits (2^{70}).
  CHECK_FALSE(eq("0.5", "2^{-70}"));
  CHECK(eq("0.000000000000000000000000000001", "10^{-30}"));
  CHECK_FALSE(eq("0.000000000000000000000000000002", "10^{-30}"));
  ExprValue a, b;
  a.at.fill(1.0);
  b.at.fill(1.0 + 0.9e-4);
  CHECK(expr_values_equal(a, b));
  b.at.fill(1.0 + 1.1e-4);
  CHECK_FALSE(expr_values_equal(a, b));
}

TEST_CASE("expressions: roots, pi, powers, factorials, binomials, variables") {
  CHECK(eq("2\\sqrt{2}", "\\sqrt{8}"));
  CHECK(eq("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}"));
  CHECK(eq("\\sqrt[3]{27}", "3"));
  CHECK(eq("\\frac{\\pi}{2}", "\\pi/2"));
  CHECK(eq("2^{10}", "1024"));
  CHECK(eq("5!", "120"));
  CHECK(eq("\\binom{5}{2}", "10"));
  CHECK(eq("x^2+2x+1", "(x+1)^2"));
  CHECK(eq("2x+2", "2(x+1)"));
  CHECK(eq("\\pi r^2", "r^2\\pi"));
  CHECK(eq("\\frac{x}{2}", "0.5x"));
  CHECK(eq("X+1", "x+1"));  // letters compare case-insensitively, as in math-verify
  CHECK_FALSE(eq("x^2+1", "x^2-1"));
  CHECK_FALSE(eq("x+1", "y+1"));
  CHECK_FALSE(eq("\\sqrt{2}", "\\sqrt{3}"));
  CHECK_FALSE(eq("\\frac{1}{0}", "1"));  // division by zero has no value
}

TEST_CASE("tuples, intervals, sets, unions") {
  CHECK(eq("(1,2,3)", "(1, 2, 3)"));
  CHECK(eq("\\left(1, \\frac{1}{2}, 3\\right)", "(1,0.5,3)"));
  CHECK(eq("[1,2,3]", "(1,2,3)"));  // three or more elements: a tuple, brackets free
  CHECK_FALSE(eq("(3,2,1)", "(1,2,3)"));
  CHECK(eq("[1,2)", "[1, 2)"));
  CHECK_FALSE(eq("[1,2)", "(1,2)"));  // two elements: an interval, brackets matter
  CHECK(eq("(-\\infty, 3]", "(-\\infty,3]"));
  CHECK_FALSE(eq("(-\\infty, 3]", "(-\\infty,3)"));
  CHECK(eq("x \\in [2,5]", "[2,5]"));
  CHECK(eq("(-\\infty,1)\\cup(2,\\infty)", "(2,\\infty)\\cup(-\\infty,1)"));
  CHECK_FALSE(eq("(-\\infty,1)\\cup(2,\\infty)", "(-\\infty,1]\\cup(2,\\infty)"));
  CHECK(eq("\\{1,2,3\\}", "\\{3,2,1\\}"));
  CHECK(eq("1, 2, 3", "\\{3, 1, 2\\}"));
  CHECK_FALSE(eq("\\{1,2\\}", "\\{1,2,3\\}"));
  CHECK_FALSE(eq("\\{1,1\\}", "\\{1,2\\}"));
  CHECK(eq("\\{-1, \\frac{1}{2}\\}", "\\{0.5,-1\\}"));
  CHECK_FALSE(eq("(1,2,3)", "\\{1,2,3\\}"));  // a tuple is not a set
  CHECK(eq("\\emptyset", "\\{\\}"));
  // Inside brackets every comma separates ("0,100" and "1,500" are not thousands groups there).
  CHECK_FALSE(eq("[0,100]", "100"));
  CHECK_FALSE(eq("(1,500)", "1500"));
  CHECK_FALSE(eq("1500", "(1,500)"));
  CHECK(eq("\\{100, 2\\}", "\\{2,100\\}"));
  CHECK(eq("(0.5, 100)", "(\\frac12,100)"));
  CHECK(eq("(1, 250)", "(1,250.0)"));
  CHECK(eq("1,500", "1500"));         // a bare number keeps its groups
  CHECK_FALSE(eq("0,100", "100"));    // but a leading group never starts with 0
  CHECK(eq("1,047,076", "1047076"));  // later groups may
  // "\not\in" is not "\in".
  CHECK_FALSE(eq("x \\not\\in (1,2)", "(1,2)"));
  CHECK(eq("x \\in (1,2)", "(1,2)"));
}

TEST_CASE("equations, multiple choice, text") {
  CHECK(eq("x=5", "5"));
  CHECK(eq("5", "x=5"));
  CHECK(eq("y=3+2x", "y=2x+3"));
  CHECK_FALSE(eq("y=5", "x=5"));
  CHECK_FALSE(eq("5", "2x+1=11"));  // not an assignment: the reference is an equation
  CHECK(eq("a=1, b=2", "b=2,a=1"));
  CHECK(eq("B", "B"));
  CHECK(eq("(b)", "B"));
  CHECK(eq("\\text{(B)}", "(B)"));
  CHECK(eq("B) 42", "B"));
  CHECK_FALSE(eq("C", "B"));
  // A hedge names no single option.
  CHECK_FALSE(eq("B \\text{ or } D", "B"));
  CHECK_FALSE(eq("\\text{A and B}", "A"));
  CHECK_FALSE(eq("(A) or (B)", "A"));
  CHECK(eq("(A) ordered pairs", "A"));  // "or" only as a word
  // ASCII <=, >=, != are relations, not equations whose right side is the answer.
  CHECK_FALSE(eq("x >= 5", "5"));
  CHECK_FALSE(eq("x <= 5", "5"));
  CHECK_FALSE(eq("x != 5", "5"));
  CHECK(eq("x \\ge 5", "x >= 5"));
  CHECK(eq("a <= 3", "a \\le 3"));
  CHECK(eq("x \\neq 5", "x != 5"));
  CHECK(eq("5!=120", "120"));    // a factorial's equation: 5! = 120
  CHECK_FALSE(eq("x!=5", "5"));  // after a letter: x is not 5
  CHECK(eq("x!=5", "x \\ne 5"));
  // Separate numbers are not one ("1 2" is not 12).
  CHECK_FALSE(eq("1 \\quad 2", "12"));
  CHECK_FALSE(eq("1 2", "12"));
  CHECK(eq("10 000", "10000"));
  CHECK_FALSE(eq("42", "B"));
  CHECK(choice_reference("\\text{(C)}") == 'C');
  CHECK_FALSE(choice_reference("F").has_value());
  CHECK_FALSE(choice_reference("x").has_value());
  CHECK(eq("\\text{Monday}", "monday"));
  CHECK(eq("\\text{No solution}", "\\text{no solution}"));
  CHECK_FALSE(eq("\\text{even}", "\\text{odd}"));
  CHECK_FALSE(eq("", "5"));
}

TEST_CASE("integer_equal: exact, any length") {
  WorkBudget b(kBudget);
  CHECK(integer_equal("007", "7", b));
  CHECK(integer_equal("-0", "0", b));
  CHECK(integer_equal("123456789012345678901234567890", "+123456789012345678901234567890", b));
  CHECK_FALSE(integer_equal("123456789012345678901234567890", "123456789012345678901234567891", b));
  CHECK_FALSE(integer_equal("1.0", "1", b));
  CHECK_FALSE(integer_equal("", "", b));
}

TEST_CASE("length consistency: e = clamp(len/ref_len - (1 + slack), 0, 1), r = c - lambda_len e") {
  CHECK(length_excess(100, 100, 0.5) == 0.0);
  CHECK(length_excess(150, 100, 0.5) == 0.0);
  CHECK(length_excess(200, 100, 0.5) == Approx(0.5));
  CHECK(length_excess(250, 100, 0.5) == Approx(1.0));
  CHECK(length_excess(10000, 100, 0.5) == 1.0);
  CHECK(length_excess(200, 100, 0.0) == Approx(1.0));
  CHECK(length_excess(200, 0, 0.5) == 0.0);  // unknown ref_len: no length term
  CHECK(length_reward(true, 0.5, 0.25) == Approx(0.875));
  CHECK(length_reward(false, 1.0, 0.25) == Approx(-0.25));

  RewardOptions o;  // defaults: slack 0.5, lambda_len 0.25
  CHECK(o.slack == 0.5);
  CHECK(o.lambda_len == 0.25);
  const Reference ref = prepare_reference("42", o);
  RewardScore s = score_response("so \\boxed{42}", 200, "eos", ref, 100, o);
  CHECK(s.correct);
  CHECK(s.excess == Approx(0.5));
  CHECK(s.reward == Approx(1.0 - 0.25 * 0.5));
  CHECK(s.extracted == "42");
  CHECK_THAT(s.why, Catch::Matchers::Contains("correct"));
  CHECK(s.work > 0);
  // Truncated or repetition-stopped: wrong with e = 1, whatever the text says.
  for (const char* reason : {"length", "repetition"}) {
    s = score_response("so \\boxed{42}", 50, reason, ref, 100, o);
    CHECK_FALSE(s.correct);
    CHECK(s.excess == 1.0);
    CHECK(s.reward == Approx(-0.25));
    CHECK(s.extracted == "42");  // kept for metrics
  }
  s = score_response("no idea", 100, "stop", ref, 100, o);
  CHECK_FALSE(s.correct);
  CHECK(s.reward == 0.0);
  CHECK(s.extracted.empty());
}

TEST_CASE("reward options are checked, naming the field") {
  RewardOptions o;
  o.slack = -0.1;
  CHECK_THROWS_WITH(check_reward_options(o), Catch::Matchers::Contains("slack"));
  o = RewardOptions();
  o.lambda_len = std::nan("");
  CHECK_THROWS_WITH(check_reward_options(o), Catch::Matchers::Contains("lambda_len"));
  o = RewardOptions();
  o.work_budget = 0;
  CHECK_THROWS_AS(check_reward_options(o), UserError);
  CHECK(parse_reward_task("toy", "--task") == RewardTask::kToy);
  CHECK_THROWS_WITH(parse_reward_task("maths", "--task"), Catch::Matchers::Contains("--task"));
}
