// Head score tables and the global-quantile mask rule, on the published reference files.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "masks/head_mask.h"
#include "masks/mask_export.h"
#include "test_util.h"

using namespace rlkv;
using Catch::Matchers::Contains;

namespace {
std::string reference(const std::string& rel) { return std::string(RLKV_TEST_FIXTURES) + "/published/" + rel; }
int64_t count_compressed(const std::vector<uint8_t>& m) { return std::count(m.begin(), m.end(), 0); }
}  // namespace

TEST_CASE("published score files load with their shapes") {
  auto llama = load_head_scores(reference("rlkv/Llama-3.1-8B-R1"));
  REQUIRE(llama.num_layers == 32);
  REQUIRE(llama.num_kv_heads == 8);
  auto qwen = load_head_scores(reference("duo_attn/Qwen-2.5-7B-R1/full_attention_heads.tsv"));
  REQUIRE(qwen.num_layers == 28);
  REQUIRE(qwen.num_kv_heads == 4);
}

TEST_CASE("mask at sparsity s compresses the s-fraction of heads with the lowest scores") {
  auto s = load_head_scores(reference("rlkv/Llama-3.1-8B-R1"));
  const int64_t n = s.num_layers * s.num_kv_heads;
  const std::vector<double> ranked = ranked_scores(s);
  for (double sp : {0.1, 0.2, 0.5, 0.8, 1.0}) {
    auto m = mask_at_sparsity(s, sp);
    // The paper's rule: every head at or above the s-quantile (numpy's linear interpolation) of the
    // ranked values stays full; they are distinct here.
    const double thr = quantile_linear(ranked, sp);
    for (int64_t i = 0; i < n; ++i) REQUIRE(m[size_t(i)] == (ranked[size_t(i)] >= thr ? 1 : 0));
    const int64_t c = count_compressed(m);
    REQUIRE(c == heads_compressed(n, sp));
    REQUIRE(c == int64_t(std::ceil(sp * double(n - 1))));
    double max_dropped = -1, min_kept = 2;
    for (int64_t i = 0; i < n; ++i) {
      const double v = std::clamp(s.values[size_t(i)], 0.0, 1.0);
      if (m[size_t(i)])
        min_kept = std::min(min_kept, v);
      else
        max_dropped = std::max(max_dropped, v);
    }
    REQUIRE(max_dropped <= min_kept + 1e-6);
  }
  REQUIRE(count_compressed(mask_at_sparsity(s, 0.0)) == 0);
}

TEST_CASE("quantile matches numpy's linear interpolation") {
  REQUIRE(quantile_linear({1, 2, 3, 4}, 0.5) == Approx(2.5));
  REQUIRE(quantile_linear({4, 1, 3, 2}, 0.25) == Approx(1.75));
  REQUIRE(quantile_linear({7}, 0.9) == Approx(7));
}

TEST_CASE("bad score tables are UserErrors naming file and line") {
  REQUIRE_THROWS_WITH(parse_head_scores("0.1\t0.2\n0.3\n", "x.tsv"), Contains("x.tsv:2"));
  REQUIRE_THROWS_WITH(parse_head_scores("0.1\tabc\n", "x.tsv"), Contains("abc"));
  REQUIRE_THROWS_WITH(parse_head_scores("0.1\tnan\n", "x.tsv"), Contains("x.tsv:1"));
  REQUIRE_THROWS_WITH(parse_head_scores("", "x.tsv"), Contains("no scores"));
  REQUIRE_THROWS_WITH(load_head_scores("/nonexistent"), Contains("/nonexistent"));
  REQUIRE_THROWS_WITH(parse_head_scores(std::string("0.1\0000.5\t0.2\n", 12), "x.tsv"),
                      Contains("x.tsv:1") && Contains("not a finite number"));  // a NUL inside a cell
  // Lines of other whitespace (vertical tab, form feed) are blank lines, not layers without heads.
  REQUIRE_THROWS_WITH(parse_head_scores("\v\n\f \n", "x.tsv"), Contains("no scores"));
  const HeadScores s = parse_head_scores("0.1\t0.2\n\v\n0.3 0.4\r\n", "x.tsv");
  CHECK(s.num_layers == 2);
  CHECK(s.num_kv_heads == 2);
}

