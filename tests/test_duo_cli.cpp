// `rlkv duo-train` through the binary: bad flags exit 2 with one line naming the flag; short runs on
// the shipped toy model write a directory that `rlkv eval --mask` reads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include "test_util.h"

using Catch::Matchers::Contains;
using rlkv_test::Run;
using rlkv_test::TempDir;

namespace {

const std::string kToyModel = std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner";

void expect_usage_error(const Run& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK(r.status == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_THAT(r.err, Contains(needle));
}

}  // namespace

TEST_CASE("rlkv duo-train: bad flags exit 2 naming the flag") {
  TempDir dir;
  const std::string base = "duo-train --model " + kToyModel + " --output " + (dir / "out");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data passkeys"), "--data");
  expect_usage_error(rlkv_test::run_rlkv("duo-train --model " + kToyModel + " --data retrieval"), "--output");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --steps 0"), "--steps");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --steps ten"), "--steps");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --lr -0.1"), "--lr");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --reg nan"), "--reg");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --batch 0"), "--batch");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data retrieval --sparsity 1.5"), "--sparsity");
  expect_usage_error(rlkv_test::run_rlkv(base + " --data reasoning"), "data.path");
  expect_usage_error(rlkv_test::run_rlkv("duo-train --model " + rlkv_test::fixture("models/llama_tiny") +
                                         " --data retrieval --output " + (dir / "out")),
                     "--data reasoning");
  CHECK_FALSE(std::filesystem::exists(dir / "out"));
  // An output directory that holds the other format, or a config.json that is not a pattern's, is
  // refused before the training (it used to be found when saving, the run lost).
  std::filesystem::create_directories(dir / "sg");
  rlkv_test::write_text(dir / "sg/adapter_weights.tsv", "1\t1\n");
  std::filesystem::create_directories(dir / "model");
  rlkv_test::write_text(dir / "model/config.json", "{\"model_type\": \"llama\"}\n");
  // A training run's directory: its checkpoints, or only its metrics.jsonl (which the gates' would replace).
  std::filesystem::create_directories(dir / "run");
  rlkv_test::write_text(dir / "run/ckpt-3.h5", "a checkpoint");
  std::filesystem::create_directories(dir / "metrics");
  rlkv_test::write_text(dir / "metrics/metrics.jsonl", "{\"step\": 1, \"policy_version\": 1}\n");
  for (const auto& [out, needle] :
       {std::pair<std::string, std::string>{dir / "sg", "already holds adapter_weights.tsv"},
        {dir / "model", "is not a DuoAttention pattern's config"},
        {dir / "run", "holds a training run (ckpt-3.h5)"},
        {dir / "metrics", "holds a metrics.jsonl that rlkv duo-train did not write"}}) {
    const Run r = rlkv_test::run_rlkv("duo-train --model " + kToyModel + " --data retrieval --steps 3 --batch 2 " +
                                      "--threads 1 --output " + out);
    expect_usage_error(r, needle);
    CHECK(r.err.find("step ") == std::string::npos);  // no step trained
  }
  CHECK(rlkv_test::read_text(dir / "metrics/metrics.jsonl") == "{\"step\": 1, \"policy_version\": 1}\n");
}

TEST_CASE("rlkv duo-train: short runs on the toy model write a directory rlkv eval reads") {
  TempDir dir;
  const std::string problems = dir / "problems.jsonl";
  REQUIRE(rlkv_test::run_rlkv("toy data --n 4 --seed 3 --output " + problems).status == 0);
  for (const std::string data : {"retrieval", "reasoning"}) {
    const std::string out = dir / data;
    const Run r = rlkv_test::run_rlkv("duo-train --model " + kToyModel + " --data " + data +
                                      " --data.path=" + problems + " --steps 3 --batch 2 --threads 1 --output " + out);
    INFO("stderr: " << r.err);
    REQUIRE(r.status == 0);
    for (const char* f : {"full_attention_heads.tsv", "config.json", "head_mask.json", "metrics.jsonl"})
      REQUIRE(std::filesystem::exists(out + "/" + f));
    const Run e = rlkv_test::run_rlkv("eval --model " + kToyModel + " --data " + problems + " --method rlkv --mask " +
                                      out + " --sparsity 0.5 --threads 1");
    INFO("eval stderr: " << e.err);
    REQUIRE(e.status == 0);
    CHECK_THAT(e.out, Contains("rlkv"));
    // The directory is an input of that eval: its files are not outputs (the windows would be lost).
    const std::string windows = rlkv_test::read_text(out + "/config.json");
    const auto over = [&](const std::string& mask) {
      const Run r = rlkv_test::run_rlkv("eval --model " + kToyModel + " --data " + problems + " --method rlkv --mask " +
                                        mask + " --sparsity 0.5 --output " + out + "/config.json");
      CHECK(r.status == 2);
      CHECK_THAT(r.err, Contains("is the input file"));
      CHECK(rlkv_test::read_text(out + "/config.json") == windows);
    };
    over(out);
    // Given as the pattern file, the mask still reads the config.json beside it.
    over(out + "/full_attention_heads.tsv");
    // A file the mask does not read may be written there, and written again.
    for (int i = 0; i < 2; ++i) {
      const Run into =
          rlkv_test::run_rlkv("eval --model " + kToyModel + " --data " + problems + " --method rlkv --mask " + out +
                              " --sparsity 0.5 --threads 1 --output " + out + "/eval.json");
      INFO("stderr: " << into.err);
      CHECK(into.status == 0);
    }
  }
}
