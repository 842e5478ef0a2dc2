#include "eval/compare.h"

#include <cmath>

#include "core/error.h"
#include "masks/head_mask.h"
#include "masks/mask_spec.h"
#include "runtime/model.h"

namespace rlkv {

void check_compare_request(const CompareRequest& r) {
  RLKV_CHECK(!r.sparsities.empty(), "rlkv compare needs --sparsity S[,S...]");
  for (double s : r.sparsities) RLKV_CHECK(s >= 0 && s <= 1, "--sparsity: ", s, " is not in [0, 1]");
  for (const std::string& m : r.dropping) parse_eviction_method(m, "--dropping");
  RLKV_CHECK(r.random_seeds >= 0 && r.random_seeds <= 1000, "--seeds must be in 0..1000");
}

int64_t compare_passes(const CompareRequest& r, int64_t heads) {
  const int64_t S = int64_t(r.sparsities.size());
  int64_t masks = (r.rlkv_mask.empty() ? 0 : 1) + (r.duo_retrieval.empty() ? 0 : 1) + (r.duo_reasoning.empty() ? 0 : 1);
  masks += r.oracle ? 1 : 0;
  return 1 + (r.oracle ? heads : 0) + S * (masks + int64_t(r.dropping.size()) + r.random_seeds) + (r.streaming ? 1 : 0);
}

namespace {

// The rows of one head ranking (a mask source, or the oracle's drops) at every sparsity.
void add_ranked(Evaluator& ev, const HeadScores& scores, const std::string& method, const std::string& detail,
                const std::vector<double>& sparsities, std::vector<EvalRow>& rows) {
  for (double s : sparsities) {
    EvalRow r = ev.run(mask_at_sparsity(scores, s));
    r.method = method;
    r.detail = detail;
    rows.push_back(r);
  }
}

// The single-head-ablation ranking: each head compressed alone; its score is the accuracy it then
// keeps relative to full (higher = more needed), so the global quantile compresses the heads whose
// lone compression costs least.
HeadScores oracle_scores(Evaluator& ev, const ModelConfig& mc, double full_accuracy) {
  HeadScores hs;
  hs.num_layers = mc.num_layers;
  hs.num_kv_heads = mc.num_kv_heads;
  hs.source = "single-head ablation";
  hs.format = "oracle";
  const int64_t heads = mc.num_layers * mc.num_kv_heads;
  for (int64_t i = 0; i < heads; ++i) {
    std::vector<uint8_t> keep(size_t(heads), 1);
    keep[size_t(i)] = 0;
    hs.values.push_back(std::clamp(full_accuracy - ev.run(keep).accuracy, 0.0, 1.0));
  }
  return hs;
}

}  // namespace

std::vector<EvalRow> run_compare(Evaluator& ev, const CompareRequest& r) {
  const ModelConfig& mc = ev.model().config();
  const int64_t heads = mc.num_layers * mc.num_kv_heads;
  std::vector<EvalRow> rows;
  EvalRow full = ev.run(std::vector<uint8_t>(size_t(heads), 1));
  full.method = "full";
  rows.push_back(full);
  const std::vector<int64_t> lengths = ev.last_lengths();
  if (!r.rlkv_mask.empty())
    add_ranked(ev, load_head_scores_for(r.rlkv_mask, mc), "rlkv", "learned", r.sparsities, rows);
  if (!r.duo_retrieval.empty())
    add_ranked(ev, load_head_scores_for(r.duo_retrieval, mc), "duo-retrieval", "DuoAttention", r.sparsities, rows);
  if (!r.duo_reasoning.empty())
    add_ranked(ev, load_head_scores_for(r.duo_reasoning, mc), "duo-reasoning", "DuoAttention", r.sparsities, rows);
  if (r.oracle) add_ranked(ev, oracle_scores(ev, mc, full.accuracy), "oracle", "single-head", r.sparsities, rows);
  const GeneratorOptions& go = ev.options();
  for (const std::string& m : r.dropping)
    for (double s : r.sparsities) {
      const EvictionMethod method = parse_eviction_method(m, "--dropping");
      const double real = mask_sparsity(heads, s);  // as the mask rows beside it
      EvalRow row = ev.run_dropping(method, matched_budgets(lengths, real, method, go));
      row.sparsity = real;
      row.detail = "matched";
      rows.push_back(row);
    }
  if (r.streaming) {
    EvalRow st = ev.run(std::vector<uint8_t>(size_t(heads), 0));
    st.method = "streaming";
    rows.push_back(st);
  }
  if (r.random_seeds > 0)
    for (double s : r.sparsities) rows.push_back(ev.run_random(s, r.random_seeds));
  return rows;
}

}  // namespace rlkv
