// `rlkv prepare` (self-distillation sampling) and the real-model recipes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "problems/dataset.h"
#include "test_util.h"
#include "toy/toy_task.h"

namespace fs = std::filesystem;
using rlkv_test::sh;
using rlkv_test::TempDir;

namespace {

std::string src(const std::string& rel) { return std::string(RLKV_SOURCE_DIR) + "/" + rel; }

// The toy problem a prompt "Q:a+b+...=" states.
rlkv::ToyProblem parse_toy(const std::string& prompt) {
  rlkv::ToyProblem p;
  std::string num;
  for (char c : prompt.substr(2)) {
    if (c >= '0' && c <= '9') {
      num += c;
    } else if (!num.empty()) {
      p.numbers.push_back(std::stoll(num));
      num.clear();
    }
  }
  return p;
}

std::string prepare_cmd(const std::string& in, const std::string& out, const std::string& extra) {
  return std::string(RLKV_BINARY) + " prepare --config " + src("configs/toy.ini") +
         " --model.path=" + src("models/toy-reasoner") + " --input " + in + " --output " + out +
         " --prepare.samples=2 --runtime.max_batch=128 " + extra;
}

}  // namespace

TEST_CASE("prepare keeps the toy problems the model solves, with their exact reference length") {
  TempDir d;
  const std::string rlkv = RLKV_BINARY;
  REQUIRE(sh(rlkv + " toy data --n 500 --seed 99 --output " + (d / "p.jsonl") + " 2>/dev/null") == 0);
  std::string terms;
  for (int i = 0; i < 1000; ++i) terms += "1+";
  {  // two broken lines and a prompt longer than the model's context in front of the problems
    std::ofstream f(d / "in.jsonl");
    f << "{\"id\": \"broken\", \"prompt\": 5\n{\"id\": \"x\"}\n"
      << "{\"id\": \"long\", \"prompt\": \"Q:" << terms << "1=\", \"answer\": \"1001\"}\n"
      << rlkv_test::read_text(d / "p.jsonl");
  }
  REQUIRE(sh(prepare_cmd(d / "in.jsonl", d / "out.jsonl", "2>" + (d / "err"))) == 0);
  const std::string err = rlkv_test::read_text(d / "err");
  INFO(err);
  CHECK(err.find("in.jsonl:1:") != std::string::npos);
  CHECK(err.find("in.jsonl:2:") != std::string::npos);
  CHECK(err.find("2 bad lines") != std::string::npos);
  CHECK(err.find("skipped " + (d / "in.jsonl") + ":3: prompt of 20") != std::string::npos);
  CHECK(err.find("tokens, longer than the model's max_position_embeddings (1024)") != std::string::npos);
  CHECK(err.find("1 unusable prompt") != std::string::npos);
  CHECK(rlkv_test::read_text(d / "out.jsonl").find("\"long\"") == std::string::npos);
  std::ifstream f(d / "out.jsonl");
  std::string line;
  int kept = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    // The toy chain's length is deterministic: one token per character plus EOS.
    const rlkv::ToyProblem p = parse_toy(j["prompt"]);
    REQUIRE(j["ref_len"].get<double>() == double(p.response().size() + 1));
    REQUIRE(j["pass_rate"].get<double>() > 0);
    ++kept;
  }
  CHECK(kept >= 490);  // the toy model is right on ~100% of problems
  CHECK_FALSE(fs::exists(d / "out.jsonl.journal.0"));
  // An output whose name holds ".tmp": its journals were taken for temporaries and skipped, and the
  // run failed after all its work with an internal error.
  {
    std::istringstream all(rlkv_test::read_text(d / "p.jsonl"));
    std::ofstream few(d / "few.jsonl");
    std::string l;
    for (int i = 0; i < 20 && std::getline(all, l); ++i) few << l << "\n";
  }
  REQUIRE(sh(prepare_cmd(d / "few.jsonl", d / "p.tmp.jsonl", "2>/dev/null")) == 0);
  const std::string tmp_named = rlkv_test::read_text(d / "p.tmp.jsonl");
  CHECK(std::count(tmp_named.begin(), tmp_named.end(), '\n') >= 19);
  // Nothing usable (only the long prompt): exit 2 with the reason, and the earlier output is kept
  // instead of replaced by an empty file.
  {
    std::ofstream f(d / "long.jsonl");
    f << "{\"id\": \"long\", \"prompt\": \"Q:" << terms << "1=\", \"answer\": \"1001\"}\n";
  }
  const std::string before = rlkv_test::read_text(d / "out.jsonl");
  const std::string none = prepare_cmd(d / "long.jsonl", d / "out.jsonl", "");
  const rlkv_test::Run r = rlkv_test::run_rlkv(none.substr(std::string(RLKV_BINARY).size() + 1));
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains("kept none of the 1 problems (1 unusable prompt)") &&
                        Catch::Matchers::Contains("is left as it was"));
  CHECK(rlkv_test::read_text(d / "out.jsonl") == before);
}

