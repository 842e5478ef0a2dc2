// The paper's comparison in one call (`rlkv compare`): every method on one problem set at each
// sparsity, one Evaluator, so that all rows share the prompts, the greedy decoding, the verifier
// and the byte accounting (KV bytes each sequence really held; head masks at their final length).
//   full                      once, the reference (its lengths also set the matched token budgets)
//   rlkv                      a learned mask (checkpoint or score file) at each sparsity
//   duo-retrieval, duo-reasoning   DuoAttention gates (`rlkv duo-train` outputs), when given
//   oracle                    the single-head-ablation ranking (compress the heads whose lone
//                             compression costs least), from a single-head pass run here
//   h2o, snapkv, rkv          token dropping at the budget a head mask of that sparsity holds
//   streaming                 every head compressed (once)
//   random                    `seeds` random masks per sparsity (mean and spread)
// Rows come in that order; the single-head pass's rows are not part of the output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/evaluate.h"

namespace rlkv {

struct CompareRequest {
  std::vector<double> sparsities;            // fractions of KV heads compressed
  std::string rlkv_mask;                     // a mask source; empty: no rlkv rows
  std::string duo_retrieval, duo_reasoning;  // DuoAttention directories; empty: those rows left out
  bool oracle = true;
  std::vector<std::string> dropping = {"h2o", "snapkv", "rkv"};
  bool streaming = true;
  int64_t random_seeds = 3;  // 0: no random rows
};

// Checks the request (UserError naming the flag).
void check_compare_request(const CompareRequest& r);
// Generation passes the comparison takes on a model of `heads` KV heads (for the progress bar).
int64_t compare_passes(const CompareRequest& r, int64_t heads);
// Runs it; the rows as print_eval_rows / eval_row_json take them.
std::vector<EvalRow> run_compare(Evaluator& ev, const CompareRequest& r);

}  // namespace rlkv
