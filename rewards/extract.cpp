#include "rewards/extract.h"

#include "core/error.h"
#include "rewards/text_scan.h"

namespace rlkv {

using namespace text_scan;
constexpr size_t npos = std::string_view::npos;

RewardTask parse_reward_task(const std::string& name, const std::string& what) {
  if (name == "math") return RewardTask::kMath;
  if (name == "toy") return RewardTask::kToy;
  throw UserError(str_cat(what, ": expected toy or math, got '", name, "'"));
}

RewardTask resolve_reward_task(const std::string& requested, const std::string& declared, const std::string& what) {
  if (!requested.empty() && requested != "auto") return parse_reward_task(requested, what);
  if (!declared.empty()) return parse_reward_task(declared, "the model directory's rlkv_task");
  return RewardTask::kMath;
}

const char* reward_task_name(RewardTask t) { return t == RewardTask::kToy ? "toy" : "math"; }

std::string_view after_thinking(std::string_view r, WorkBudget& budget, bool* unclosed) {
  *unclosed = false;
  bool open_seen = false;
  // One backward pass looking for both tags: the last `</think>` wins.
  for (size_t p = r.size(); p > 0;) {
    --p;
    budget.charge();
    if (r[p] != '<') continue;
    if (match_at(r, p, "</think>")) return r.substr(p + 8);
    if (match_at(r, p, "<think>")) open_seen = true;
  }
  if (open_seen) {
    *unclosed = true;
    return {};
  }
  return r;
}

std::optional<std::string_view> last_boxed(std::string_view t, WorkBudget& budget) {
  size_t end = t.size();  // the next search looks at starting positions before this
  for (;;) {
    size_t pos = npos, name_len = 0;
    for (size_t p = end; p > 0;) {
      --p;
      budget.charge();
      if (t[p] != '\\') continue;
      if (match_at(t, p, "\\boxed")) {
        pos = p, name_len = 6;
        break;
      }
      if (match_at(t, p, "\\fbox")) {
        pos = p, name_len = 5;
        break;
      }
    }
    if (pos == npos) return std::nullopt;
    end = pos;
    size_t i = pos + name_len;
    if (i < t.size() && is_alpha(t[i])) continue;  // \boxedsomething: another command
    while (i < t.size() && is_space(t[i])) {
      budget.charge();
      ++i;
    }
    if (i >= t.size()) continue;
    if (t[i] == '{') {
      int64_t depth = 0;
      size_t j = i;
      for (; j < t.size(); ++j) {
        budget.charge();
        const char c = t[j];
        if (c == '\\') {  // an escaped character (\{ \} \\) never opens or closes a group
          ++j;
          continue;
        }
        if (c == '{') {
          ++depth;
        } else if (c == '}' && --depth == 0) {
          break;
        }
      }
      if (j < t.size()) return t.substr(i + 1, j - i - 1);
      continue;  // unclosed (truncated): fall back to an earlier complete box
    }
    // TeX's one-token argument, `\boxed 5`: up to white space or a math delimiter.
    size_t j = i;
    while (j < t.size() && !is_space(t[j]) && t[j] != '$') {
      budget.charge();
      ++j;
    }
    if (j > i) return t.substr(i, j - i);
  }
}

namespace {

// Drops markdown emphasis and surrounding white space: "**42**" -> "42".
std::string_view strip_emphasis(std::string_view s, WorkBudget& budget) {
  s = trim(s, budget);
  while (!s.empty() && (s.front() == '*' || s.front() == '_')) {
    budget.charge();
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == '*' || s.back() == '_')) {
    budget.charge();
    s.remove_suffix(1);
  }
  return trim(s, budget);
}

// The answer that follows a phrase at `at` (its end): a math span that starts there, else the rest of
// the line up to the end of the sentence.
std::string_view answer_after(std::string_view t, size_t at, WorkBudget& budget) {
  std::string_view rest = t.substr(at);
  size_t i = 0;
  while (i < rest.size() && (is_space(rest[i]) || rest[i] == ':' || rest[i] == '*')) {
    budget.charge();
    ++i;
  }
  rest = rest.substr(i);
  struct Delim {
    std::string_view open, close;
  };
  for (const Delim d : {Delim{"$$", "$$"}, Delim{"$", "$"}, Delim{"\\(", "\\)"}, Delim{"\\[", "\\]"}}) {
    if (!match_at(rest, 0, d.open)) continue;
    for (size_t j = d.open.size(); j + d.close.size() <= rest.size(); ++j) {
      budget.charge();
      if (rest[j] == '\\' && d.close[0] == '$') {  // \$ inside $...$ is a dollar sign
        ++j;
        continue;
      }
      if (match_at(rest, j, d.close)) return trim(rest.substr(d.open.size(), j - d.open.size()), budget);
    }
    break;  // unclosed: treat as plain text below
  }
  size_t e = 0;
  for (; e < rest.size(); ++e) {
    budget.charge();
    const char c = rest[e];
    if (c == '\n') break;
    // End of sentence: a period followed by white space or the end (3.5 keeps its point).
    if (c == '.' && (e + 1 == rest.size() || is_space(rest[e + 1]))) break;
  }
  return strip_emphasis(rest.substr(0, e), budget);
}

Extracted after_phrase(std::string_view t, std::string_view phrase, WorkBudget& budget) {
  Extracted x;
  const size_t p = rfind(t, phrase, budget, npos, /*ci=*/true);
  if (p == npos) return x;
  const std::string_view a = answer_after(t, p + phrase.size(), budget);
  if (a.empty()) return x;
  x.found = true;
  x.text = std::string(a);
  x.how = std::string(phrase);
  return x;
}

Extracted toy_after_last_a(std::string_view t, WorkBudget& budget) {
  Extracted x;
  // The last "A:" that starts a word ("DATA: 7" holds none).
  size_t p = rfind(t, "A:", budget);
  while (p != npos && p > 0 && (is_alpha(t[p - 1]) || is_digit(t[p - 1]))) p = rfind(t, "A:", budget, p);
  if (p == npos) {
    x.how = "no 'A:' in the response";
    return x;
  }
  size_t i = p + 2;
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t')) {
    budget.charge();
    ++i;
  }
  const size_t start = i;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
  const size_t digits = i;
  while (i < t.size() && is_digit(t[i])) {
    budget.charge();
    ++i;
  }
  if (i == digits) {
    x.how = "no integer after the last 'A:'";
    return x;
  }
  // The whole answer is the integer: it ends the text or a word ("A: 5.5" and "A: 12abc" are not 5
  // and 12); sentence punctuation may follow, but not a decimal point or a comma before digits.
  if (i < t.size()) {
    const char c = t[i];
    const bool more_digits = i + 1 < t.size() && is_digit(t[i + 1]);
    const bool ends = is_space(c) || ((c == '.' || c == ',') && !more_digits) || c == ';' || c == '!' || c == '?' ||
                      c == ')' || c == '$';
    if (!ends) {
      x.how = "the last 'A:' is followed by more than an integer";
      return x;
    }
  }
  x.found = true;
  x.text = std::string(t.substr(start, i - start));
  x.how = "A:";
  return x;
}

}  // namespace

