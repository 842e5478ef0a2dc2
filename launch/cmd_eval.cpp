// `rlkv eval`: the options of an evaluation (eval/evaluate.h runs it): a table on stdout, JSON with
// --output, the single-head drops as a mask source with --scores-out.
#include <filesystem>
#include <iostream>

#include "core/durable_file.h"
#include "core/error.h"
#include "eval/evaluate.h"
#include "launch/cli.h"
#include "launch/eval_setup.h"
#include "masks/mask_export.h"

namespace po = boost::program_options;

namespace rlkv {

int cmd_eval(int argc, char** argv) {
  po::options_description desc("rlkv eval options");
  desc.add_options()("help,h", "show this help")("method", po::value<std::string>()->default_value("full"),
                                                 "full | rlkv | random | streaming | single-head | h2o | snapkv | rkv")(
      "mask", po::value<std::string>(),
      "rlkv: a mask source: a checkpoint (ckpt-N.h5), adapter_weights.tsv / full_attention_heads.tsv / a JSON "
      "mask, or a directory of one")(
      "sparsity", po::value<std::string>(),
      "rlkv / random: fractions of KV heads compressed, e.g. 0.25,0.5,0.75; h2o / snapkv / rkv: token budgets "
      "matched to head masks of these sparsities")("budget", po::value<int64_t>(),
                                                   "h2o / snapkv / rkv: a fixed budget in tokens per head")(
      "seeds", po::value<int64_t>()->default_value(5), "random: masks per sparsity")(
      "scores-out", po::value<std::string>(), "single-head: write the accuracy drops as DIR/adapter_weights.tsv");
  add_eval_setup_options(desc);
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv eval --model DIR --data FILE.jsonl --method M [options] [--section.key=value ...]\n"
              << desc;
    return 0;
  }
  EvalRequest req;
  req.method = vm["method"].as<std::string>();
  if (vm.count("mask")) req.mask = vm["mask"].as<std::string>();
  const bool fixed = req.method == "full" || req.method == "streaming" || req.method == "single-head";
  RLKV_CHECK(!vm.count("sparsity") || !fixed,
             "--sparsity goes with --method rlkv, random, h2o, snapkv or rkv (--method ", req.method, " takes none)");
  if (vm.count("sparsity")) req.sparsities = parse_fractions(vm["sparsity"].as<std::string>(), "--sparsity");
  if (vm.count("budget")) req.budget = vm["budget"].as<int64_t>();
  req.seeds = vm["seeds"].as<int64_t>();
  check_eval_request(req);
  RLKV_CHECK(!vm.count("scores-out") || req.method == "single-head", "--scores-out goes with --method single-head");

  if (vm.count("scores-out")) {
    const std::string dir = vm["scores-out"].as<std::string>();
    std::vector<std::string> inputs;
    if (vm.count("data")) inputs.push_back(vm["data"].as<std::string>());
    if (vm.count("config")) inputs.push_back(vm["config"].as<std::string>());
    check_output_dir_files(dir, {"adapter_weights.tsv"}, "--scores-out", inputs);
    check_export_dir(dir, "rlkv-sglang");
    std::error_code ec;
    namespace fs = std::filesystem;
    RLKV_CHECK(!vm.count("output") || fs::weakly_canonical(vm["output"].as<std::string>(), ec) !=
                                          fs::weakly_canonical(fs::path(dir) / "adapter_weights.tsv", ec),
               "--output ", vm["output"].as<std::string>(), ": is the file --scores-out writes (", dir,
               "/adapter_weights.tsv); write the output elsewhere");
  }
  const EvalSetup s = load_eval_setup(args, {req.mask});
  // The GPU kernels report no attention weights: refused here, before the full pass a matched
  // budget runs first (the cache refused it only when the dropping pass began).
  RLKV_CHECK(!is_token_dropping(req.method) || s.model->device().is_cpu(), "--method ", req.method,
             ": token dropping runs on the CPU only; use --runtime.device=cpu");
  const ModelConfig& mc = s.model->config();
  Evaluator ev(*s.model, *s.tok, s.generation, s.prompts, s.problems, s.reward, eval_passes(req, mc.kv_heads_total()));
  const std::vector<EvalRow> rows = ev.run(req);
  ev.finish_progress();
  print_eval_rows(rows, mc.num_layers, mc.num_kv_heads);
  ev.warn_if_nothing_extracted(mc.task);
  if (vm.count("output"))
    write_eval_json(vm["output"].as<std::string>(), s, vm["data"].as<std::string>(), req.method, rows);
  if (vm.count("scores-out"))
    write_single_head_scores(vm["scores-out"].as<std::string>(), rows, mc.num_layers, mc.num_kv_heads);
  return 0;
}

}  // namespace rlkv
