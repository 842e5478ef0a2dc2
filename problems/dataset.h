// Problem datasets: JSONL, one problem per line {"id", "prompt", "answer"} (docs/design.md section 7),
// plus "ref_len" (a number of tokens, 0..1e9) and "pass_rate" (in [0, 1]) after `rlkv prepare`. A
// bad line is a UserError naming the file and the line number.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

struct Problem {
  std::string id;
  std::string prompt;
  std::string answer;
  double ref_len = 0;     // tokens of the full-cache model's correct answers (0 = unknown)
  double pass_rate = -1;  // full-cache pass rate (-1 = unknown)
  std::string where;      // "FILE:LINE" it was read from ("" when built in code), for messages
};

struct DatasetFields {
  std::string id = "id", prompt = "prompt", answer = "answer";
  std::string solution;  // used as the answer when the answer field is absent (MATH: a boxed solution)
};

std::vector<Problem> load_problems(const std::string& path, const DatasetFields& fields = {});

// The same, but a bad line is skipped and described in `errors` ("FILE:LINE: reason"); the JSON text
// of each returned problem's line is kept in `raw`. ref_len and pass_rate are not read (this is the
// input of `rlkv prepare`, which measures them).
struct LoadedProblems {
  std::vector<Problem> problems;
  std::vector<std::string> raw;  // the line's JSON text
  std::vector<std::string> errors;
};
LoadedProblems load_problems_lenient(const std::string& path, const DatasetFields& fields = {});

// Why a prompt of `tokens` tokens cannot be generated from by a model of `max_positions` positions
// (<= 0: unbounded): "" when it can (an empty prompt cannot either).
std::string prompt_length_problem(size_t tokens, int64_t max_positions);

// The same as a UserError naming the problem ("FILE:LINE: ...", else "problem ID: ...").
void check_prompt_length(const Problem& p, size_t tokens, int64_t max_positions);

// `tpl` (a model.prompt_template, which contains {prompt}) with its first {prompt} replaced by `prompt`.
std::string apply_prompt_template(const std::string& tpl, const std::string& prompt);

}  // namespace rlkv
