// `rlkv duo-train`: the options of DuoAttention's gate training (duo/duo_train.h runs it): the
// model, windows, training problems and length cap come from the config; the scores, DuoAttention's
// and our mask files and the per-step metrics go to --output DIR.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/checkpoint_name.h"
#include "core/config.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "duo/duo_train.h"
#include "launch/cli.h"
#include "launch/tp_setup.h"
#include "masks/mask_export.h"
#include "problems/dataset.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "toy/toy_task.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

// The prompts of the first `limit` problems of data.path (0 = all), as the model's tokens.
std::vector<std::vector<int32_t>> training_prompts(const Config& cfg, const Tokenizer& tok, int64_t limit,
                                                   int64_t max_positions) {
  RLKV_CHECK(!cfg.data.path.empty(), "--data reasoning needs the training problems: set data.path in the config");
  std::vector<Problem> problems = load_problems(cfg.data.path, dataset_fields(cfg));
  if (limit > 0 && int64_t(problems.size()) > limit) problems.resize(size_t(limit));
  std::vector<std::vector<int32_t>> prompts;
  for (const Problem& p : problems) {
    prompts.push_back(
        tok.encode(apply_prompt_template(cfg.model.prompt_template, p.prompt), cfg.model.add_special_tokens));
    check_prompt_length(p, prompts.back().size(), max_positions);
  }
  return prompts;
}

std::string command_line(int argc, char** argv) {
  std::string cmd = "rlkv duo-train";
  for (int i = 1; i < argc; ++i) cmd += std::string(" ") + argv[i];
  return cmd;
}

}  // namespace

