// `rlkv score` through the real binary: fields kept and added, bad lines reported by
// line number and skipped (or, with --strict, exit 2 with one line naming file and line), the output
// never half-written, exit codes of docs/design.md section 8.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

using Catch::Matchers::Contains;
using rlkv_test::TempDir;
namespace fs = std::filesystem;

namespace {

using rlkv_test::Run;

Run run(const std::string& args) { return rlkv_test::run_rlkv("score " + args); }

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(rlkv_test::read_text(path));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

const char* kGood =
    R"({"id": 1, "response": "<think>hmm \\boxed{3}</think> so \\boxed{\\frac{1}{2}}", "answer": "0.5", "length": 100, "ref_len": 100, "finish_reason": "eos", "masks": [1, 0]})"
    "\n"
    R"({"id": "b", "response": "The final answer is 41.", "answer": "Work.\n#### 42", "length": 200, "ref_len": 100, "finish_reason": "stop"})"
    "\n"
    R"({"id": 3, "response": "so \\boxed{42}", "answer": 42, "length": 400, "ref_len": 100, "finish_reason": "length"})"
    "\n";

}  // namespace

TEST_CASE("rlkv score: every field kept, correct / excess / reward / extracted added") {
  TempDir dir;
  rlkv_test::write_text(dir / "in.jsonl", kGood);
  const Run r = run("--input " + rlkv_test::shell_quote(dir / "in.jsonl") + " --output " +
                    rlkv_test::shell_quote(dir / "out.jsonl"));
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("3 scored") && Contains("0 bad lines"));
  const auto rows = read_jsonl(dir / "out.jsonl");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["id"] == 1);
  CHECK(rows[0]["masks"] == nlohmann::json::array({1, 0}));
  CHECK(rows[0]["correct"] == true);
  CHECK(rows[0]["excess"] == 0.0);
  CHECK(rows[0]["reward"] == 1.0);
  CHECK(rows[0]["extracted"] == "\\frac{1}{2}");
  CHECK(rows[1]["id"] == "b");
  CHECK(rows[1]["correct"] == false);
  CHECK(rows[1]["excess"].get<double>() == Approx(0.5));
  CHECK(rows[1]["reward"].get<double>() == Approx(-0.125));
  CHECK(rows[1]["extracted"] == "41");
  CHECK(rows[2]["correct"] == false);  // truncated
  CHECK(rows[2]["excess"] == 1.0);
  CHECK(rows[2]["reward"].get<double>() == Approx(-0.25));
  // --slack / --lambda-len change the length term.
  const Run r2 = run("--input " + rlkv_test::shell_quote(dir / "in.jsonl") + " --output " +
                     rlkv_test::shell_quote(dir / "out2.jsonl") + " --slack 0 --lambda-len 1");
  REQUIRE(r2.status == 0);
  const auto rows2 = read_jsonl(dir / "out2.jsonl");
  CHECK(rows2[1]["excess"] == 1.0);
  CHECK(rows2[1]["reward"] == -1.0);
}

TEST_CASE("rlkv score --task toy") {
  TempDir dir;
  rlkv_test::write_text(
      dir / "in.jsonl",
      R"({"id": 0, "response": "23+45=68;68+12=80;A:80", "answer": "80", "length": 20, "ref_len": 20, "finish_reason": "eos"})"
      "\n"
      R"({"id": 1, "response": "23+45=68;68+12=81;A:81", "answer": "80", "length": 20, "ref_len": 20, "finish_reason": "eos"})"
      "\n");
  const Run r = run("--task toy --input " + rlkv_test::shell_quote(dir / "in.jsonl") + " --output " +
                    rlkv_test::shell_quote(dir / "out.jsonl"));
  REQUIRE(r.status == 0);
  const auto rows = read_jsonl(dir / "out.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["correct"] == true);
  CHECK(rows[0]["extracted"] == "80");
  CHECK(rows[1]["correct"] == false);
}

TEST_CASE("rlkv score: bad lines are reported by number and skipped, with a summary") {
  TempDir dir;
  std::string text = kGood;
  text += "this is not json\n";  // line 4
  text += "\n";                  // blank: ignored
  text += R"({"id": 5, "response": "x", "answer": "1", "length": 1, "ref_len": 1})"
          "\n";  // line 6
  text += R"({"id": 6, "response": 7, "answer": "1", "length": 1, "ref_len": 1, "finish_reason": "eos"})"
          "\n";
  text += R"({"id": 7, "response": "x", "answer": "1", "length": -3, "ref_len": 1, "finish_reason": "eos"})"
          "\n";
  text += R"({"id": 8, "response": "x", "answer": "1", "length": 1, "ref_len": 1, "finish_reason": "done"})"
          "\n";
  text += R"([1, 2, 3])"
          "\n";  // line 10
  // line 11: an extra field nested 100,000 deep (writing it back would overflow the stack)
  text += R"({"id": 9, "response": "x", "answer": "1", "length": 1, "ref_len": 1, "finish_reason": "eos", "x": )" +
          std::string(100000, '[') + std::string(100000, ']') + "}\n";
  rlkv_test::write_text(dir / "in.jsonl", text);
  const Run r = run("--input " + rlkv_test::shell_quote(dir / "in.jsonl") + " --output " +
                    rlkv_test::shell_quote(dir / "out.jsonl"));
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Contains("in.jsonl:4:") && Contains("not valid JSON"));
  CHECK_THAT(r.err, Contains("in.jsonl:6:") && Contains("finish_reason"));
  CHECK_THAT(r.err, Contains("in.jsonl:7:") && Contains("'response'"));
  CHECK_THAT(r.err, Contains("in.jsonl:8:") && Contains("'length'"));
  CHECK_THAT(r.err, Contains("in.jsonl:9:") && Contains("finish_reason"));
  CHECK_THAT(r.err, Contains("in.jsonl:10:") && Contains("object"));
  CHECK_THAT(r.err, Contains("in.jsonl:11: nests deeper than 64 levels"));
  CHECK_THAT(r.err, Contains("3 scored") && Contains("7 bad lines"));
  CHECK(read_jsonl(dir / "out.jsonl").size() == 3);
}

