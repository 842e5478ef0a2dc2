// The rlkv binary on bad input: each case exits 2 with one line on stderr that names the file or key
// (docs/design.md section 8), and a good run exits 0.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "test_util.h"

using Catch::Matchers::Contains;
using rlkv_test::TempDir;
namespace fs = std::filesystem;

namespace {

using rlkv_test::Run;

Run run(const std::string& args) { return rlkv_test::run_rlkv(args); }

// A copy of a fixture model that a test may damage.
std::string copy_model(const TempDir& dir, const std::string& name) {
  const std::string dst = dir / name;
  fs::copy(rlkv_test::fixture("models/" + name), dst, fs::copy_options::recursive);
  for (auto& e : fs::directory_iterator(dst)) fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add);
  return dst;
}

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

void expect_usage_error(const Run& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK(r.status == 2);
  CHECK(lines(r.err) == 1);
  CHECK_THAT(r.err, Contains(needle));
}

const char* kPromptArgs = " --prompt hello --max-new-tokens 4 --temperature 0";

}  // namespace

TEST_CASE("rlkv generate runs on a fixture model and prints text and stats") {
  Run r = run("generate --model " + rlkv_test::fixture("models/qwen3_tiny") + kPromptArgs + " --stats");
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(!r.out.empty());
  CHECK_THAT(r.err, Contains("tokens/s"));
  CHECK_THAT(r.err, Contains("KV cache"));
  Run m = run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs +
              " --mask random:1 --sparsity 0.5 --json");
  INFO("stderr: " << m.err);
  REQUIRE(m.status == 0);
  CHECK_THAT(m.out, Contains("\"finish_reason\""));
}

TEST_CASE("generation stops when the prompt and the response fill the model's context") {
  // The toy tokenizer spells a prompt character by character: BOS + 1,004 characters, 1,024 positions.
  std::string prompt = "Q:";
  for (int i = 0; i < 500; ++i) prompt += "1+";
  prompt += "1=";
  const Run r = run("generate --model " + std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner --prompt " + prompt +
                    " --max-new-tokens 100 --temperature 0 --json");
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("\"prompt_len\":1005"));
  CHECK_THAT(r.out, Contains("\"length\":19"));
  CHECK_THAT(r.out, Contains("\"finish_reason\":\"length\""));
}

TEST_CASE("runtime.cuda_graphs takes the resident-table step, which prints the same text on the CPU") {
  const std::string base = "generate --model " + rlkv_test::fixture("models/llama_tiny") +
                           " --prompt hello --prompt world --max-new-tokens 12 --temperature 0.9 --seed 3"
                           " --mask random:2 --sparsity 0.5 --json";
  // --stats says which step ran: "(N through resident tables)", 0 for the eager step.
  const auto table_steps = [](const std::string& err) {
    const size_t at = err.find(" through resident tables");
    REQUIRE(at != std::string::npos);
    const size_t open = err.rfind('(', at);
    return std::stoll(err.substr(open + 1, at - open - 1));
  };
  Run eager = run(base + " --stats");
  Run tabled = run(base + " --stats --runtime.cuda_graphs=true");
  INFO("stderr: " << tabled.err);
  REQUIRE(eager.status == 0);
  REQUIRE(tabled.status == 0);
  REQUIRE(eager.out == tabled.out);
  CHECK(table_steps(eager.err) == 0);
  CHECK(table_steps(tabled.err) > 0);
  Run automatic = run(base + " --stats --runtime.cuda_graphs=auto");  // the default: eager on the CPU
  REQUIRE(automatic.status == 0);
  REQUIRE(automatic.out == eager.out);
  CHECK(table_steps(automatic.err) == 0);
  expect_usage_error(run(base + " --runtime.cuda_graphs=maybe"), "runtime.cuda_graphs");
}

