// config.json parsing for the supported architectures, and refusals for what is not supported.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/error.h"
#include "runtime/model_config.h"
#include "test_util.h"

using namespace rlkv;
using Catch::Matchers::Contains;

TEST_CASE("fixture configs parse with their architecture's features") {
  auto llama = load_model_config(rlkv_test::fixture("models/llama_tiny"));
  REQUIRE(llama.model_type == "llama");
  REQUIRE(llama.num_kv_heads == 2);
  REQUIRE(llama.group_size() == 3);
  REQUIRE(llama.rope_scaling.type == "llama3");
  REQUIRE(!llama.tie_word_embeddings);
  REQUIRE(llama.eos_token_ids == std::vector<int64_t>{604});
  auto qwen2 = load_model_config(rlkv_test::fixture("models/qwen2_tiny"));
  REQUIRE(qwen2.attention_bias);
  REQUIRE(qwen2.tie_word_embeddings);
  auto qwen3 = load_model_config(rlkv_test::fixture("models/qwen3_tiny"));
  REQUIRE(qwen3.qk_norm);
  REQUIRE(qwen3.head_dim == 24);
  REQUIRE(qwen3.hidden_size / qwen3.num_q_heads != qwen3.head_dim);
}

TEST_CASE("llama3 rope scaling divides long wavelengths by the factor and keeps short ones") {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000;
  auto plain = rope_inv_freq(c);
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.original_max_position = 8192;
  auto scaled = rope_inv_freq(c);
  REQUIRE(scaled.front() == Approx(plain.front()));                  // wavelength 2 pi: high frequency kept
  REQUIRE(scaled.back() == Approx(plain.back() / 8).epsilon(1e-9));  // longest wavelength: divided
}

TEST_CASE("unsupported or malformed config.json is a UserError naming file and key") {
  const std::string base = R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1)";
  REQUIRE_NOTHROW(parse_model_config(base + "}", "c.json"));
  REQUIRE_THROWS_WITH(parse_model_config("{not json", "c.json"), Contains("c.json") && Contains("JSON"));
  REQUIRE_THROWS_WITH(parse_model_config("[1]", "c.json"), Contains("object"));
  REQUIRE_THROWS_WITH(parse_model_config(base + R"(, "num_key_value_heads": 2})", "c.json"),
                      Contains("c.json: model config: duplicate key 'num_key_value_heads'"));
  REQUIRE_THROWS_WITH(parse_model_config(R"({"model_type": "gpt2"})", "c.json"), Contains("gpt2"));
  REQUIRE_THROWS_WITH(parse_model_config(R"({"model_type": "llama"})", "c.json"), Contains("vocab_size"));
  REQUIRE_THROWS_WITH(parse_model_config(base + R"(, "hidden_size": "big"})", "c.json"), Contains("hidden_size"));
  REQUIRE_THROWS_WITH(parse_model_config(base + R"(, "num_key_value_heads": 3})", "c.json"),
                      Contains("num_key_value_heads"));
  REQUIRE_THROWS_WITH(parse_model_config(base + R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4}})", "c.json"),
                      Contains("yarn"));
  REQUIRE_THROWS_WITH(parse_model_config(base + R"(, "hidden_act": "gelu"})", "c.json"), Contains("gelu"));
  REQUIRE_THROWS_WITH(
      parse_model_config(R"({"model_type": "mistral", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
      "num_hidden_layers": 1, "num_attention_heads": 2, "sliding_window": 4096, "max_position_embeddings": 32768})",
                         "c.json"),
      Contains("sliding_window"));
  REQUIRE_THROWS_WITH(load_model_config("/nonexistent/dir"), Contains("/nonexistent/dir/config.json"));
}