int cmd_duo_train(int argc, char** argv) {
  DuoTrainOptions o;
  std::string data, output;
  int64_t problems = 256, log_every = 25, seed = int64_t(o.seed);
  double sparsity = 0.5;
  po::options_description desc("rlkv duo-train options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "INI config file")(
      "model", po::value<std::string>(), "model directory (model.path)")(
      "data", po::value(&data),
      "retrieval (synthetic passkeys, toy vocabulary) | reasoning (the model's greedy answers to data.path)")(
      "output", po::value(&output), "output directory")("steps", po::value(&o.steps)->default_value(o.steps),
                                                        "optimiser steps")(
      "batch", po::value(&o.batch)->default_value(o.batch), "sequences per step")(
      "lr", po::value(&o.lr)->default_value(o.lr, "0.02"), "peak learning rate")(
      "reg", po::value(&o.reg)->default_value(o.reg, "0.05"), "weight of mean |alpha|")(
      "clip", po::value(&o.clip)->default_value(o.clip), "gradient-norm clipping (0 = off)")(
      "seed", po::value(&seed)->default_value(seed), "batch order and synthetic data")(
      "problems", po::value(&problems)->default_value(problems),
      "reasoning: responses from the first N problems of data.path (0 = all)")(
      "sparsity", po::value(&sparsity)->default_value(sparsity),
      "sparsity of the binary mask in head_mask.json and config.json")(
      "log-every", po::value(&log_every)->default_value(log_every), "steps between progress lines")(
      "threads", po::value<int64_t>(),
      "runtime.threads (LibTorch intra-op threads); when neither sets it, 1: OpenBLAS threads the GEMMs itself, "
      "and on the toy model 30 steps took 6.2 s on 1 thread against 9.6 s on 2 (2 shared cores)");
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv duo-train --config FILE --data retrieval|reasoning --output DIR [options] "
                 "[--section.key=value ...]\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(!data.empty(), "no data: give --data retrieval|reasoning");
  RLKV_CHECK(data == "retrieval" || data == "reasoning", "--data must be retrieval or reasoning, got '", data, "'");
  RLKV_CHECK(!output.empty(), "no output: give --output DIR");
  check_output_dir(output, "--output");
  RLKV_CHECK(problems >= 0, "--problems must be >= 0, got ", problems);
  o.seed = seed_option(seed);
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "--sparsity must be in [0, 1], got ", sparsity);
  RLKV_CHECK(log_every >= 1, "--log-every must be >= 1, got ", log_every);
  if (vm.count("model")) args.overrides.push_back("model.path=" + vm["model"].as<std::string>());
  if (vm.count("threads")) args.overrides.push_back("runtime.threads=" + std::to_string(vm["threads"].as<int64_t>()));
  Config cfg = load_config(vm.count("config") ? vm["config"].as<std::string>() : "", args.overrides);
  if (cfg.runtime.threads == 0) cfg.runtime.threads = 1;
  RLKV_CHECK(!cfg.model.path.empty(), "no model: give --config FILE (model.path) or --model DIR");
  {  // before the training: none of the files written may be one that is read
    std::vector<std::string> inputs = model_files(cfg.model.path);
    inputs.push_back(cfg.data.path);
    if (vm.count("config")) inputs.push_back(vm["config"].as<std::string>());
    check_output_dir_files(output, duo_output_names(), "--output", inputs);
    check_export_dir(output, "duo");
    // A training run's directory: its metrics.jsonl would be replaced by the gates' (and a later
    // resume would splice the two).
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::directory_iterator it(output, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      RLKV_CHECK(checkpoint_step_of(name) < 0, "--output ", output, ": holds a training run (", name,
                 "); give a directory of its own");
    }
    const std::string metrics = output + "/metrics.jsonl";
    RLKV_CHECK(
        !fs::exists(metrics, ec) || fs::file_size(metrics, ec) == 0 || fs::exists(output + "/duo_train.json", ec),
        "--output ", output, ": holds a metrics.jsonl that rlkv duo-train did not write (a training run's?); ",
        "give a directory of its own");
  }
  o.sink = cfg.cache.sink;
  o.window = cfg.cache.window;
  check_duo_options(o);

  const int threads = set_intra_op_threads(cfg);
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const ModelConfig& mc = model.config();
  DuoBatchSource source;
  if (data == "retrieval") {
    RLKV_CHECK(mc.vocab_size == kToyVocab, "--data retrieval builds passkeys in the toy vocabulary (", kToyVocab,
               " tokens), ", cfg.model.path, " has ", mc.vocab_size, ": use --data reasoning");
    source = duo_retrieval_source(ToyTaskOptions{});
  } else {
    const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
    GeneratorOptions go = generator_options(cfg);
    go.num_threads = threads;
    const auto prompts = training_prompts(cfg, tok, problems, mc.max_position_embeddings);
    std::fprintf(stderr, "generating greedy full-cache responses to %zu problems of %s\n", prompts.size(),
                 cfg.data.path.c_str());
    source = duo_pool_source(duo_reasoning_sequences(model, &tok, prompts, go));
  }
  const DuoTrainResult r = train_duo_gates(model, source, o, [&](const DuoStepPoint& p) {
    if (p.step % log_every != 0 && p.step != o.steps) return;
    std::fprintf(stderr, "step %lld/%lld loss %.6f mse %.6f reg %.6f lr %.2e grad %.3g mean alpha %.3f %.1f s\n",
                 (long long)p.step, (long long)o.steps, p.loss, p.mse, p.reg, p.lr, p.grad_norm, p.mean_alpha,
                 p.seconds);
  });
  DuoOutputInfo info;
  info.model = cfg.model.path;
  info.data = data;
  info.sparsity = sparsity;
  info.head_dim = mc.head_dim;
  info.command = command_line(argc, argv);
  save_duo_outputs(output, r, o, info);
  std::fprintf(stderr, "final alphas (layers x KV heads):\n");
  for (int64_t l = 0; l < r.num_layers; ++l) {
    for (int64_t h = 0; h < r.num_kv_heads; ++h)
      std::fprintf(stderr, "%s%.3f", h ? "\t" : "  ", r.alphas[size_t(l * r.num_kv_heads + h)]);
    std::fprintf(stderr, "\n");
  }
  std::fprintf(stderr, "wrote %s (%.1f s)\n", output.c_str(), r.seconds);
  return 0;
}

}  // namespace rlkv