TEST_CASE("bad usage exits 2 with a one-line message") {
  expect_usage_error(run("frobnicate"), "unknown command");
  expect_usage_error(run("generate --prompt x"), "--model");
  expect_usage_error(run("generate --model /nonexistent --prompt x"), "/nonexistent/config.json");
  expect_usage_error(run("generate --model /m --prompt x --cache.sinc=3"), "cache.sinc");
  expect_usage_error(run("generate --model /m --prompt x --cache.sink=-1"), "cache.sink");
  expect_usage_error(run("generate --model /m --prompt x --bogus"), "--bogus");
  // A prefix of an option is not that option: --seed is not eval's --seeds (Boost's guessing).
  expect_usage_error(run("eval --model /m --data x --method random --sparsity 0.5 --seed 2"), "'--seed'");
  expect_usage_error(run("generate --model /m --prompt x --max-new 3"), "'--max-new'");
  expect_usage_error(
      run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs + " --mask random:1"),
      "--sparsity");
  expect_usage_error(run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs +
                         " --mask /nonexistent.tsv --sparsity 0.5"),
                     "/nonexistent.tsv");
  // A random mask's seed is digits only (std::stoull would read -1 as 2^64 - 1 and 12abc as 12); seeds
  // in the config are >= 0 as toy data's is.
  for (const char* bad : {"random:-1", "random:12abc", "'random: 3'", "random:99999999999999999999"})
    expect_usage_error(run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs + " --mask " +
                           bad + " --sparsity 0.5"),
                       "must be a whole number");
  {
    // A score file whose relative path starts with "random" is a path, not a malformed random:SEED.
    TempDir d;
    rlkv_test::write_text(d / "random_run.tsv", "1\t0\n0\t1\n1\t1\n");
    const std::string cmd = "cd " + rlkv_test::shell_quote(d.str()) + " && " + RLKV_BINARY + " generate --model " +
                            rlkv_test::fixture("models/llama_tiny") + kPromptArgs +
                            " --mask random_run.tsv --sparsity 0.5 >/dev/null 2>&1 </dev/null";
    CHECK(rlkv_test::sh(cmd) == 0);
    expect_usage_error(run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs +
                           " --mask randomx --sparsity 0.5"),
                       "randomx");
  }
  {
    // A model directory whose name holds '#': eval and generate record no INI text, so they take it.
    TempDir d;
    fs::create_directory_symlink(rlkv_test::fixture("models/llama_tiny"), d / "m#1");
    CHECK(run("generate --model " + rlkv_test::shell_quote(d / "m#1") + kPromptArgs).status == 0);
  }
  // A flag's number reaches its config key whole: --top-p 0.0000004 used to become "0.000000" and was
  // refused as 0.
  CHECK(run("generate --model " + rlkv_test::fixture("models/llama_tiny") +
            " --prompt hello --max-new-tokens 4 --temperature 1 --top-p 0.0000004")
            .status == 0);
  expect_usage_error(run("generate --model /m --prompt x --seed -5"), "rollout.seed: expected >= 0");
  // Seeds that an unsigned parse would wrap (-1 as 2^64 - 1); a toy too large to train on the CPU.
  TempDir out;
  expect_usage_error(run("toy train --seed -1 --output " + (out / "t")), "--seed must be >= 0");
  expect_usage_error(run("duo-train --model /m --data retrieval --seed -1 --output " + (out / "u")),
                     "--seed must be >= 0");
  expect_usage_error(run("toy train --layers 100000 --output " + (out / "t")),
                     "a toy trained on the CPU holds at most");
  expect_usage_error(run("toy train --batch 100000 --output " + (out / "t")), "--batch must be <= 4096");
  // Problems longer than the toy model's 1024 positions are refused before the training (they used
  // to train, then fail at the first held-out evaluation with the run lost).
  expect_usage_error(run("toy train --k-min 200 --k-max 200 --num-min 100000 --num-max 999999 --output " + (out / "t")),
                     "beyond the toy model's 1024 positions");
  CHECK_FALSE(fs::exists(out / "t"));
  // An option argument holding a placeholder of Boost's messages (its own what() never returned).
  expect_usage_error(run("toy data --n 'x%value%' --output " + (out / "d.jsonl")),
                     "the argument ('x%value%') for option '--n' is invalid");
  // A single-dash option as typed; a flag and the config key it sets, both given; a binary file given
  // as the config (its bytes escaped, the message whole).
  expect_usage_error(run("generate -x"), "unknown option '-x'");
  expect_usage_error(run("generate --model /m --model.path=/n --prompt x"),
                     "config key 'model.path' is given more than once");
  const Run binary =
      run("generate --prompt x --config " + std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner/model.safetensors");
  expect_usage_error(binary, "unknown config key '\\x");
  CHECK_THAT(binary.err, Contains("...'"));
  expect_usage_error(run("generate --model /m --prompt x --train.seed=-1"), "train.seed: expected >= 0");
  TempDir d;
  rlkv_test::write_text(d / "x.ini", "[model]\npath=/m\nfoo=1\n");
  expect_usage_error(run("generate --config " + (d / "x.ini") + " --prompt x"), "model.foo");
  // A stray word (a second word of an unquoted prompt), a directory or FIFO given as the config.
  expect_usage_error(
      run("generate --model " + rlkv_test::fixture("models/llama_tiny") + " --prompt one two --max-new-tokens 1"),
      "unexpected argument 'two'");
  expect_usage_error(run("generate --config " + d.str() + " --prompt x"), "not a regular file");
  expect_usage_error(run("generate --config " + (d / "x.ini") + " --prompt x --train.stepz=1"), "'train.stepz'");
  const std::string eval = "eval --model " + rlkv_test::fixture("models/llama_tiny") + " --method full --data ";
  expect_usage_error(run(eval + d.str()), "is a directory");
  expect_usage_error(run(eval + "/dev/zero"), "/dev/zero: is a character device");  // would read forever
  rlkv_test::write_text(d / "huge.jsonl", "{\"prompt\": \"x\", \"answer\": 1e999}\n");
  expect_usage_error(run(eval + (d / "huge.jsonl")), "huge.jsonl:1: not valid JSON");
  std::string digits;
  for (int i = 0; i < 6000; ++i) digits += " 7";
  rlkv_test::write_text(d / "long.jsonl", "{\"prompt\": \"" + digits + "\", \"answer\": \"1\"}\n");
  expect_usage_error(run(eval + (d / "long.jsonl")), "long.jsonl:1: prompt of");
  expect_usage_error(run(eval + (d / "long.jsonl") + " --output " + (d / "long.jsonl")), "is the input file");
  // An empty value is refused by name, not read as the option left out (the config's data, no config,
  // every head full).
  expect_usage_error(run(eval + "''"), "--data: an empty value");
  expect_usage_error(run("toy data --n 1 --output ''"), "--output: an empty value");
  expect_usage_error(run("eval --config '' --data " + (d / "long.jsonl")), "--config: an empty value");
  expect_usage_error(run("generate --model " + rlkv_test::fixture("models/llama_tiny") + " --prompt hi --mask ''"),
                     "--mask: an empty value");
  expect_usage_error(run("toy data --n 1 --seed -1 --output " + (d / "t.jsonl")), "--seed must be >= 0");
  expect_usage_error(run("toy train --output " + (d / "toy") + " --lr 1e30"), "--lr must be a number in (0, 1]");
  expect_usage_error(run("eval --model '' --data " + (d / "long.jsonl") + " --method full"), "--model: an empty value");
  const std::string model_only =
      "eval --model " + rlkv_test::fixture("models/llama_tiny") + " --data " + (d / "long.jsonl");
  expect_usage_error(run(model_only + " --method h2o --budget 100 --sparsity 0.5"),
                     "--budget and --sparsity both size the cache");
  expect_usage_error(run(model_only + " --method random --sparsity 0.5,"), "ends with a comma");
  // The dataset's format and field names apply to eval as to training.
  rlkv_test::write_text(d / "gsm.jsonl", "{\"question\": \"hi\", \"answer\": \"1\"}\n");
  const std::string gsm = "eval --model " + rlkv_test::fixture("models/llama_tiny") + " --data " + (d / "gsm.jsonl") +
                          " --method full --max-new-tokens 2";
  const Run gsm_ok = run(gsm + " --data.format=gsm8k");
  INFO("stderr: " << gsm_ok.err);
  CHECK(gsm_ok.status == 0);
  expect_usage_error(run(gsm + " --data.format=gsm8k --data.prompt_field=nan"), "gsm.jsonl:1: missing field 'nan'");
  // No output may replace an input: the config, a mask, a file of the model.
  rlkv_test::write_text(d / "ok.jsonl", "{\"prompt\": \"hi\", \"answer\": \"1\"}\n");
  rlkv_test::write_text(d / "c.ini", "[model]\npath = " + rlkv_test::fixture("models/llama_tiny") + "\n");
  const std::string ok = "eval --config " + (d / "c.ini") + " --data " + (d / "ok.jsonl");
  expect_usage_error(run(ok + " --method full --output " + (d / "c.ini")), "is the input file");
  CHECK_THAT(rlkv_test::read_text(d / "c.ini"), Contains("[model]"));
  rlkv_test::write_text(d / "m.tsv", "1\t0\n0\t1\n1\t1\n");
  expect_usage_error(run(ok + " --method rlkv --mask " + (d / "m.tsv") + " --sparsity 0.5 --output " + (d / "m.tsv")),
                     "is the input file");
  CHECK(rlkv_test::read_text(d / "m.tsv") == "1\t0\n0\t1\n1\t1\n");
  const std::string model = copy_model(d, "llama_tiny");
  const std::string config = rlkv_test::read_text(model + "/config.json");
  expect_usage_error(run("eval --model " + model + " --data " + (d / "ok.jsonl") + " --method full --output " + model +
                         "/config.json"),
                     "is the input file");
  CHECK(rlkv_test::read_text(model + "/config.json") == config);
  // A FIFO where the weights index belongs: the output check does not open it (that would block), the
  // load refuses it.
  TempDir d2;
  const std::string fifo_model = copy_model(d2, "llama_tiny");
  fs::remove(fifo_model + "/model.safetensors.index.json");
  REQUIRE(::mkfifo((fifo_model + "/model.safetensors.index.json").c_str(), 0600) == 0);
  expect_usage_error(run("eval --model " + fifo_model + " --data " + (d / "ok.jsonl") + " --method full --output " +
                         (d / "fifo.json")),
                     "model.safetensors.index.json");
  // --scores-out DIR writes DIR/adapter_weights.tsv: --output may not be that file too.
  expect_usage_error(run(model_only + " --method single-head --scores-out " + (d / "scores") + " --output " +
                         (d / "scores/adapter_weights.tsv")),
                     "is the file --scores-out writes");
  // A --scores-out directory that holds DuoAttention's file, or whose adapter_weights.tsv is a
  // directory, is refused before the evaluation (the first passed and left an unreadable mask
  // directory, the second failed after the passes and lost --output).
  fs::create_directories(d / "duo");
  rlkv_test::write_text(d / "duo/full_attention_heads.tsv", "1\t1\n");
  fs::create_directories(d / "dirs/adapter_weights.tsv");
  for (const std::string& dir : {d / "duo", d / "dirs"}) {
    expect_usage_error(
        run(model_only + " --method single-head --scores-out " + dir + " --output " + (d / "single.json")),
        dir == d / "duo" ? "already holds full_attention_heads.tsv" : "adapter_weights.tsv");
    CHECK_FALSE(fs::exists(d / "single.json"));
  }
  // Evaluation is greedy unless the command line says otherwise.
  const Run sampled = run(ok + " --method full --max-new-tokens 2 --rollout.temperature=0.7");
  INFO("stderr: " << sampled.err);
  CHECK(sampled.status == 0);
  // A dataset's ref_len and pass_rate are what `rlkv prepare` writes, or refused naming the line.
  rlkv_test::write_text(d / "ref.jsonl",
                        "{\"prompt\": \"hi\", \"answer\": \"1\"}\n"
                        "{\"prompt\": \"hi\", \"answer\": \"1\", \"ref_len\": -5}\n");
  expect_usage_error(run(eval + (d / "ref.jsonl")), "ref.jsonl:2: field 'ref_len' must be a number of tokens");
  rlkv_test::write_text(d / "pass.jsonl", "{\"prompt\": \"hi\", \"answer\": \"1\", \"pass_rate\": \"7\"}\n");
  expect_usage_error(run(eval + (d / "pass.jsonl")), "pass.jsonl:1: field 'pass_rate' must be a fraction");
  // float16 on a CPU whose LibTorch has no float16 matrix product: one line before any work.
  const Run half =
      run("generate --model " + rlkv_test::fixture("models/llama_tiny") + kPromptArgs + " --model.dtype=float16");
  INFO("stderr: " << half.err);
  CHECK((half.status == 0 || (half.status == 2 && half.err.find("float16 needs a CUDA device") != std::string::npos)));
}

