#include "launch/eval_setup.h"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"
#include "launch/tp_setup.h"
#include "masks/head_mask.h"
#include "masks/mask_spec.h"

namespace po = boost::program_options;

namespace rlkv {

void add_eval_setup_options(po::options_description& d) {
  d.add_options()("config", po::value<std::string>(), "INI config file")(
      "model", po::value<std::string>(), "model directory (model.path)")("data", po::value<std::string>(),
                                                                         "problems, JSONL {id, prompt, answer}")(
      "task", po::value<std::string>(),
      "answer checking: toy | math (default: the model directory's rlkv_task, else math)")(
      "limit", po::value<int64_t>()->default_value(0), "use the first N problems (0 = all)")(
      "output", po::value<std::string>(), "write results as JSON")("sink", po::value<int64_t>(), "cache.sink")(
      "window", po::value<int64_t>(), "cache.window")("max-new-tokens", po::value<int64_t>(), "rollout.max_new_tokens")(
      "max-batch", po::value<int64_t>(), "runtime.max_batch")("threads", po::value<int64_t>(), "runtime.threads")(
      "raw", "do not apply model.prompt_template");
}

namespace {

// The flags that stand for config keys become overrides; evaluation is greedy unless told otherwise.
Config eval_config(ParsedArgs& args) {
  const auto& vm = args.vm;
  auto flag = [&](const char* name, const char* key) {
    if (!vm.count(name)) return;
    const auto& v = vm[name].value();
    if (auto* p = boost::any_cast<std::string>(&v))
      args.overrides.push_back(std::string(key) + "=" + *p);
    else if (auto* i = boost::any_cast<int64_t>(&v))
      args.overrides.push_back(std::string(key) + "=" + std::to_string(*i));
  };
  flag("model", "model.path");
  flag("sink", "cache.sink");
  flag("window", "cache.window");
  flag("max-new-tokens", "rollout.max_new_tokens");
  flag("max-batch", "runtime.max_batch");
  flag("threads", "runtime.threads");
  const bool told = std::any_of(args.overrides.begin(), args.overrides.end(),
                                [](const std::string& o) { return o.rfind("rollout.temperature=", 0) == 0; });
  if (!told) args.overrides.insert(args.overrides.begin(), "rollout.temperature=0");
  return load_config(vm.count("config") ? vm["config"].as<std::string>() : "", args.overrides);
}

}  // namespace

EvalSetup load_eval_setup(ParsedArgs& args, const std::vector<std::string>& inputs) {
  const auto& vm = args.vm;
  EvalSetup s;
  s.cfg = eval_config(args);
  RLKV_CHECK(!s.cfg.model.path.empty(), "no model: give --model DIR");
  RLKV_CHECK(vm.count("data"), "no problems: give --data FILE.jsonl");
  if (vm.count("output")) {
    std::vector<std::string> all = model_files(s.cfg.model.path);
    for (const std::string& in : inputs)
      for (const std::string& f : mask_source_files(in)) all.push_back(f);
    all.push_back(vm["data"].as<std::string>());
    if (vm.count("config")) all.push_back(vm["config"].as<std::string>());
    check_output_file(vm["output"].as<std::string>(), "--output", all);
  }
  if (vm.count("task")) parse_reward_task(vm["task"].as<std::string>(), "--task");  // bad values fail early
  const int threads = set_intra_op_threads(s.cfg);
  s.model =
      std::make_unique<Model>(Model::load(s.cfg.model.path, parse_dtype(s.cfg.model.dtype), resolve_device(s.cfg)));
  s.tok = std::make_unique<Tokenizer>(Tokenizer::from_file(s.cfg.model.path + "/tokenizer.json"));
  const ModelConfig& mc = s.model->config();
  // Mask sources read now, so that a mistyped path or another model's shape fails before the passes.
  for (const std::string& in : inputs)
    if (!in.empty()) warn_other_windows(load_head_scores_for(in, mc), s.cfg.cache.sink, s.cfg.cache.window);
  s.reward.task = vm.count("task") ? parse_reward_task(vm["task"].as<std::string>(), "--task")
                                   : resolve_reward_task(s.cfg.reward.task, mc.task, "config key reward.task");
  s.problems = load_problems(vm["data"].as<std::string>(), dataset_fields(s.cfg));
  const int64_t limit = vm["limit"].as<int64_t>();
  RLKV_CHECK(limit >= 0, "--limit must be >= 0 (0: all problems), got ", limit);
  if (limit > 0 && int64_t(s.problems.size()) > limit) s.problems.resize(size_t(limit));
  for (const auto& p : s.problems) {
    const std::string text = vm.count("raw") ? p.prompt : apply_prompt_template(s.cfg.model.prompt_template, p.prompt);
    s.prompts.push_back(s.tok->encode(text, s.cfg.model.add_special_tokens));
    check_prompt_length(p, s.prompts.back().size(), mc.max_position_embeddings);
  }
  s.generation = generator_options(s.cfg);
  s.generation.num_threads = threads;
  return s;
}

void write_eval_json(const std::string& path, const EvalSetup& s, const std::string& data, const std::string& method,
                     const std::vector<EvalRow>& rows) {
  nlohmann::json j = {{"model", s.cfg.model.path},
                      {"data", data},
                      {"problems", int64_t(s.problems.size())},
                      {"sink", s.cfg.cache.sink},
                      {"window", s.cfg.cache.window},
                      {"max_new_tokens", s.cfg.rollout.max_new_tokens},
                      {"method", method},
                      {"rows", nlohmann::json::array()}};
  for (const EvalRow& r : rows) j["rows"].push_back(eval_row_json(r));
  write_file_atomic(path, dump_json(j, 2) + "\n");
}

std::vector<std::string> split_list(const std::string& list, const char* what, const char* noun) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    RLKV_CHECK(!item.empty(), what, ": an empty ", noun, " in '", list, "'");
    out.push_back(item);
  }
  RLKV_CHECK(list.empty() || list.back() != ',', what, ": '", list, "' ends with a comma");
  return out;
}

std::vector<double> parse_fractions(const std::string& list, const char* what) {
  std::vector<double> out;
  for (const std::string& item : split_list(list, what, "number")) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    RLKV_CHECK(end && *end == '\0' && v >= 0 && v <= 1, what, ": '", item, "' is not a number in [0, 1]");
    out.push_back(v);
  }
  RLKV_CHECK(!out.empty(), what, ": empty list");
  return out;
}

}  // namespace rlkv
