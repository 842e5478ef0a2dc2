// Answer extraction: which part of a model's response (or of a dataset's reference) is the answer.
// docs/design.md section 4.
//
// Responses:
//  - Reasoning models: when the response holds `</think>`, only the text after the LAST `</think>`
//    is searched (a box inside the chain of thought is a draft, not an answer). A `<think>` without
//    any `</think>` means the model never finished thinking: no answer.
//  - Toy task: the integer (optional sign, digits) right after the last `A:` (spaces allowed), e.g.
//    `23+45=68;68+12=80;A:80` -> "80".
//  - Maths, in this order of precedence:
//      1. the content of the last `\boxed{...}` or `\fbox{...}`, braces matched for real (escaped
//         `\{` `\}` do not count; an unclosed box, as in a truncated response, is skipped in favour of
//         an earlier complete one); `\boxed 5` (TeX's one-token argument) is accepted too;
//      2. what follows the last "final answer is" (case-insensitive), up to the end of the line or
//         the sentence, or the content of the `$...$` / `\(...\)` / `\[...\]` that starts there;
//      3. the same after the last "answer is";
//      4. the same after the last "answer:" ("Answer: C", the multiple-choice prompt convention).
//    Nothing else (no "last number in the text" fallback: an answer must be marked).
//
// References: a GSM8K answer (`... #### 42`: the rest of the line after the last `####`), a solution
// with a box (the last box, as above), or else the whole trimmed text as a bare value. Toy references
// may also be written `A:80`.
//
// Cost: linear in the input, charged to the WorkBudget (about one step per byte scanned); throws
// BudgetExhausted when it runs out, nothing else. Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rewards/work_budget.h"

namespace rlkv {

enum class RewardTask { kMath, kToy };

// "math" / "toy"; throws UserError naming `what` on anything else.
RewardTask parse_reward_task(const std::string& name, const std::string& what);
// The task a command checks answers with: `requested` (toy | math) when given, else (empty or "auto")
// the one the model directory declares (`declared`, config.json's rlkv_task), else math.
// `what` names the setting in errors (--task, config key reward.task).
RewardTask resolve_reward_task(const std::string& requested, const std::string& declared, const std::string& what);
const char* reward_task_name(RewardTask t);

struct Extracted {
  bool found = false;
  std::string text;  // the raw answer text (not normalised) when found
  std::string how;   // "boxed", "final answer is", "answer is", "A:", "####", "bare"; or why nothing was found
};

// The part of `response` after the last `</think>`; the whole response when there is none. Sets
// *unclosed when there is a `<think>` but no `</think>` (the returned view is then empty).
std::string_view after_thinking(std::string_view response, WorkBudget& budget, bool* unclosed);

// Content of the last complete `\boxed{...}` / `\fbox{...}` in `text`, if any.
std::optional<std::string_view> last_boxed(std::string_view text, WorkBudget& budget);

Extracted extract_answer(std::string_view response, RewardTask task, WorkBudget& budget);
Extracted extract_reference(std::string_view reference, RewardTask task, WorkBudget& budget);

}  // namespace rlkv