TEST_CASE(
    "a journal left by another input, or damaged, or an input named as a journal, is refused with one line naming it, "
    "and nothing is written") {
  TempDir d;
  REQUIRE(sh(std::string(RLKV_BINARY) + " toy data --n 8 --seed 4 --output " + (d / "in.jsonl") + " 2>/dev/null") == 0);
  std::string id0;
  {
    std::ifstream f(d / "in.jsonl");
    std::string line;
    REQUIRE(std::getline(f, line));
    id0 = nlohmann::json::parse(line)["id"].get<std::string>();
  }
  const auto refused = [&](const std::string& text, const std::string& needle) {
    rlkv_test::write_text(d / "out.jsonl.journal.0", text);
    const std::string cmd = prepare_cmd(d / "in.jsonl", d / "out.jsonl", "--prepare.chunk=4");
    const rlkv_test::Run r = rlkv_test::run_rlkv(cmd.substr(std::string(RLKV_BINARY).size() + 1));
    INFO(r.err);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Matchers::Contains("out.jsonl.journal.0:1: ") && Catch::Matchers::Contains(needle));
    CHECK_FALSE(fs::exists(d / "out.jsonl"));
  };
  // The same id with no record of the problem's text (another input that numbers its problems alike).
  refused("{\"index\": 0, \"id\": \"" + id0 + "\", \"kept\": false, \"reason\": \"never solved\"}\n",
          "has another prompt or answer");
  refused("{\"index\": 0, \"id\": \"elsewhere-0\", \"kept\": false, \"reason\": \"never solved\"}\n",
          "has id 'elsewhere-0' here");
  refused("{\"index\": \"zero\"}\n", "'index'");
  refused("{\"index\": 0, \"id\"\n{\"index\": 1}\n", "not JSON, and lines follow");  // torn, but not last
  // An input named as one of the output's journals, which prepare writes and at the end removes.
  fs::copy_file(d / "in.jsonl", d / "out.jsonl.journal.1");
  const std::string cmd = prepare_cmd(d / "out.jsonl.journal.1", d / "out.jsonl", "");
  const rlkv_test::Run r = rlkv_test::run_rlkv(cmd.substr(std::string(RLKV_BINARY).size() + 1));
  INFO(r.err);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains("is named as a journal of --output"));
  CHECK(rlkv_test::read_text(d / "out.jsonl.journal.1") == rlkv_test::read_text(d / "in.jsonl"));
}

TEST_CASE("prepare interrupted with SIGTERM and rerun writes the same file as an uninterrupted run") {
  TempDir d;
  const std::string rlkv = RLKV_BINARY;
  REQUIRE(sh(rlkv + " toy data --n 300 --seed 5 --output " + (d / "in.jsonl") + " 2>/dev/null") == 0);
  const std::string extra = "--prepare.chunk=16 --rollout.temperature=1.0";
  REQUIRE(sh(prepare_cmd(d / "in.jsonl", d / "whole.jsonl", extra + " 2>/dev/null")) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c",
          ("exec " + prepare_cmd(d / "in.jsonl", d / "part.jsonl", extra + " 2>/dev/null")).c_str(), (char*)nullptr);
    _exit(127);
  }
  // Stop it once a chunk is in the journal (of 19): an event, with a deadline far beyond its cost.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  std::error_code ec;
  while (!(fs::exists(d / "part.jsonl.journal.0", ec) && fs::file_size(d / "part.jsonl.journal.0", ec) > 2000)) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  REQUIRE_FALSE(fs::exists(d / "part.jsonl"));  // stopped with chunks left
  {
    // Continued under other settings (here another pass-rate band), the output would mix two
    // runs' ref_len and pass_rate: refused, the journal kept for the rerun below.
    const std::string journal = rlkv_test::read_text(d / "part.jsonl.journal.0");
    const std::string other = prepare_cmd(d / "in.jsonl", d / "part.jsonl", extra + " --prepare.min_pass_rate=0.5");
    const rlkv_test::Run r = rlkv_test::run_rlkv(other.substr(rlkv.size() + 1));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Matchers::Contains("part.jsonl.journal.0:1: ") &&
                          Catch::Matchers::Contains("made under other settings"));
    CHECK(rlkv_test::read_text(d / "part.jsonl.journal.0") == journal);
  }
  const int rerun = sh(prepare_cmd(d / "in.jsonl", d / "part.jsonl", extra + " 2>" + (d / "rerun.err")));
  INFO("first run: " << (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st)) : "signal") << "; rerun stderr:\n"
                     << rlkv_test::read_text(d / "rerun.err"));
  REQUIRE(rerun == 0);
  // It went on from the journal (a rerun that started over would write the same file).
  CHECK_THAT(rlkv_test::read_text(d / "rerun.err"), Catch::Matchers::Contains("prepare: resuming, "));
  REQUIRE(rlkv_test::read_text(d / "part.jsonl") == rlkv_test::read_text(d / "whole.jsonl"));
}