// The windows a mask records travel into exports (DuoAttention's recent_size): a value that is not a
// usable window is refused, not dropped or passed on.
TEST_CASE("a mask file's recorded windows are integers in range and its keys unique, or it is refused naming the key") {
  rlkv_test::TempDir d;
  auto mask = [&](const std::string& extra) {
    const std::string path = d / "m.json";
    rlkv_test::write_text(path, R"({"format": "rlkv-head-mask/v1", "scores": [[0.5, 1.0]])" + extra + "}");
    return path;
  };
  const HeadScores ok = load_head_scores(mask(R"(, "sink": 4, "window": 16)"));
  CHECK(ok.sink == 4);
  CHECK(ok.window == 16);
  CHECK(load_head_scores(mask(R"(, "sink": null)")).sink == -1);  // absent: unknown
  for (const char* bad : {R"(, "sink": -7)", R"(, "sink": "4")", R"(, "sink": 99999999999999999999)",
                          R"(, "window": 4611686018427387904)", R"(, "window": 0)", R"(, "window": 2.5)"}) {
    INFO(bad);
    REQUIRE_THROWS_WITH(load_head_scores(mask(bad)), Contains("m.json: '") && Contains("must be an integer in"));
  }
  // A "format" that is not a string is not the format (it threw a JSON type error, exit 1).
  for (const char* fmt : {"1", "null", "[\"rlkv-head-mask/v1\"]"}) {
    rlkv_test::write_text(d / "f.json", std::string(R"({"format": )") + fmt + R"(, "scores": [[0.5, 1.0]]})");
    REQUIRE_THROWS_WITH(load_head_scores(d / "f.json"), Contains("not an rlkv-head-mask/v1 file"));
  }
  // A key given twice (a hand edit that appended new scores) is refused rather than the last one kept.
  REQUIRE_THROWS_WITH(load_head_scores(mask(R"(, "scores": [[1.0, 0.5]])")),
                      Contains("m.json: mask file: duplicate key 'scores'"));
  std::filesystem::create_directories(d / "duo");
  rlkv_test::write_text(d / "duo/full_attention_heads.tsv", "1\t0\n");
  rlkv_test::write_text(d / "duo/config.json", R"({"sink_size": 64, "recent_size": -1})");
  REQUIRE_THROWS_WITH(load_head_scores(d / "duo"), Contains("config.json: 'recent_size' must be an integer in 1.."));
  rlkv_test::write_text(d / "duo/config.json", R"({"sink_size": 64, "sink_size": 4})");
  REQUIRE_THROWS_WITH(load_head_scores(d / "duo"),
                      Contains("config.json: DuoAttention config: duplicate key 'sink_size'"));
}

TEST_CASE("a subnormal score exports as JSON and reads back") {
  // 1e-310 parses from a TSV; the JSON export re-read its 9-digit text with std::stod, which throws
  // out_of_range for a subnormal (exit 1, "failed: stod").
  rlkv_test::TempDir d;
  const HeadScores s = parse_head_scores("0.5\t1e-310\n", "x.tsv");
  export_json(d / "m.json", s, mask_at_sparsity(s, 0.5), ExportInfo{});
  const HeadScores back = load_head_scores(d / "m.json");
  REQUIRE(back.values.size() == 2);
  CHECK(back.values[0] == 0.5);
  CHECK(back.values[1] > 0);
  CHECK(back.values[1] < 1e-300);
}

TEST_CASE("random masks compress as many heads as a score mask at the same sparsity, reproducibly") {
  auto a = random_mask(256, 0.5, 3), b = random_mask(256, 0.5, 3), c = random_mask(256, 0.5, 4);
  REQUIRE(count_compressed(a) == 128);
  REQUIRE(a == b);
  REQUIRE(a != c);
  // round(s * n) differed from the quantile rule's count: 153 against 154 of 256 at 0.6, 12 against
  // 11 of 112 at 0.1, all 16 against 15 at 1.
  for (const auto& [n, sp] : std::vector<std::pair<int64_t, double>>{{256, 0.6}, {112, 0.1}, {16, 1.0}, {16, 0.15}}) {
    HeadScores sc;
    sc.num_layers = 1;
    sc.num_kv_heads = n;
    for (int64_t i = 0; i < n; ++i) sc.values.push_back(double((i * 37) % n) / double(n));
    INFO(n << " heads at " << sp);
    CHECK(count_compressed(random_mask(n, sp, 1)) == count_compressed(mask_at_sparsity(sc, sp)));
  }
}

