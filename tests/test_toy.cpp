// The embedded toy task and trainer: exact task format, tokenizer, a few training steps
// (the loss falls), and a saved model that reloads with identical logits. No test retrains the
// shipped model.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <tuple>

#include "core/error.h"
#include "runtime/model.h"
#include "runtime/model_writer.h"
#include "runtime/tokenizer.h"
#include "test_models.h"
#include "test_util.h"
#include "toy/toy_task.h"
#include "toy/toy_trainer.h"

using namespace rlkv;

TEST_CASE("toy problems follow the task format exactly") {
  ToyProblem p{{23, 45, 12, 67, 30, 18}};
  REQUIRE(p.prompt() == "Q:23+45+12+67+30+18=");
  REQUIRE(p.response() == "23+45=68;68+12=80;80+67=147;147+30=177;177+18=195;A:195");
  REQUIRE(p.answer() == 195);
  std::mt19937_64 rng(5);
  ToyTaskOptions o;
  std::set<size_t> ks;
  for (int i = 0; i < 500; ++i) {
    ToyProblem q = toy_problem(rng, o);
    ks.insert(q.numbers.size());
    std::set<int64_t> distinct(q.numbers.begin(), q.numbers.end());
    REQUIRE(distinct.size() == q.numbers.size());
    for (int64_t x : q.numbers) REQUIRE((x >= 10 && x <= 99));
    int64_t got = 0;
    REQUIRE(toy_extract_answer(q.response(), got));
    REQUIRE(got == q.answer());
  }
  REQUIRE(ks == std::set<size_t>{6, 7, 8, 9, 10});
  o.k_max = 100;
  REQUIRE_THROWS_AS(toy_problem(rng, o), UserError);  // 100 distinct operands do not fit in [10, 99]
}

TEST_CASE("toy_max_response_tokens and toy_max_sequence_tokens bound every problem drawn") {
  // The bounds size the held-out evaluation's token cap and the check against the model's positions:
  // a response longer than the cap could never be right.
  for (const ToyChain chain : {ToyChain::kRunning, ToyChain::kPairs})
    for (const auto& [kmin, kmax, lo, hi] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{6, 10, 10, 99},
                                             {10, 10, 990, 999},
                                             {6, 6, 100000, 999999},
                                             {2, 40, 0, 9999}}) {
      ToyTaskOptions o;
      o.k_min = kmin, o.k_max = kmax, o.num_min = lo, o.num_max = hi, o.chain = chain;
      std::mt19937_64 rng(17);
      int64_t longest = 0;
      for (int i = 0; i < 300; ++i) {
        const ToyProblem p = toy_problem(rng, o);
        const int64_t r = int64_t(p.response().size()), all = 1 + int64_t(p.prompt().size()) + r + 1;
        longest = std::max(longest, r);
        INFO(toy_chain_name(chain) << " k " << kmin << ".." << kmax << " in [" << lo << ", " << hi << "]");
        REQUIRE(r <= toy_max_response_tokens(o));
        REQUIRE(all <= toy_max_sequence_tokens(o));
      }
      CHECK(toy_max_response_tokens(o) < 2 * longest);  // a bound, not a guess far above
    }
  // With 10 operands of 990-999 the exact responses reach 132 tokens: the old cap, 12 k + 8, was 128.
  ToyTaskOptions wide;
  wide.k_min = wide.k_max = 10, wide.num_min = 990, wide.num_max = 999;
  CHECK(toy_max_response_tokens(wide) >= 132);
}

TEST_CASE("the pairs chain adds the two oldest unused values: operands, then step results") {
  ToyProblem p{{23, 45, 12, 67, 30, 18}, ToyChain::kPairs};
  REQUIRE(p.prompt() == "Q:23+45+12+67+30+18=");
  REQUIRE(p.response() == "23+45=68;12+67=79;30+18=48;68+79=147;48+147=195;A:195");
  // An odd count mixes a prompt operand with an earlier result in one step.
  ToyProblem q{{23, 45, 12, 67, 30, 18, 50}, ToyChain::kPairs};
  REQUIRE(q.response() == "23+45=68;12+67=79;30+18=48;50+68=118;79+48=127;118+127=245;A:245");
  REQUIRE(q.answer() == 245);
  ToyTaskOptions o;
  o.chain = parse_toy_chain("pairs");
  REQUIRE(std::string(toy_chain_name(o.chain)) == "pairs");
  REQUIRE_THROWS_AS(parse_toy_chain("tree"), UserError);
  std::mt19937_64 a(9), b(9);
  ToyTaskOptions running;
  for (int i = 0; i < 300; ++i) {
    const ToyProblem x = toy_problem(a, o), y = toy_problem(b, running);
    REQUIRE(x.chain == ToyChain::kPairs);
    REQUIRE(x.numbers == y.numbers);  // the same draws: only the chain differs
    REQUIRE(x.prompt() == y.prompt());
    int64_t got = 0;
    REQUIRE(toy_extract_answer(x.response(), got));
    REQUIRE(got == x.answer());
    // K - 1 steps, each "a+b=c;" with c = a + b.
    const std::string r = x.response();
    REQUIRE(std::count(r.begin(), r.end(), ';') == int64_t(x.numbers.size()) - 1);
  }
  // The dataset's ref_len follows the chain.
  REQUIRE(toy_dataset_jsonl(20, 3, o) != toy_dataset_jsonl(20, 3, running));
}