TEST_CASE("damaged model directories exit 2 naming the file and the problem") {
  TempDir d;
  SECTION("unsupported architecture") {
    const std::string m = copy_model(d, "qwen3_tiny");
    std::string cfg = rlkv_test::read_text(m + "/config.json");
    cfg.replace(cfg.find("\"qwen3\""), 7, "\"gpt_neox\"");
    rlkv_test::write_text(m + "/config.json", cfg);
    expect_usage_error(run("generate --model " + m + kPromptArgs), "gpt_neox");
  }
  SECTION("config.json not JSON") {
    const std::string m = copy_model(d, "qwen3_tiny");
    rlkv_test::write_text(m + "/config.json", "{\"model_type\": ");
    expect_usage_error(run("generate --model " + m + kPromptArgs), "config.json");
  }
  SECTION("truncated safetensors") {
    const std::string m = copy_model(d, "qwen3_tiny");
    fs::resize_file(m + "/model.safetensors", fs::file_size(m + "/model.safetensors") / 2);
    expect_usage_error(run("generate --model " + m + kPromptArgs), "model.safetensors");
  }
  SECTION("header that lies about offsets") {
    const std::string m = copy_model(d, "qwen3_tiny");
    std::string bytes = rlkv_test::read_text(m + "/model.safetensors");
    const size_t at = bytes.find("\"data_offsets\":[0,");
    REQUIRE(at != std::string::npos);
    bytes[at + 16] = '9';  // begin 0 -> 9: size no longer matches the shape
    rlkv_test::write_text(m + "/model.safetensors", bytes);
    expect_usage_error(run("generate --model " + m + kPromptArgs), "model.safetensors");
  }
  SECTION("tensor shape disagrees with config.json") {
    const std::string m = copy_model(d, "qwen3_tiny");
    std::string cfg = rlkv_test::read_text(m + "/config.json");
    const size_t at = cfg.find("\"intermediate_size\": 128");
    REQUIRE(at != std::string::npos);
    cfg.replace(at, 24, "\"intermediate_size\": 130");
    rlkv_test::write_text(m + "/config.json", cfg);
    expect_usage_error(run("generate --model " + m + kPromptArgs), "shape");
  }
  SECTION("missing shard") {
    const std::string m = copy_model(d, "llama_tiny");
    fs::remove(m + "/model-00002-of-00003.safetensors");
    expect_usage_error(run("generate --model " + m + kPromptArgs), "model-00002-of-00003.safetensors");
  }
  SECTION("malformed tokenizer.json") {
    const std::string m = copy_model(d, "qwen3_tiny");
    rlkv_test::write_text(m + "/tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2]}}");
    expect_usage_error(run("generate --model " + m + kPromptArgs), "tokenizer.json");
    // Not JSON at all: the parser's message without the JSON library's exception tag.
    rlkv_test::write_text(m + "/tokenizer.json", "");
    const Run r = run("generate --model " + m + kPromptArgs);
    expect_usage_error(r, "tokenizer.json: not valid JSON");
    CHECK_THAT(r.err, !Contains("json.exception"));
  }
}