TEST_CASE("scores that tie exactly after the tie-breaking noise still give the requested count") {
  // 0.5000005 + 1e-6 * 0.5 / 2 == 0.5 + 1e-6 * 1.5 / 2: the quantile rule kept both heads at 0.5.
  HeadScores s;
  s.num_layers = 1;
  s.num_kv_heads = 2;
  s.values = {0.5000005, 0.5};
  const std::vector<double> v = ranked_scores(s);
  REQUIRE(v[0] == v[1]);
  CHECK(mask_at_sparsity(s, 0.5) == std::vector<uint8_t>{0, 1});  // the later head is kept
}

TEST_CASE("a mask file's shape fields must match its scores, and a DuoAttention config holds both windows") {
  rlkv_test::TempDir d;
  const std::string scores = R"("scores": [[0.5, 1.0], [0.2, 0.9]])";
  rlkv_test::write_text(d / "ok.json",
                        R"({"format": "rlkv-head-mask/v1", "num_layers": 2, "num_kv_heads": 2, )" + scores + "}");
  CHECK(load_head_scores(d / "ok.json").num_layers == 2);
  // A hand edit of the shape changed nothing: refused, naming the key.
  rlkv_test::write_text(d / "bad.json",
                        R"({"format": "rlkv-head-mask/v1", "num_layers": 3, "num_kv_heads": 2, )" + scores + "}");
  REQUIRE_THROWS_WITH(load_head_scores(d / "bad.json"),
                      Contains("bad.json: 'num_layers' is 3 but 'scores' has 2 rows of 2"));
  rlkv_test::write_text(d / "bad2.json", R"({"format": "rlkv-head-mask/v1", "num_kv_heads": "2", )" + scores + "}");
  REQUIRE_THROWS_WITH(load_head_scores(d / "bad2.json"), Contains("'num_kv_heads' is \"2\""));
  // DuoAttention's loader reads both windows: one alone is refused; neither is not the pattern's config.
  std::filesystem::create_directories(d / "duo");
  rlkv_test::write_text(d / "duo/full_attention_heads.tsv", "1\t0\n");
  rlkv_test::write_text(d / "duo/config.json", R"({"sink_size": 4})");
  REQUIRE_THROWS_WITH(load_head_scores(d / "duo"), Contains("config.json: a DuoAttention config holds both") &&
                                                       Contains("this one only 'sink_size'"));
  rlkv_test::write_text(d / "duo/config.json", R"({"architectures": ["LlamaForCausalLM"]})");
  CHECK(load_head_scores(d / "duo").sink == -1);
  // The model it records travels on (export's and eval's model checks see it).
  rlkv_test::write_text(d / "duo/config.json", R"({"sink_size": 4, "recent_size": 16, "model": "m/x"})");
  const HeadScores duo = load_head_scores(d / "duo");
  CHECK(duo.model == "m/x");
  CHECK(duo.window == 16);
}

TEST_CASE("a mask computed from full-precision scores is the mask of their exported file") {
  // 0.5000005001 is written as 0.5000005, which ties 0.5 after the noise: the export wrote [[1, 0]]
  // from the full value, and a second export from that file [[1, 1]].
  rlkv_test::TempDir d;
  HeadScores s;
  s.num_layers = 1;
  s.num_kv_heads = 2;
  s.values = {0.5000005001, 0.5};
  const std::vector<uint8_t> keep = mask_at_sparsity(s, 0.5);
  ExportInfo info;
  info.sparsity = 0.5;
  export_json(d / "a.json", s, keep, info);
  const HeadScores back = load_head_scores(d / "a.json");
  CHECK(mask_at_sparsity(back, 0.5) == keep);
  CHECK(keep == std::vector<uint8_t>{0, 1});
  export_json(d / "b.json", back, mask_at_sparsity(back, 0.5), info);
  CHECK(rlkv_test::read_text(d / "a.json") == rlkv_test::read_text(d / "b.json"));
}
