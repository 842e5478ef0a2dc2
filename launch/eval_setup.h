// What `rlkv eval` and `rlkv compare` share: their options for the model, the problems and the
// decoding (greedy unless the config says otherwise), and what those load: the config, the model,
// the prompts and the answer checker, ready for an Evaluator (eval/evaluate.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "eval/evaluate.h"
#include "launch/cli.h"
#include "problems/dataset.h"
#include "rewards/reward.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace rlkv {

// --config, --model, --data, --task, --limit, --output, --sink, --window, --max-new-tokens,
// --max-batch, --threads, --raw.
void add_eval_setup_options(boost::program_options::options_description& d);

struct EvalSetup {
  Config cfg;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::vector<Problem> problems;
  std::vector<std::vector<int32_t>> prompts;
  RewardOptions reward;
  GeneratorOptions generation;
};

// Validates the options (UserError naming the flag; --output must be none of the model's files, the
// data, the config or a file the command's mask `inputs` read: see mask_source_files), then loads everything.
EvalSetup load_eval_setup(ParsedArgs& args, const std::vector<std::string>& inputs = {});

// `--output`: the rows as JSON beside what they were measured on (model, data, windows, method).
void write_eval_json(const std::string& path, const EvalSetup& s, const std::string& data, const std::string& method,
                     const std::vector<EvalRow>& rows);

// The items of a comma-separated list; an empty item (`noun`: "name", "number") or a trailing comma
// is a UserError naming `what`.
std::vector<std::string> split_list(const std::string& list, const char* what, const char* noun);

// A comma-separated list of fractions in [0, 1] (UserError naming `what`).
std::vector<double> parse_fractions(const std::string& list, const char* what);

}  // namespace rlkv