TEST_CASE("toy answers: the integer after the last A:") {
  int64_t v = 0;
  REQUIRE(toy_extract_answer("1+2=3;A:3", v));
  REQUIRE(v == 3);
  REQUIRE(toy_extract_answer("A:1;A:42", v));
  REQUIRE(v == 42);
  REQUIRE_FALSE(toy_extract_answer("1+2=3;", v));
  REQUIRE_FALSE(toy_extract_answer("A:", v));
  REQUIRE_FALSE(toy_extract_answer("A:" + std::string(40, '9'), v));  // no overflow, no answer
}

TEST_CASE("the toy tokenizer.json loads in the runtime tokenizer, one token per character") {
  const Tokenizer tok = Tokenizer::from_json(toy_tokenizer_json(), "toy tokenizer.json");
  REQUIRE(tok.vocab_size() == kToyVocab);
  const std::string text = "Q:23+45=68;A:68";
  std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/true);
  std::vector<int32_t> want{kToyBos};
  for (int32_t t : toy_encode(text)) want.push_back(t);
  REQUIRE(ids == want);
  REQUIRE(tok.decode(ids, /*skip_special_tokens=*/true) == text);
  REQUIRE(tok.is_special(kToyEos));
}

TEST_CASE("a few training steps lower the loss, the saved directory reloads with identical logits") {
  ToyTrainOptions o = rlkv_test::tiny_toy_options();
  o.steps = 40;
  o.task.k_max = 4;
  ToyTrainResult r = train_toy_model(o, {});
  REQUIRE(r.history.size() == 4);
  REQUIRE(r.history.back().loss < r.history.front().loss - 0.2);

  rlkv_test::TempDir dir;
  const std::string path = dir / "toy";
  save_hf_model(r.model, path, toy_tokenizer_json());
  const Model back = Model::load(path, at::kFloat);
  REQUIRE(back.config().num_layers == 2);
  REQUIRE(back.config().eos_token_ids == std::vector<int64_t>{kToyEos});
  std::vector<int64_t> ids{kToyBos};
  for (int32_t t : toy_encode("Q:12+34+56=12+34=46;")) ids.push_back(t);
  at::Tensor tokens = at::tensor(ids).unsqueeze(0);
  at::Tensor a = r.model.logits(r.model.forward_dense(tokens));
  at::Tensor b = back.logits(back.forward_dense(tokens));
  REQUIRE(at::equal(a, b));
}

TEST_CASE("saving into an existing directory replaces the model's files and keeps every other entry") {
  ToyTrainOptions o = rlkv_test::tiny_toy_options();
  o.steps = 1;
  const ToyTrainResult r = train_toy_model(o, {});
  rlkv_test::TempDir dir;
  const std::string path = dir / "toy";
  std::filesystem::create_directories(path + "/eval");
  rlkv_test::write_text(path + "/README.md", "model card");
  rlkv_test::write_text(path + "/config.json", "{}");  // an older model's
  save_hf_model(r.model, path, toy_tokenizer_json());
  CHECK(rlkv_test::read_text(path + "/README.md") == "model card");
  CHECK(std::filesystem::is_directory(path + "/eval"));
  CHECK(Model::load(path, at::kFloat).config().num_layers == r.model.config().num_layers);
  // A trailing "/." names the same directory.
  save_hf_model(r.model, path + "/.", toy_tokenizer_json());
  CHECK(rlkv_test::read_text(path + "/README.md") == "model card");
  // Refused, before anything is written: a file in the way, sharded weights a loader would prefer.
  rlkv_test::write_text(dir / "file", "keep");
  CHECK_THROWS_WITH(save_hf_model(r.model, dir / "file", "{}"), Catch::Matchers::Contains("not a directory"));
  CHECK(rlkv_test::read_text(dir / "file") == "keep");
  rlkv_test::write_text(path + "/model.safetensors.index.json", "{}");
  CHECK_THROWS_WITH(check_model_dir(path), Catch::Matchers::Contains("sharded"));
}
