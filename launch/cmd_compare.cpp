// `rlkv compare`: every method side by side on one problem set (eval/compare.h runs it): a table on
// stdout, JSON with --output (analysis/tradeoff.py plots accuracy against KV bytes from it).
#include <iostream>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/compare.h"
#include "launch/cli.h"
#include "launch/eval_setup.h"

namespace po = boost::program_options;

namespace rlkv {

int cmd_compare(int argc, char** argv) {
  po::options_description desc("rlkv compare options");
  desc.add_options()("help,h", "show this help")("sparsity", po::value<std::string>(),
                                                 "fractions of KV heads compressed, e.g. 0.2,0.4,0.6,0.8")(
      "mask", po::value<std::string>(), "the learned mask: a checkpoint or a head-score file / directory")(
      "duo-retrieval", po::value<std::string>(), "DuoAttention gates trained on retrieval (rlkv duo-train)")(
      "duo-reasoning", po::value<std::string>(), "DuoAttention gates trained on the model's own chains")(
      "dropping", po::value<std::string>()->default_value("h2o,snapkv,rkv"),
      "token-dropping methods at matched budgets (none: no token dropping)")(
      "no-oracle", "leave out the single-head oracle")("no-streaming", "leave out every-head-compressed")(
      "seeds", po::value<int64_t>()->default_value(3), "random masks per sparsity (0: none)");
  add_eval_setup_options(desc);
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv compare --config FILE --data FILE.jsonl --sparsity S[,S...] [--mask CKPT] [options]\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(vm.count("sparsity"), "rlkv compare needs --sparsity S[,S...]");
  CompareRequest req;
  req.sparsities = parse_fractions(vm["sparsity"].as<std::string>(), "--sparsity");
  if (vm.count("mask")) req.rlkv_mask = vm["mask"].as<std::string>();
  if (vm.count("duo-retrieval")) req.duo_retrieval = vm["duo-retrieval"].as<std::string>();
  if (vm.count("duo-reasoning")) req.duo_reasoning = vm["duo-reasoning"].as<std::string>();
  req.oracle = !vm.count("no-oracle");
  req.streaming = !vm.count("no-streaming");
  req.random_seeds = vm["seeds"].as<int64_t>();
  const std::string dropping = vm["dropping"].as<std::string>();
  req.dropping = dropping == "none" ? std::vector<std::string>{} : split_list(dropping, "--dropping", "name");
  check_compare_request(req);

  const EvalSetup s = load_eval_setup(args, {req.rlkv_mask, req.duo_retrieval, req.duo_reasoning});
  // Token dropping runs on the CPU only (the GPU kernels report no attention weights): on a GPU the
  // default methods are left out with a warning, named ones refused, before any pass.
  if (!req.dropping.empty() && !s.model->device().is_cpu()) {
    RLKV_CHECK(vm["dropping"].defaulted(), "--dropping ", dropping,
               ": token dropping runs on the CPU only; use --runtime.device=cpu, or --dropping none");
    log_warn("token dropping (H2O, SnapKV, R-KV) runs on the CPU only: left out on " + s.model->device().str() +
             " (--runtime.device=cpu compares them)");
    req.dropping.clear();
  }
  const ModelConfig& mc = s.model->config();
  Evaluator ev(*s.model, *s.tok, s.generation, s.prompts, s.problems, s.reward,
               compare_passes(req, mc.kv_heads_total()));
  const std::vector<EvalRow> rows = run_compare(ev, req);
  ev.finish_progress();
  print_eval_rows(rows, mc.num_layers, mc.num_kv_heads);
  ev.warn_if_nothing_extracted(mc.task);
  if (vm.count("output"))
    write_eval_json(vm["output"].as<std::string>(), s, vm["data"].as<std::string>(), "compare", rows);
  return 0;
}

}  // namespace rlkv
