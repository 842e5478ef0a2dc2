// `rlkv prepare --config FILE --input IN.jsonl --output OUT.jsonl`: the options of the
// self-distillation sampling that eval/prepare.h runs (alone, or shared by the ranks of mpirun).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "comm/collectives.h"
#include "core/config.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/run_context.h"
#include "eval/prepare.h"
#include "launch/cli.h"
#include "launch/failure.h"
#include "launch/tp_setup.h"
#include "problems/dataset.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

extern "C" void on_prepare_signal(int) { run_stop_flag().store(true); }

// The summary line, and a warning when not one sample had an answer the task's checker could find.
void report(const PrepareResult& r, const LoadedProblems& data, const PrepareOptions& o, const std::string& declared) {
  std::string why;
  for (const auto& [reason, count] : r.dropped) why += ", " + std::to_string(count) + " " + reason;
  if (!data.errors.empty()) why += ", " + std::to_string(data.errors.size()) + " bad lines";
  std::fprintf(stderr, "prepare: kept %lld of %lld problems (%lld samples each)%s -> %s\n", (long long)r.kept,
               (long long)(r.problems + int64_t(data.errors.size())), (long long)o.samples, why.c_str(),
               o.output.c_str());
  if (r.samples_scored == 0 || r.samples_extracted > 0) return;
  const std::string dir = declared.empty() ? "declares none" : "declares " + declared;
  std::fprintf(stderr,
               "prepare: warning: none of the %lld samples has an answer the '%s' checker can extract; is the task "
               "right? (config key reward.task = toy|math; the model directory %s)\n",
               (long long)r.samples_scored, reward_task_name(o.reward.task), dir.c_str());
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  po::options_description desc("rlkv prepare options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                 "INI config (model, data, rollout, prepare)")(
      "input", po::value<std::string>(), "candidate problems, JSONL")("output", po::value<std::string>(),
                                                                      "kept problems, JSONL");
  ParsedArgs args = parse_args(argc, argv, desc);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv prepare --config FILE --input IN.jsonl --output OUT.jsonl [--section.key=value ...]\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(args.vm.count("config"), "rlkv prepare needs --config FILE");
  RLKV_CHECK(args.vm.count("input") && args.vm.count("output"),
             "rlkv prepare needs --input IN.jsonl and --output OUT.jsonl");
  const Config cfg = load_config(args.vm["config"].as<std::string>(), args.overrides);
  const std::string input = args.vm["input"].as<std::string>(), output = args.vm["output"].as<std::string>();
  RLKV_CHECK(!cfg.model.path.empty(), "config key model.path is not set");
  std::vector<std::string> inputs = model_files(cfg.model.path);
  inputs.push_back(input);
  inputs.push_back(args.vm["config"].as<std::string>());
  check_output_file(output, "--output", inputs);
  {  // the journals OUT.journal.<rank> are written and at the end removed: none may be an input either
    std::error_code ec;
    const std::string journal = std::filesystem::weakly_canonical(output, ec).string() + ".journal.";
    for (const std::string& in : inputs)
      RLKV_CHECK(std::filesystem::weakly_canonical(in, ec).string().rfind(journal, 0) != 0, "--input ", in,
                 ": is named as a journal of --output ", output, " (", output,
                 ".journal.<rank>), which prepare writes and removes; rename it");
  }
  std::signal(SIGINT, on_prepare_signal);
  std::signal(SIGTERM, on_prepare_signal);

  LoadedProblems data = load_problems_lenient(input, dataset_fields(cfg));
  for (const auto& e : data.errors) std::fprintf(stderr, "skipped bad line: %s\n", e.c_str());
  RLKV_CHECK(!data.problems.empty(), input, ": no usable problems (", data.errors.size(), " bad lines)");

  // Under mpirun every rank takes every size-th chunk; alone, rank 0 of 1.
  MpiSession mpi(nullptr, nullptr);
  return run_on_ranks("prepare", mpi, [&] {
    std::unique_ptr<Collectives> world = mpi.active() ? mpi_world() : local_collectives();
    // Ranks on one node (mpirun) share its cores.
    const int threads = set_intra_op_threads(cfg, world->size() > 1 ? world->split_node()->size() : 1);
    const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
    const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
    PrepareOptions o;
    o.output = output;
    std::error_code ec;  // the same directory by any spelling is the same model
    o.model = std::filesystem::weakly_canonical(cfg.model.path, ec).string() + " " + cfg.model.dtype;
    o.samples = cfg.prepare.samples;
    o.chunk = cfg.prepare.chunk;
    o.min_pass_rate = cfg.prepare.min_pass_rate;
    o.max_pass_rate = cfg.prepare.max_pass_rate;
    o.prompt_template = cfg.model.prompt_template;
    o.add_special_tokens = cfg.model.add_special_tokens;
    o.generation = generator_options(cfg);
    o.generation.num_threads = threads;
    o.reward.task = resolve_reward_task(cfg.reward.task, model.config().task, "config key reward.task");
    const PrepareResult r = run_prepare(o, data, model, tok, *world);
    if (r.interrupted) {
      if (world->rank() == 0)
        std::fprintf(stderr, "prepare: interrupted after %lld of %lld problems; rerun the same command to continue\n",
                     (long long)r.done, (long long)r.problems);
      return 1;
    }
    if (world->rank() == 0) report(r, data, o, model.config().task);
    return 0;
  });
}

}  // namespace rlkv
