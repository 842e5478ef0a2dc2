// `rlkv eval`: the options of an evaluation (eval/evaluate.h runs it): a table on stdout, JSON with
// --output, the single-head drops as a mask source with --scores-out.
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/config.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "eval/evaluate.h"
#include "launch/cli.h"
#include "launch/tp_setup.h"
#include "problems/dataset.h"
#include "rewards/reward.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

std::vector<double> parse_list(const std::string& s, const char* what) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    RLKV_CHECK(end && *end == '\0' && !item.empty() && v >= 0 && v <= 1, what, ": '", item,
               "' is not a number in [0, 1]");
    out.push_back(v);
  }
  RLKV_CHECK(!out.empty(), what, ": empty list");
  return out;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  po::options_description desc("rlkv eval options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "INI config file")(
      "model", po::value<std::string>(), "model directory (model.path)")("data", po::value<std::string>(),
                                                                         "problems, JSONL {id, prompt, answer}")(
      "method", po::value<std::string>()->default_value("full"), "full | rlkv | random | streaming | single-head")(
      "mask", po::value<std::string>(),
      "rlkv: head scores (adapter_weights.tsv / full_attention_heads.tsv or a directory)")(
      "sparsity", po::value<std::string>(), "rlkv / random: fractions of KV heads compressed, e.g. 0.25,0.5,0.75")(
      "seeds", po::value<int64_t>()->default_value(5), "random: masks per sparsity")(
      "task", po::value<std::string>(),
      "answer checking: toy | math (default: the model directory's rlkv_task, else math)")(
      "limit", po::value<int64_t>()->default_value(0), "use the first N problems (0 = all)")(
      "output", po::value<std::string>(), "write results as JSON")(
      "scores-out", po::value<std::string>(), "single-head: write the accuracy drops as DIR/adapter_weights.tsv")(
      "sink", po::value<int64_t>(), "cache.sink")("window", po::value<int64_t>(), "cache.window")(
      "max-new-tokens", po::value<int64_t>(), "rollout.max_new_tokens")(
      "max-batch", po::value<int64_t>(), "runtime.max_batch")("threads", po::value<int64_t>(), "runtime.threads")(
      "raw", "do not apply model.prompt_template");
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv eval --model DIR --data FILE.jsonl --method M [options] [--section.key=value ...]\n"
              << desc;
    return 0;
  }
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
  // Evaluation is greedy unless the config or an override says otherwise.
  args.overrides.insert(args.overrides.begin(), "rollout.temperature=0");
  const Config cfg = load_config(vm.count("config") ? vm["config"].as<std::string>() : "", args.overrides);
  RLKV_CHECK(!cfg.model.path.empty(), "no model: give --model DIR");
  RLKV_CHECK(vm.count("data"), "no problems: give --data FILE.jsonl");
  EvalRequest req;
  req.method = vm["method"].as<std::string>();
  if (vm.count("mask")) req.mask = vm["mask"].as<std::string>();
  if (vm.count("sparsity") && (req.method == "rlkv" || req.method == "random"))
    req.sparsities = parse_list(vm["sparsity"].as<std::string>(), "--sparsity");
  req.seeds = vm["seeds"].as<int64_t>();
  check_eval_request(req);
  RLKV_CHECK(!vm.count("scores-out") || req.method == "single-head", "--scores-out goes with --method single-head");
  if (vm.count("task")) parse_reward_task(vm["task"].as<std::string>(), "--task");  // bad values fail early

  const int threads = set_intra_op_threads(cfg);
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  const ModelConfig& mc = model.config();
  RewardOptions reward;
  reward.task = vm.count("task") ? parse_reward_task(vm["task"].as<std::string>(), "--task")
                                 : resolve_reward_task(cfg.reward.task, mc.task, "config key reward.task");
  std::vector<Problem> problems = load_problems(vm["data"].as<std::string>());
  const int64_t limit = vm["limit"].as<int64_t>();
  if (limit > 0 && int64_t(problems.size()) > limit) problems.resize(size_t(limit));
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : problems) {
    const std::string text = vm.count("raw") ? p.prompt : apply_prompt_template(cfg.model.prompt_template, p.prompt);
    prompts.push_back(tok.encode(text, cfg.model.add_special_tokens));
    RLKV_CHECK(!prompts.back().empty(), "problem ", p.id, ": prompt encodes to no tokens");
  }

  GeneratorOptions go = generator_options(cfg);
  go.num_threads = threads;

  Evaluator ev(model, tok, go, prompts, problems, reward, eval_passes(req, mc.kv_heads_total()));
  const std::vector<EvalRow> rows = ev.run(req);
  ev.finish_progress();
  print_eval_rows(rows, mc.num_layers, mc.num_kv_heads);
  ev.warn_if_nothing_extracted(mc.task);
  if (vm.count("scores-out"))
    write_single_head_scores(vm["scores-out"].as<std::string>(), rows, mc.num_layers, mc.num_kv_heads);
  if (vm.count("output")) {
    nlohmann::json j = {{"model", cfg.model.path},
                        {"data", vm["data"].as<std::string>()},
                        {"problems", int64_t(problems.size())},
                        {"sink", cfg.cache.sink},
                        {"window", cfg.cache.window},
                        {"max_new_tokens", cfg.rollout.max_new_tokens},
                        {"method", req.method},
                        {"rows", nlohmann::json::array()}};
    for (const EvalRow& r : rows) j["rows"].push_back(eval_row_json(r));
    write_file_atomic(vm["output"].as<std::string>(), j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace rlkv