TEST_CASE("each real-model recipe loads and trains two steps on a tiny model of its family") {
  TempDir d;
  {
    std::ofstream f(d / "math.jsonl");
    f << R"({"problem": "What is 2+3?", "answer": "5"})"
      << "\n"
      << R"({"problem": "Compute 7*6.", "answer": "42"})"
      << "\n"
      << R"({"problem": "Simplify 10/4.", "answer": "\\frac{5}{2}"})"
      << "\n";
  }
  const std::pair<const char*, const char*> recipes[] = {{"configs/llama-3.1-8b-r1.ini", "llama_tiny"},
                                                         {"configs/qwen-2.5-7b-r1.ini", "qwen2_tiny"},
                                                         {"configs/qwen3-4b-thinking.ini", "qwen3_tiny"}};
  for (const auto& [cfg, model] : recipes) {
    INFO(cfg);
    const std::string out = d / model;
    const std::string cmd = std::string(RLKV_BINARY) + " train --config " + src(cfg) +
                            " --model.path=" + rlkv_test::fixture(std::string("models/") + model) +
                            " --data.path=" + (d / "math.jsonl") + " --train.output_dir=" + out +
                            " --train.steps=2 --rollout.prompts_per_step=2 --rollout.group_size=2"
                            " --rollout.max_new_tokens=8 --cache.sink=2 --cache.window=4 --runtime.max_batch=8 >" +
                            out + ".log 2>&1";
    CHECK(sh(cmd) == 0);
    CHECK(fs::exists(out + "/ckpt-2.h5"));
  }
}

TEST_CASE("prepare under mpirun -np 2 shares the chunks and writes the same file as one process") {
  // launch/install.sh installs mpirun: without it the feature is unchecked, which is a failure.
  if (!rlkv_test::have_mpirun()) FAIL("mpirun not found (launch/install.sh installs openmpi-bin)");
  TempDir d;
  REQUIRE(sh(std::string(RLKV_BINARY) + " toy data --n 200 --seed 8 --output " + (d / "in.jsonl") + " 2>/dev/null") ==
          0);
  const std::string extra = "--prepare.chunk=16";
  REQUIRE(sh(prepare_cmd(d / "in.jsonl", d / "one.jsonl", extra + " 2>/dev/null")) == 0);
  REQUIRE(sh(src("launch/mpirun.sh") + " -np 2 " +
             prepare_cmd(d / "in.jsonl", d / "two.jsonl", extra + " 2>/dev/null")) == 0);
  REQUIRE(rlkv_test::read_text(d / "two.jsonl") == rlkv_test::read_text(d / "one.jsonl"));
  CHECK_FALSE(fs::exists(d / "two.jsonl.journal.0"));
  CHECK_FALSE(fs::exists(d / "two.jsonl.journal.1"));
}

TEST_CASE("answers written as JSON integers keep their digits, past 2^63 too") {
  TempDir d;
  rlkv_test::write_text(d / "big.jsonl",
                        "{\"prompt\": \"a\", \"answer\": 18446744073709551615}\n"
                        "{\"prompt\": \"b\", \"answer\": -42}\n");
  const std::vector<rlkv::Problem> p = rlkv::load_problems(d / "big.jsonl");
  REQUIRE(p.size() == 2);
  CHECK(p[0].answer == "18446744073709551615");  // was read as int64: -1
  CHECK(p[1].answer == "-42");
}
