#include "problems/dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"

namespace rlkv {

namespace {

// Parses one line; throws UserError naming FILE:LINE.
// `measurements`: read ref_len / pass_rate (refusing bad values); else they are ignored (the input of
// `rlkv prepare`, which measures them again).
Problem parse_problem(const std::string& line, const std::string& path, int64_t lineno, const DatasetFields& f,
                      bool measurements) {
  auto text_of = [&](const nlohmann::json& j, const std::string& key, bool required) -> std::string {
    if (!j.contains(key) || j.at(key).is_null()) {
      RLKV_CHECK(!required, path, ":", lineno, ": missing field '", key, "'");
      return "";
    }
    const auto& v = j.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());  // past 2^63: not wrapped negative
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number()) return v.dump();
    throw UserError(str_cat(path, ":", lineno, ": field '", key, "' must be a string or a number"));
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(str_cat(path, ":", lineno, ": not valid JSON (at byte ", e.byte, ")"));
  } catch (const nlohmann::json::exception&) {
    throw UserError(str_cat(path, ":", lineno, ": not valid JSON (a number out of range)"));
  }
  RLKV_CHECK(j.is_object(), path, ":", lineno, ": not a JSON object");
  Problem p;
  p.id = text_of(j, f.id, false);
  if (p.id.empty()) p.id = std::to_string(lineno);
  p.prompt = text_of(j, f.prompt, true);
  const bool has_answer = j.contains(f.answer) && !j.at(f.answer).is_null();
  p.answer = has_answer || f.solution.empty() ? text_of(j, f.answer, true) : text_of(j, f.solution, true);
  // What `rlkv prepare` adds: the length reward's reference and the full-cache pass rate. A wrong
  // value would silently reshape every reward of the problem, so it is refused like a missing field.
  auto number_of = [&](const char* key, double lo, double hi, const char* what) -> double {
    const auto& v = j.at(key);
    const bool ok = v.is_number() && v.get<double>() >= lo && v.get<double>() <= hi;
    RLKV_CHECK(ok, path, ":", lineno, ": field '", key, "' must be ", what, ", got ", v.dump());
    return v.get<double>();
  };
  if (measurements && j.contains("ref_len") && !j.at("ref_len").is_null())
    p.ref_len = number_of("ref_len", 0, 1e9, "a number of tokens in 0..1e9 (0: unknown)");
  if (measurements && j.contains("pass_rate") && !j.at("pass_rate").is_null())
    p.pass_rate = number_of("pass_rate", 0, 1, "a fraction in [0, 1]");
  p.where = str_cat(path, ":", lineno);
  return p;
}

}  // namespace

std::string prompt_length_problem(size_t tokens, int64_t max_positions) {
  if (tokens == 0) return "the prompt encodes to no tokens";
  if (max_positions > 0 && int64_t(tokens) > max_positions)
    return str_cat("prompt of ", tokens, " tokens, longer than the model's max_position_embeddings (", max_positions,
                   ")");
  return "";
}

void check_prompt_length(const Problem& p, size_t tokens, int64_t max_positions) {
  const std::string why = prompt_length_problem(tokens, max_positions);
  RLKV_CHECK(why.empty(), p.where.empty() ? "problem " + p.id : p.where, ": ", why);
}

std::vector<Problem> load_problems(const std::string& path, const DatasetFields& f) {
  check_input_file(path, "a JSONL file");
  std::ifstream in(path, std::ios::binary);
  RLKV_CHECK(in.good(), path, ": cannot open");
  std::vector<Problem> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_problem(line, path, lineno, f, true));
  }
  RLKV_CHECK(!out.empty(), path, ": no problems");
  return out;
}

LoadedProblems load_problems_lenient(const std::string& path, const DatasetFields& f) {
  check_input_file(path, "a JSONL file");
  std::ifstream in(path, std::ios::binary);
  RLKV_CHECK(in.good(), path, ": cannot open");
  LoadedProblems out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.problems.push_back(parse_problem(line, path, lineno, f, false));
      out.raw.push_back(line);
    } catch (const UserError& e) {
      out.errors.push_back(e.what());
    }
  }
  return out;
}

std::string apply_prompt_template(const std::string& tpl, const std::string& prompt) {
  std::string text = tpl;
  const size_t at = text.find("{prompt}");
  RLKV_ASSERT(at != std::string::npos, "prompt template without {prompt}");
  return text.replace(at, 8, prompt);
}

}  // namespace rlkv
