// `rlkv score`: batch scoring of rollouts (docs/design.md sections 4 and 8).
//
// Input: JSONL, one rollout a line: {"id", "response", "answer", "length", "ref_len", "finish_reason"}
// (other fields are kept). Output: the same lines, fields and order kept, with "correct", "excess",
// "reward" and "extracted" added (rewards/reward.h). A bad line (not JSON, a missing or ill-typed
// field) is reported on stderr as FILE:LINE and skipped; with --strict the first one fails the command
// (exit 2, one line naming the file and line); a file of bad lines only fails too (exit 2). Blank
// lines are ignored. The output is written durably (core/durable_file.h): it is never seen
// half-written, and a failed run leaves it untouched.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/finish_reason.h"
#include "launch/cli.h"
#include "rewards/reward.h"

namespace po = boost::program_options;
using Json = nlohmann::ordered_json;  // keeps the input's field order

namespace rlkv {
namespace {

constexpr int kMaxReportedBadLines = 20;

struct Rollout {
  std::string response, answer, finish_reason;
  int64_t length = 0;
  double ref_len = 0;
};

// What a line with a bad finish_reason is told: the list of valid names, quoted.
std::string finish_reason_problem() {
  std::string names;
  for (const FinishReason r : kFinishReasons) {
    if (!names.empty()) names += ", ";
    names += str_cat('"', finish_reason_name(r), '"');
  }
  return "field 'finish_reason' must be one of " + names;
}

// A record's extra fields travel into the output; the JSON library writes nesting recursively, so a line
// nested thousands deep would overflow the stack there: such a line is a bad line.
constexpr int kMaxNesting = 64;
struct TooDeep {};
bool nest_guard(int depth, Json::parse_event_t /*event*/, Json& /*parsed*/) {
  if (depth > kMaxNesting) throw TooDeep{};
  return true;
}

// Checks the fields of one parsed line; returns "" when fine, else what is wrong.
std::string read_rollout(const Json& j, Rollout* r) {
  if (!j.is_object()) return "expected a JSON object";
  for (const char* key : {"id", "response", "answer", "length", "ref_len", "finish_reason"})
    if (!j.contains(key)) return str_cat("missing field '", key, "'");
  const Json& id = j["id"];
  if (!(id.is_string() || id.is_number_integer())) return "field 'id' must be a string or an integer";
  if (!j["response"].is_string()) return "field 'response' must be a string";
  const Json& answer = j["answer"];
  if (answer.is_string())
    r->answer = answer.get<std::string>();
  else if (answer.is_number())
    r->answer = answer.dump();
  else
    return "field 'answer' must be a string or a number";
  const Json& length = j["length"];
  if (!length.is_number_integer() || (!length.is_number_unsigned() && length.get<int64_t>() < 0))
    return "field 'length' must be an integer >= 0 (tokens)";
  const Json& ref_len = j["ref_len"];
  if (!ref_len.is_number() || !(ref_len.get<double>() >= 0) || !std::isfinite(ref_len.get<double>()))
    return "field 'ref_len' must be a number >= 0 (tokens; 0 = unknown)";
  if (!j["finish_reason"].is_string() || !is_valid_finish_reason(j["finish_reason"].get<std::string>()))
    return finish_reason_problem();
  r->response = j["response"].get<std::string>();
  r->length = length.is_number_unsigned() ? int64_t(std::min<uint64_t>(length.get<uint64_t>(), uint64_t(INT64_MAX)))
                                          : length.get<int64_t>();
  r->ref_len = ref_len.get<double>();
  r->finish_reason = j["finish_reason"].get<std::string>();
  return "";
}

}  // namespace

int cmd_score(int argc, char** argv) {
  po::options_description desc("rlkv score options");
  desc.add_options()("help,h", "show this help")(
      "input", po::value<std::string>(), "rollouts, JSONL: {id, response, answer, length, ref_len, finish_reason}")(
      "output", po::value<std::string>(), "scored JSONL: each line with correct, excess, reward, extracted added")(
      "task", po::value<std::string>()->default_value("math"), "toy (integer after the last A:) | math")(
      "strict", "fail (exit 2) on the first bad line instead of skipping it")(
      "slack", po::value<double>()->default_value(kDefaultSlack), "free length beyond ref_len, as a fraction of it")(
      "lambda-len", po::value<double>()->default_value(kDefaultLambdaLen), "weight of the excess-length penalty")(
      "work-budget", po::value<int64_t>()->default_value(RewardOptions().work_budget),
      "work steps allowed per response (rewards/work_budget.h)");
  const ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv score --input ROLLOUTS.jsonl --output SCORED.jsonl [--task toy|math] [--strict]"
                 " [--slack X] [--lambda-len X]\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(args.overrides.empty(), "rlkv score reads no config: unexpected option --", args.overrides.front());
  RLKV_CHECK(vm.count("input"), "no input: give --input ROLLOUTS.jsonl");
  RLKV_CHECK(vm.count("output"), "no output: give --output SCORED.jsonl");
  const std::string input = vm["input"].as<std::string>(), output = vm["output"].as<std::string>();
  RewardOptions opts;
  opts.task = parse_reward_task(vm["task"].as<std::string>(), "--task");
  opts.slack = vm["slack"].as<double>();
  opts.lambda_len = vm["lambda-len"].as<double>();
  opts.work_budget = vm["work-budget"].as<int64_t>();
  RLKV_CHECK(std::isfinite(opts.slack) && opts.slack >= 0, "--slack must be a number >= 0, got ", opts.slack);
  RLKV_CHECK(std::isfinite(opts.lambda_len) && opts.lambda_len >= 0, "--lambda-len must be a number >= 0, got ",
             opts.lambda_len);
  RLKV_CHECK(opts.work_budget > 0, "--work-budget must be > 0, got ", opts.work_budget);
  check_reward_options(opts);
  const bool strict = vm.count("strict") != 0;

  check_input_file(input, "a JSONL file");
  std::ifstream in(input, std::ios::binary);
  RLKV_CHECK(in, input, ": cannot open for reading");
  check_output_file(output, "--output", {input});
  DurableFileWriter out(output);

  int64_t line_no = 0, scored = 0, bad = 0, correct = 0, budget_hits = 0;
  double reward_sum = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Json j;
    std::string why;
    Rollout r;
    try {
      j = Json::parse(line, nest_guard);
      why = read_rollout(j, &r);
    } catch (const TooDeep&) {
      why = str_cat("nests deeper than ", kMaxNesting, " levels");
    } catch (const Json::parse_error& e) {
      why = str_cat("not valid JSON (at byte ", e.byte, ")");
    } catch (const Json::exception&) {  // a number out of range (1e999), a type mismatch
      why = "not valid JSON (a number out of range or a value of the wrong type)";
    }
    if (!why.empty()) {
      RLKV_CHECK(!strict, input, ":", line_no, ": ", why);
      if (bad < kMaxReportedBadLines)
        std::fprintf(stderr, "rlkv score: %s:%lld: %s (skipped)\n", input.c_str(), (long long)line_no, why.c_str());
      ++bad;
      continue;
    }
    const Reference ref = prepare_reference(r.answer, opts);
    const RewardScore s = score_response(r.response, r.length, r.finish_reason, ref, r.ref_len, opts);
    j["correct"] = s.correct;
    j["excess"] = s.excess;
    j["reward"] = s.reward;
    j["extracted"] = s.extracted;
    out.append(j.dump(-1, ' ', false, Json::error_handler_t::replace) + '\n');
    ++scored;
    correct += s.correct ? 1 : 0;
    budget_hits += s.budget_hit || ref.budget_hit ? 1 : 0;
    reward_sum += s.reward;
  }
  RLKV_CHECK(!in.bad(), input, ": read error after line ", line_no);
  // Nothing but bad lines: a wrong file, not rollouts; the output keeps what it held.
  RLKV_CHECK(scored > 0 || bad == 0, input, ": all ", bad, " non-blank lines are bad (see above); ", output,
             " is left as it was");
  RLKV_CHECK(scored > 0, input, ": no rollouts (the file is empty or blank); ", output, " is left as it was");
  out.commit();
  if (bad > kMaxReportedBadLines)
    std::fprintf(stderr, "rlkv score: ... %lld more bad lines not shown\n", (long long)(bad - kMaxReportedBadLines));
  std::fprintf(
      stderr,
      "rlkv score: %lld scored (%lld correct, mean reward %.4f), %lld bad lines skipped, %lld work-budget hits -> %s\n",
      (long long)scored, (long long)correct, scored ? reward_sum / double(scored) : 0.0, (long long)bad,
      (long long)budget_hits, output.c_str());
  return 0;
}

}  // namespace rlkv
