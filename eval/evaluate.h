// Evaluation of a model on a problem set under head masks: accuracy (the training verifier of
// rewards/), generated length, runaway (length-capped) and repetition rates, and the KV bytes each
// sequence held at its final length (the formula of docs/design.md section 5). Greedy unless the
// generator options say otherwise.
//
// Methods (one or more rows each):
//   full         every head full                      streaming   every head compressed
//   rlkv         a mask from scores at each sparsity  random      `seeds` random masks per sparsity
//   single-head  full, then each head compressed alone (one row per head, with its accuracy drop)
//   h2o | snapkv | rkv  token dropping on every head (runtime/eviction.h): at a fixed budget, or, for
//                each sparsity s, at the budget a head mask of sparsity s holds: per problem
//                round((1 - s) x L) + S + W tokens per head, L that problem's full-cache length (a
//                full pass runs first and is the first row)
// Thread safety: an Evaluator is used by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "problems/dataset.h"
#include "rewards/reward.h"
#include "runtime/eviction.h"
#include "runtime/generator.h"

namespace rlkv {

class Model;
class Tokenizer;

struct EvalRow {
  std::string method;
  double sparsity = 0;  // fraction of KV heads compressed
  std::string detail;   // seed list, head, mask source
  int64_t n = 0;
  double accuracy = 0, accuracy_std = 0;
  double mean_length = 0, truncated = 0, repetition = 0;
  double kv_bytes = 0, kv_fraction = 0;  // mean per sequence at its final length, and vs all heads full
  int64_t layer = -1, head = -1;
  double drop = 0;  // single-head: accuracy drop against full
};

// What `rlkv eval` asks for beyond the problems: the method, its mask source and sparsities.
struct EvalRequest {
  std::string method = "full";     // full | rlkv | random | streaming | single-head | h2o | snapkv | rkv
  std::string mask;                // rlkv: a mask source (masks/mask_spec.h)
  std::vector<double> sparsities;  // rlkv, random; token dropping: budgets matched to these
  int64_t seeds = 5;               // random: masks per sparsity
  int64_t budget = 0;              // token dropping: a fixed budget (tokens per head) instead
};

// Checks the method and its arguments (UserError naming the flag).
void check_eval_request(const EvalRequest& r);
// h2o, snapkv or rkv.
bool is_token_dropping(const std::string& method);
// How many generation passes over the problems `r` takes on a model of `heads` KV heads.
int64_t eval_passes(const EvalRequest& r, int64_t heads);

class Evaluator {
 public:
  // `prompts[i]` are the token ids of `problems[i]`'s prompt; `total_passes` sizes the progress bar
  // (shown on a terminal only).
  Evaluator(const Model& m, const Tokenizer& tok, GeneratorOptions go, std::vector<std::vector<int32_t>> prompts,
            std::vector<Problem> problems, const RewardOptions& reward, int64_t total_passes);

  // One pass over every problem with the head mask `keep` ([L * H_kv], 1 = full).
  EvalRow run(const std::vector<uint8_t>& keep);
  // One pass with a token-dropping method on every head, `budgets[i]` tokens per head for problem i.
  EvalRow run_dropping(EvictionMethod method, const std::vector<int64_t>& budgets);
  // The rows of a token-dropping request (a full pass first when budgets are matched).
  std::vector<EvalRow> run_dropping(const EvalRequest& q);
  // `seeds` random masks at sparsity s: their mean row, with the spread of accuracy over seeds.
  EvalRow run_random(double sparsity, int64_t seeds);
  const Model& model() const { return model_; }
  const GeneratorOptions& options() const { return go_; }
  // Prompt + generated tokens of each problem in the last pass.
  const std::vector<int64_t>& last_lengths() const { return last_lengths_; }
  // Every row of a request.
  std::vector<EvalRow> run(const EvalRequest& r);

  // Ends the progress line (on a terminal).
  void finish_progress() const;
  // Warns when not one response had an answer the task's checker could find (the accuracies are
  // then 0 by construction: the likely cause is the wrong task). `declared_task` is the model
  // directory's rlkv_task ("" when it declares none).
  void warn_if_nothing_extracted(const std::string& declared_task) const;

 private:
  void tick();
  // The generator over `reqs`, scored: accuracy, lengths, and KV bytes from `rows_held` (rows of K
  // and of V a result's sequence held, over layers and KV heads) against every head full.
  EvalRow pass(const GeneratorOptions& go, const std::vector<GenerationRequest>& reqs,
               const std::function<int64_t(const GenerationResult&)>& rows_held);
  std::vector<int64_t> last_lengths_;

  const Model& model_;
  const Tokenizer& tok_;
  GeneratorOptions go_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<Problem> problems_;
  RewardOptions reward_;
  std::vector<Reference> refs_;
  int64_t total_, done_ = 0;
  int64_t scored_ = 0, extracted_ = 0;  // responses scored, and those with an extractable answer
  bool tty_;
};

// The fraction of `heads` a mask at sparsity s compresses (heads_compressed / heads): what its rows
// report, and what token dropping is matched to.
double mask_sparsity(int64_t heads, double s);

// Per problem, the budget matched to a head mask of sparsity s at the problem's full-cache length L:
// round((1 - s) L) + S + W tokens per head, at least the least budget `m` accepts
// (min_eviction_budget; S + W alone at s = 1 leaves nothing to evict). Every head gets the full heads'
// share (1 - s) L plus a whole ring, (1 - s)(S + W) more than the mask holds per head on average
// ((1 - s) L + s (S + W)): the match errs in token dropping's favour, and the bytes each method held
// are reported beside its accuracy.
std::vector<int64_t> matched_budgets(const std::vector<int64_t>& full_lengths, double s, EvictionMethod m,
                                     const GeneratorOptions& go);

nlohmann::json eval_row_json(const EvalRow& r);
// The rows as a table on stdout; for single-head rows, also the layers x heads table of drops.
void print_eval_rows(const std::vector<EvalRow>& rows, int64_t num_layers, int64_t num_kv_heads);
// single-head: the accuracy drops, clipped to [0, 1], as DIR/adapter_weights.tsv (a mask source).
void write_single_head_scores(const std::string& dir, const std::vector<EvalRow>& rows, int64_t num_layers,
                              int64_t num_kv_heads);

}  // namespace rlkv