TEST_CASE("eval checks answers with the task the model directory declares, and warns when none is extractable") {
  TempDir d;
  const std::string toy = std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner";
  REQUIRE(run("toy data --n 24 --seed 11 --output " + (d / "p.jsonl")).status == 0);
  const std::string base = "eval --model " + toy + " --data " + (d / "p.jsonl") + " --method full";
  // models/toy-reasoner/config.json declares rlkv_task = toy: no --task needed.
  // The full row's accuracy, read from --output (the printed table's KV column says 100.0 whatever
  // the accuracy).
  const auto full_accuracy = [&](const std::string& json) {
    const nlohmann::json j = nlohmann::json::parse(rlkv_test::read_text(json));
    REQUIRE(j["rows"].size() == 1);
    return j["rows"][0]["accuracy"].get<double>();
  };
  const Run declared = run(base + " --output " + (d / "declared.json"));
  INFO("stdout: " << declared.out << "\nstderr: " << declared.err);
  REQUIRE(declared.status == 0);
  CHECK(full_accuracy(d / "declared.json") == 1.0);
  CHECK_THAT(declared.err, !Contains("warning"));
  // The maths checker finds no answer in a toy chain: one warning line that names --task.
  const Run wrong = run(base + " --task math --output " + (d / "wrong.json"));
  INFO("stderr: " << wrong.err);
  REQUIRE(wrong.status == 0);
  CHECK(full_accuracy(d / "wrong.json") == 0.0);
  CHECK(lines(wrong.err) == 1);
  CHECK_THAT(wrong.err, Contains("warning") && Contains("--task"));
  // A bad --task is a usage error before anything loads.
  expect_usage_error(run(base + " --task chess"), "--task");
  // A problem whose answer the checker cannot read counts as wrong: said once, naming its line.
  const std::string lines_text = rlkv_test::read_text(d / "p.jsonl");
  rlkv_test::write_text(d / "bad.jsonl", lines_text.substr(0, lines_text.find('\n') + 1) +
                                             "{\"id\": \"w\", \"prompt\": \"Q:1+2=\", \"answer\": \"three\"}\n");
  const Run unreadable = run("eval --model " + toy + " --data " + (d / "bad.jsonl") + " --method full");
  INFO("stderr: " << unreadable.err);
  REQUIRE(unreadable.status == 0);
  CHECK(lines(unreadable.err) == 1);
  CHECK_THAT(unreadable.err, Contains("1 of 2 problems have an answer the 'toy' checker cannot read, first ") &&
                                 Contains("bad.jsonl:2"));
}

