// Evaluation of a model on a problem set under head masks: accuracy (the training verifier of
// rewards/), generated length, runaway (length-capped) and repetition rates, and the KV bytes each
// sequence held at its final length (the formula of docs/design.md section 5). Greedy unless the
// generator options say otherwise.
//
// Methods (one or more rows each):
//   full         every head full                      streaming   every head compressed
//   rlkv         a mask from scores at each sparsity  random      `seeds` random masks per sparsity
//   single-head  full, then each head compressed alone (one row per head, with its accuracy drop)
// Thread safety: an Evaluator is used by one thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "problems/dataset.h"
#include "rewards/reward.h"
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
  std::string method = "full";     // full | rlkv | random | streaming | single-head
  std::string mask;                // rlkv: a mask source (masks/mask_spec.h)
  std::vector<double> sparsities;  // rlkv, random
  int64_t seeds = 5;               // random: masks per sparsity
};

// Checks the method and its arguments (UserError naming the flag).
void check_eval_request(const EvalRequest& r);
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

nlohmann::json eval_row_json(const EvalRow& r);
// The rows as a table on stdout; for single-head rows, also the layers x heads table of drops.
void print_eval_rows(const std::vector<EvalRow>& rows, int64_t num_layers, int64_t num_kv_heads);
// single-head: the accuracy drops, clipped to [0, 1], as DIR/adapter_weights.tsv (a mask source).
void write_single_head_scores(const std::string& dir, const std::vector<EvalRow>& rows, int64_t num_layers,
                              int64_t num_kv_heads);

}  // namespace rlkv