TEST_CASE("rlkv score --strict: exit 2, one line naming file and line, no output written") {
  TempDir dir;
  rlkv_test::write_text(dir / "in.jsonl", std::string(kGood) + "{\"id\": 4, \"response\": \n");
  rlkv_test::write_text(dir / "out.jsonl", "previous contents\n");
  const Run r = run("--strict --input " + rlkv_test::shell_quote(dir / "in.jsonl") + " --output " +
                    rlkv_test::shell_quote(dir / "out.jsonl"));
  INFO("stderr: " << r.err);
  CHECK(r.status == 2);
  CHECK(lines(r.err) == 1);
  CHECK_THAT(r.err, Contains("in.jsonl:4:"));
  // The previous output is untouched and no temporary file is left behind.
  CHECK(rlkv_test::read_text(dir / "out.jsonl") == "previous contents\n");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 2);
}

TEST_CASE("rlkv score: usage and input errors exit 2 with one line") {
  TempDir dir;
  rlkv_test::write_text(dir / "in.jsonl", kGood);
  const std::string in = " --input " + rlkv_test::shell_quote(dir / "in.jsonl"),
                    out = " --output " + rlkv_test::shell_quote(dir / "o.jsonl");
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {out, "--input"},
           {in, "--output"},
           {" --input " + rlkv_test::shell_quote(dir / "missing.jsonl") + out, "missing.jsonl"},
           {in + out + " --task chess", "--task"},
           {in + out + " --slack -1", "--slack"},
           {in + out + " --lambda-len nan", "--lambda-len"},
           {in + out + " --bogus", "--bogus"},
           {in + " --output " + rlkv_test::shell_quote(dir / "no/such/dir/o.jsonl"), "o.jsonl"},
       }) {
    const Run r = run(args);
    INFO("args: " << args << "\nstderr: " << r.err);
    CHECK(r.status == 2);
    CHECK(lines(r.err) == 1);
    CHECK_THAT(r.err, Contains(needle));
  }
  // A file of bad lines only (the wrong file, or numbers out of range) fails and leaves the output as it was.
  rlkv_test::write_text(dir / "o.jsonl", "kept\n");
  rlkv_test::write_text(dir / "bad.jsonl", "not json\n{\"id\":\"a\",\"ref_len\":1e999}\n");
  const Run bad = run(" --input " + rlkv_test::shell_quote(dir / "bad.jsonl") + out);
  CHECK(bad.status == 2);
  CHECK_THAT(bad.err, Contains("all 2 non-blank lines are bad"));
  CHECK(rlkv_test::read_text(dir / "o.jsonl") == "kept\n");
  // So does an empty or blank file: no rollouts is not an empty result.
  rlkv_test::write_text(dir / "blank.jsonl", "\n  \n");
  const Run blank = run(" --input " + rlkv_test::shell_quote(dir / "blank.jsonl") + out);
  CHECK(blank.status == 2);
  CHECK_THAT(blank.err, Contains("no rollouts"));
  CHECK(rlkv_test::read_text(dir / "o.jsonl") == "kept\n");
  // The input as its own output: refused, the input kept.
  const Run same = run(in + " --output " + rlkv_test::shell_quote(dir / "in.jsonl"));
  CHECK(same.status == 2);
  CHECK_THAT(same.err, Contains("is the input file"));
  CHECK(rlkv_test::read_text(dir / "in.jsonl") == kGood);
  const Run help = run("--help");
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Contains("--input"));
}