Extracted extract_answer(std::string_view response, RewardTask task, WorkBudget& budget) {
  bool unclosed = false;
  const std::string_view t = after_thinking(response, budget, &unclosed);
  if (unclosed) {
    Extracted x;
    x.how = "<think> never closed: no answer";
    return x;
  }
  if (task == RewardTask::kToy) return toy_after_last_a(t, budget);
  if (auto b = last_boxed(t, budget)) {
    Extracted x;
    x.found = true;
    x.text = std::string(trim(*b, budget));
    x.how = "boxed";
    return x;
  }
  for (std::string_view phrase : {"final answer is", "answer is", "answer:"}) {
    Extracted x = after_phrase(t, phrase, budget);
    if (x.found) return x;
  }
  Extracted none;
  none.how = "no answer found (no \\boxed{}, 'final answer is', 'answer is' or 'answer:')";
  return none;
}

Extracted extract_reference(std::string_view reference, RewardTask task, WorkBudget& budget) {
  Extracted x;
  if (task == RewardTask::kToy && rfind(reference, "A:", budget) != npos) return toy_after_last_a(reference, budget);
  const size_t h = rfind(reference, "####", budget);
  if (h != npos) {
    std::string_view rest = reference.substr(h + 4);
    size_t e = 0;
    while (e < rest.size() && rest[e] != '\n') {
      budget.charge();
      ++e;
    }
    x.text = std::string(trim(rest.substr(0, e), budget));
    x.how = "####";
    x.found = !x.text.empty();
    if (!x.found) x.how = "empty answer after '####'";
    return x;
  }
  if (task == RewardTask::kMath) {
    if (auto b = last_boxed(reference, budget)) {
      x.text = std::string(trim(*b, budget));
      x.found = !x.text.empty();
      x.how = x.found ? "boxed" : "empty \\boxed{} in the reference";
      return x;
    }
  }
  x.text = std::string(trim(reference, budget));
  x.found = !x.text.empty();
  x.how = x.found ? "bare" : "empty reference";
  return x;
}

}  // namespace rlkv
