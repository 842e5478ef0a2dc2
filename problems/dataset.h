// Problem datasets: JSONL, one problem per line {"id", "prompt", "answer"} (docs/design.md section 7),
// plus "ref_len" and "pass_rate" after `rlkv prepare`. A bad line is a UserError naming the file
// and the line number.
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
};

struct DatasetFields {
  std::string id = "id", prompt = "prompt", answer = "answer";
  std::string solution;  // used as the answer when the answer field is absent (MATH: a boxed solution)
};

std::vector<Problem> load_problems(const std::string& path, const DatasetFields& fields = {});

// The same, but a bad line is skipped and described in `errors` ("FILE:LINE: reason"); the JSON text
// of each returned problem's line is kept in `raw`.
struct LoadedProblems {
  std::vector<Problem> problems;
  std::vector<std::string> raw;  // the line's JSON text
  std::vector<std::string> errors;
};
LoadedProblems load_problems_lenient(const std::string& path, const DatasetFields& fields = {});

// `tpl` (a model.prompt_template, which contains {prompt}) with its first {prompt} replaced by `prompt`.
std::string apply_prompt_template(const std::string& tpl, const std::string& prompt);

}  // namespace rlkv
