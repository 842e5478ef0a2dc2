// Hostile input for the reward code: 1 MB strings, 10,000 nested braces, invalid UTF-8, NUL
// bytes, pathological lists. Scoring must never crash or throw, and every call must stay within its
// WORK budget: asserted on the work counter (RewardScore::work, Reference::work), never on time, so
// these tests are deterministic on any machine. tests/fuzz/fuzz_rewards.cpp covers the same code
// under libFuzzer with sanitizers.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "rewards/extract.h"
#include "rewards/math_equal.h"
#include "rewards/reward.h"

using namespace rlkv;

namespace {

constexpr size_t kMB = size_t(1) << 20;

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng() & 0xFF);
  return s;
}

// Random text over an alphabet of the characters the parsers care about.
std::string random_latex(size_t n, uint32_t seed) {
  static const std::string alphabet = "{}()[]\\$^_.,=%!0123456789+-*/ xabe";
  static const char* words[] = {"\\boxed{",   "\\frac",   "\\sqrt", "\\text{", "\\left", "\\right",
                                "answer is ", "</think>", "\\{",    "\\}",     "\\cup",  "\\in ",
                                "\\pi",       "\\infty",  "A:",     "#### "};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) {
    if (rng() % 4 == 0)
      s += words[rng() % (sizeof(words) / sizeof(words[0]))];
    else
      s += alphabet[rng() % alphabet.size()];
  }
  return s;
}

struct Outcome {
  RewardScore score;
  Reference ref;
};

// Scores `response` against `answer` for both tasks; checks the promises every call keeps.
Outcome score_both(const std::string& response, const std::string& answer,
                   int64_t budget = RewardOptions().work_budget) {
  Outcome out;
  for (RewardTask task : {RewardTask::kToy, RewardTask::kMath}) {
    RewardOptions o;
    o.task = task;
    o.work_budget = budget;
    REQUIRE_NOTHROW(out.ref = prepare_reference(answer, o));
    REQUIRE_NOTHROW(out.score = score_response(response, 1000, "eos", out.ref, 100, o));
    CHECK(out.ref.work <= budget);
    CHECK(out.score.work <= budget);
    CHECK(out.score.work >= 0);
    CHECK((out.score.reward >= -o.lambda_len && out.score.reward <= 1.0));
    if (out.score.budget_hit) CHECK_FALSE(out.score.correct);
  }
  return out;  // the maths outcome (last)
}

}  // namespace

TEST_CASE("1 MB responses: random bytes, random LaTeX, long text before a short answer") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    score_both(random_bytes(kMB, seed), "42");
    score_both(random_latex(kMB, seed), "\\frac{1}{2}");
    score_both("\\boxed{" + random_latex(kMB, seed) + "}", random_latex(1000, seed + 10));
  }
  // Linear paths stay well inside the budget and still find the answer: about one step per byte for
  // the </think> scan, then the box is found at the end.
  const std::string text = repeat("The sum is 12 and then 7. ", kMB / 26) + "So \\boxed{42}.";
  Outcome o = score_both(text, "42");
  CHECK(o.score.correct);
  CHECK_FALSE(o.score.budget_hit);
  CHECK(o.score.work <= int64_t(2 * text.size()));
  // 1 MB answers: a 1 MB box of digits, a 1 MB reference.
  const std::string digits = repeat("1234567890", kMB / 10);
  o = score_both("\\boxed{" + digits + "}", digits);
  CHECK(o.score.work <= RewardOptions().work_budget);
  o = score_both(repeat("answer is ", kMB / 10), repeat("#### ", kMB / 5));
  CHECK_FALSE(o.score.correct);
}

TEST_CASE("10,000 nested braces, brackets and fractions: no stack overflow, bounded work") {
  const size_t n = 10000;
  // Redundant braces are stripped in one pass: still correct, and cheap.
  Outcome o = score_both("\\boxed{" + std::string(n, '{') + "42" + std::string(n, '}') + "}", "42");
  CHECK(o.score.correct);
  CHECK(o.score.work <= int64_t(40 * n));
  // Deep parentheses exceed the parser's depth limit: undecidable, so not equal, never a crash.
  o = score_both("\\boxed{" + std::string(n, '(') + "42" + std::string(n, ')') + "}", "42");
  CHECK_FALSE(o.score.correct);
  score_both("\\boxed{" + repeat("\\frac{1}{", n) + "2" + std::string(n, '}') + "}", "\\frac{1}{2}");
  score_both("\\boxed{" + repeat("\\sqrt{", n) + "4" + std::string(n, '}') + "}", "2");
  score_both("\\boxed{" + repeat("\\text{", n) + "5" + std::string(n, '}') + "}", "5");
  score_both("\\boxed{" + repeat("\\{", n) + "1" + repeat("\\}", n) + "}", "\\{1\\}");
  score_both("\\boxed{" + repeat("-", n) + "5}", "5");
  score_both("\\boxed{2" + repeat("^{2", n) + std::string(n, '}') + "}", "4");
  // Unbalanced: 10,000 opening braces and no closing one.
  score_both("\\boxed{" + std::string(n, '{') + "42", std::string(n, '{'));
  score_both(std::string(n, '}') + "\\boxed{42}", std::string(n, ')') + "42");
}

