// Problem datasets: JSONL, one problem per line {"id", "prompt", "answer"} (DESIGN.md section 7),
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
  double ref_len = 0;    // tokens of the full-cache model's correct answers (0 = unknown)
  double pass_rate = -1; // full-cache pass rate (-1 = unknown)
};

struct DatasetFields {
  std::string id = "id", prompt = "prompt", answer = "answer";
};

std::vector<Problem> load_problems(const std::string& path, const DatasetFields& fields = {});

}  // namespace rlkv