TEST_CASE("the toy configs train on what rlkv toy data makes for their model's chain of thought") {
  // A pairs chain's data differs from the running chain's (its ref_len follows the chain).
  TempDir e;
  REQUIRE(run("toy data --n 50 --seed 1 --chain pairs --output " + (e / "p.jsonl")).status == 0);
  REQUIRE(run("toy data --n 50 --seed 1 --output " + (e / "r.jsonl")).status == 0);
  CHECK(rlkv_test::read_text(e / "p.jsonl") != rlkv_test::read_text(e / "r.jsonl"));
  TempDir d;
  struct Toy {
    const char *config, *data, *model, *chain;
  };
  for (const Toy t : {Toy{"configs/toy.ini", "data/toy-train.jsonl", "models/toy-reasoner", "running"},
                      Toy{"configs/toy2.ini", "data/toy-train.jsonl", "models/toy-reasoner-2", "running"}}) {
    INFO(t.config);
    const std::string cfg = rlkv_test::read_text(std::string(RLKV_SOURCE_DIR) + "/" + t.config);
    CHECK_THAT(cfg, Contains(std::string("path = ") + t.model) && Contains(std::string("path = ") + t.data));
    // The data's ref_len (the length reward's reference) is the chain's exact length.
    REQUIRE(run(std::string("toy data --n 2000 --seed 1 --chain ") + t.chain + " --output " + (d / "p.jsonl")).status ==
            0);
    CHECK(rlkv_test::read_text(d / "p.jsonl") == rlkv_test::read_text(std::string(RLKV_SOURCE_DIR) + "/" + t.data));
  }
  expect_usage_error(run("toy data --n 2 --seed 1 --chain tree --output " + (d / "q.jsonl")), "chain");
}