TEST_CASE("quadratic traps hit the budget instead of running away") {
  // 10,000 unclosed boxes: each candidate scans to the end (quadratic without a budget).
  const std::string boxes = repeat("\\boxed{", 10000);
  Outcome o = score_both(boxes, "1");
  CHECK(o.score.budget_hit);
  CHECK(o.score.work <= RewardOptions().work_budget);
  // A 100,000-element set against another: greedy matching is quadratic.
  const std::string a = "\\{" + repeat("1,", 100000) + "2\\}", b = "\\{" + repeat("1,", 100000) + "3\\}";
  o = score_both("\\boxed{" + a + "}", b);
  CHECK_FALSE(o.score.correct);
  // A tiny budget: the item scores as wrong and says so.
  RewardOptions tiny;
  tiny.work_budget = 50;
  const Reference ref = prepare_reference("42", tiny);
  const RewardScore s = score_response(repeat("text ", 200) + "\\boxed{42}", 1000, "eos", ref, 100, tiny);
  CHECK(s.budget_hit);
  CHECK_FALSE(s.correct);
  CHECK(s.work <= 50);
  CHECK_THAT(s.why, Catch::Matchers::Contains("budget"));
}

TEST_CASE("invalid UTF-8 and NUL bytes are ordinary bytes") {
  score_both("\\boxed{\xff\xfe\xc3}", "\xff\xfe\xc3");
  score_both("\\boxed{42\xE2\x88}", "42");  // a truncated multi-byte sequence at the end
  score_both("\xE2\x88\x92", "\xE2");
  Outcome o = score_both(
      "\\boxed{\xE2\x88\x92"
      "3}",
      "-3");  // Unicode minus
  CHECK(o.score.correct);
  const std::string with_nul(
      "\\boxed{4\0"
      "2}",
      11);
  o = score_both(with_nul, "42");
  CHECK_FALSE(o.score.correct);
  o = score_both(with_nul, std::string("4\0"
                                       "2",
                                       3));
  CHECK(o.score.correct);  // the same bytes
  score_both(std::string(kMB, '\0'), std::string(1000, '\0'));
  o = score_both(std::string("A:\0"
                             "7",
                             4),
                 "7");
  CHECK_FALSE(o.score.correct);
}

TEST_CASE("numeric extremes have no value rather than a wrong one") {
  CHECK_FALSE(score_both("\\boxed{10^{10^{10}}}", "10^{10^{11}}").score.correct);
  CHECK_FALSE(score_both("\\boxed{9999999999999999999!}", "1").score.correct);
  CHECK_FALSE(score_both("\\boxed{\\binom{100000}{50000}}", "1").score.correct);
  CHECK_FALSE(score_both("\\boxed{\\sqrt{-1}}", "\\sqrt{-1} + 1").score.correct);
  CHECK(score_both("\\boxed{" + std::string(400, '9') + "}", std::string(400, '9')).score.correct);
  CHECK_FALSE(score_both("\\boxed{1e99999}", "1e99998").score.correct);
  CHECK_FALSE(score_both("\\boxed{1e9999}", "0").score.correct);  // out of range: no value, not 0
  CHECK_FALSE(score_both("\\boxed{1e-9999}", "0").score.correct);
  score_both("\\boxed{0^{-1}}", "0");
  score_both("\\boxed{" + repeat("9", 30) + "/" + repeat("7", 30) + "}", "1.2857");
}

TEST_CASE("work is deterministic: the same input costs the same steps") {
  const std::string text = random_latex(200000, 7);
  RewardOptions o;
  const Reference ref = prepare_reference("\\frac{1}{2}", o);
  const RewardScore a = score_response(text, 10, "eos", ref, 10, o);
  const RewardScore b = score_response(text, 10, "eos", ref, 10, o);
  CHECK(a.work == b.work);
  CHECK(a.correct == b.correct);
  CHECK(a.extracted == b.extracted);
}