TEST_CASE("token-dropping baselines and the comparison: matched budgets run, bad requests exit 2 naming the flag") {
  TempDir d;
  const std::string cfg = std::string(RLKV_SOURCE_DIR) + "/configs/toy.ini";
  REQUIRE(run("toy data --n 12 --seed 5 --output " + (d / "p.jsonl")).status == 0);
  // The config's model path is relative to the repository: name the model, as ctest runs elsewhere.
  const std::string data =
      " --model " + std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner --data " + (d / "p.jsonl");
  const Run h2o = run("eval --config " + cfg + data + " --method h2o --sparsity 0.5");
  INFO("stdout: " << h2o.out << "\nstderr: " << h2o.err);
  REQUIRE(h2o.status == 0);
  CHECK_THAT(h2o.out, Contains("full") && Contains("h2o") && Contains("matched"));
  expect_usage_error(run("eval --config " + cfg + data + " --method snapkv"), "--sparsity");
  expect_usage_error(run("eval --config " + cfg + data + " --method rkv --budget 20"), "--budget");  // S + W = 20
  // Budgets past 2^24 tokens (whose capacities overflowed), and an H2O budget whose recent half leaves
  // nothing beyond a sink of 16 to evict: refused before any pass.
  expect_usage_error(run("eval --config " + cfg + data + " --method snapkv --budget 9223372036854775807"), "--budget");
  expect_usage_error(run("eval --config " + cfg + data + " --method h2o --budget 25 --sink 16 --window 8"), "H2O");
  expect_usage_error(run("eval --config " + cfg + data + " --method snapkv --sparsity 0.5 " +
                         "--dropping.snapkv_every=9223372036854775800"),
                     "dropping.snapkv_every");
  // At sparsity 1 a matched budget is S + W, which leaves nothing to evict: raised to the least that
  // each method accepts, and the rows run.
  for (const char* m : {"h2o", "snapkv", "rkv"}) {
    const Run all = run("eval --config " + cfg + data + " --method " + m + " --sparsity 1 --limit 3");
    INFO(m << " stderr: " << all.err);
    CHECK(all.status == 0);
  }
  expect_usage_error(run("eval --config " + cfg + data + " --method streamingllm"), "--method");
  expect_usage_error(run("compare --config " + cfg + data), "--sparsity");
  expect_usage_error(run("compare --config " + cfg + data + " --sparsity 0.5 --dropping h2o,lru"), "--dropping");
  expect_usage_error(run("compare --config " + cfg + data + " --sparsity 0.5 --dropping h2o,"), "ends with a comma");
  expect_usage_error(run("compare --config " + cfg + data + " --sparsity 0.5 --dropping ,"), "an empty name");
  // A whole comparison on the 12 problems: the rows asked for and no others.
  const auto methods = [&](const std::string& extra) {
    const Run c = run("compare --config " + cfg + data + " --sparsity 0.5 --seeds 1 --no-oracle --output " +
                      (d / "c.json") + extra);
    INFO("stderr: " << c.err);
    REQUIRE(c.status == 0);
    std::set<std::string> out;
    const nlohmann::json j = nlohmann::json::parse(rlkv_test::read_text(d / "c.json"));
    for (const auto& row : j["rows"]) out.insert(row["method"].get<std::string>());
    return out;
  };
  CHECK(methods(" --dropping none") == std::set<std::string>{"full", "streaming", "random"});
  CHECK(methods(" --dropping h2o") == std::set<std::string>{"full", "streaming", "random", "h2o"});
  // Rows of one sparsity carry one value: the mask's ceil(0.15 x 15) / 16 = 3 / 16 for the random
  // masks and for the token dropping matched to them (which wrote the 0.15 asked for); the random
  // row's n is the problems, as every row's (it was seeds x problems).
  {
    const Run c = run("compare --config " + cfg + data + " --sparsity 0.15 --seeds 2 --no-oracle --no-streaming " +
                      "--dropping h2o --output " + (d / "c15.json"));
    INFO("stderr: " << c.err);
    REQUIRE(c.status == 0);
    const nlohmann::json j = nlohmann::json::parse(rlkv_test::read_text(d / "c15.json"));
    std::map<std::string, nlohmann::json> by;
    for (const auto& row : j["rows"]) by[row["method"].get<std::string>()] = row;
    REQUIRE(by.count("random"));
    REQUIRE(by.count("h2o"));
    CHECK(by["random"]["sparsity"].get<double>() == 3.0 / 16);
    CHECK(by["h2o"]["sparsity"].get<double>() == 3.0 / 16);
    CHECK(by["random"]["n"] == by["full"]["n"]);
  }
  // A mask of another model's shape (Llama-3.1-8B-R1's 32 x 8 gates on the 4 x 4 toy model).
  const std::string llama = rlkv_test::fixture("published/rlkv/Llama-3.1-8B-R1");
  expect_usage_error(run("compare --config " + cfg + data + " --sparsity 0.5 --mask " + llama), "32");
}
