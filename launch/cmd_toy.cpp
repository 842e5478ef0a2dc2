// `rlkv toy data|train`: the options of the embedded toy task's data and trainer (toy/).
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>

#include "core/durable_file.h"
#include "core/error.h"
#include "launch/cli.h"
#include "runtime/model_writer.h"
#include "toy/toy_task.h"
#include "toy/toy_trainer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

void add_task_options(po::options_description& d, ToyTaskOptions& t, std::string& chain) {
  d.add_options()("chain", po::value(&chain)->default_value("running"),
                  "chain of thought: running (a running sum; both shipped toy models) or pairs (the two "
                  "oldest values not yet used, operands then results)")(
      "k-min", po::value(&t.k_min)->default_value(t.k_min), "fewest operands")(
      "k-max", po::value(&t.k_max)->default_value(t.k_max), "most operands")(
      "num-min", po::value(&t.num_min)->default_value(t.num_min), "smallest operand")(
      "num-max", po::value(&t.num_max)->default_value(t.num_max), "largest operand");
}

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return true;
  return false;
}

int toy_data(int argc, char** argv) {
  ToyTaskOptions t;
  int64_t n = 0, seed = 0;
  std::string out;
  po::options_description d("rlkv toy data options");
  d.add_options()("help,h", "show this help")("n", po::value(&n)->required(), "number of problems")(
      "seed", po::value(&seed)->default_value(0), "random seed")("output", po::value(&out)->required(), "JSONL file");
  std::string chain;
  add_task_options(d, t, chain);
  if (wants_help(argc, argv)) {
    std::cout << "usage: rlkv toy data --n N --seed S --output FILE.jsonl [options]\n" << d;
    return 0;
  }
  ParsedArgs a = parse_args(argc, argv, d);
  t.chain = parse_toy_chain(chain);
  RLKV_CHECK(a.overrides.empty(), "rlkv toy data takes no config overrides");
  RLKV_CHECK(n >= 1 && n <= 100000000, "--n must be in 1..1e8, got ", n);
  const uint64_t s = seed_option(seed);
  check_output_file(out, "--output");
  DurableFileWriter file(out);  // line by line: 1e8 problems are ~9 GB, never held in memory
  toy_dataset_lines(n, s, t, [&](const std::string& line) { file.append(line); });
  file.commit();
  std::fprintf(stderr, "wrote %lld problems to %s\n", (long long)n, out.c_str());
  return 0;
}

int toy_train(int argc, char** argv) {
  ToyTrainOptions o;
  std::string out;
  int64_t threads = 0, seed = int64_t(o.seed);
  po::options_description d("rlkv toy train options");
  d.add_options()("help,h", "show this help")("output", po::value(&out)->required(), "model directory to write")(
      "steps", po::value(&o.steps)->default_value(o.steps), "optimizer steps")(
      "batch", po::value(&o.batch)->default_value(o.batch), "problems per step")(
      "lr", po::value(&o.lr)->default_value(o.lr), "peak learning rate")(
      "min-lr", po::value(&o.min_lr)->default_value(o.min_lr), "final learning rate")(
      "warmup", po::value(&o.warmup)->default_value(o.warmup), "warm-up steps")(
      "weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "AdamW weight decay")(
      "seed", po::value(&seed)->default_value(seed), "seed (init and data)")(
      "layers", po::value(&o.layers)->default_value(o.layers), "decoder layers")(
      "hidden", po::value(&o.hidden)->default_value(o.hidden), "d_model")(
      "heads", po::value(&o.q_heads)->default_value(o.q_heads), "query heads")(
      "kv-heads", po::value(&o.kv_heads)->default_value(o.kv_heads), "KV heads")(
      "head-dim", po::value(&o.head_dim)->default_value(o.head_dim), "head dimension")(
      "intermediate", po::value(&o.intermediate)->default_value(o.intermediate), "SwiGLU width")(
      "eval-every", po::value(&o.eval_every)->default_value(o.eval_every), "steps between held-out evals (0 = off)")(
      "eval-problems", po::value(&o.eval_problems)->default_value(o.eval_problems), "held-out problems")(
      "log-every", po::value(&o.log_every)->default_value(o.log_every), "steps between log lines")(
      "time-limit", po::value(&o.time_limit_s)->default_value(0), "stop after this many seconds (0 = none)")(
      "threads", po::value(&threads)->default_value(1),
      "LibTorch intra-op threads; OpenBLAS threads its GEMMs itself, and a second OpenMP pool spinning "
      "next to it halves throughput on 2 cores (measured: 15.5k vs 8.6k tokens/s)");
  std::string chain;
  add_task_options(d, o.task, chain);
  if (wants_help(argc, argv)) {
    std::cout << "usage: rlkv toy train --output DIR [options]\n" << d;
    return 0;
  }
  ParsedArgs a = parse_args(argc, argv, d);
  o.task.chain = parse_toy_chain(chain);
  RLKV_CHECK(a.overrides.empty(), "rlkv toy train takes no config overrides");
  RLKV_CHECK(o.log_every >= 1, "--log-every must be >= 1");
  o.seed = seed_option(seed);
  RLKV_CHECK(o.steps >= 1 && o.batch >= 1, "--steps and --batch must be >= 1");
  RLKV_CHECK(o.batch <= 4096, "--batch must be <= 4096 problems a step, got ", o.batch);
  RLKV_CHECK(std::isfinite(o.lr) && o.lr > 0 && o.lr <= 1, "--lr must be a number in (0, 1], got ", o.lr);
  RLKV_CHECK(std::isfinite(o.min_lr) && o.min_lr >= 0 && o.min_lr <= o.lr, "--min-lr must be a number in [0, --lr]");
  RLKV_CHECK(o.warmup >= 0, "--warmup must be >= 0");
  RLKV_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "--weight-decay must be a number >= 0");
  RLKV_CHECK(
      o.layers >= 1 && o.hidden >= 1 && o.q_heads >= 1 && o.kv_heads >= 1 && o.head_dim >= 2 && o.intermediate >= 1,
      "--layers, --hidden, --heads, --kv-heads and --intermediate must be >= 1, --head-dim >= 2");
  RLKV_CHECK(o.eval_every >= 0, "--eval-every must be >= 0 (0: no held-out evaluation)");
  RLKV_CHECK(o.eval_every == 0 || o.eval_problems >= 1, "--eval-problems must be >= 1 when --eval-every > 0");
  RLKV_CHECK(o.eval_problems <= 100000, "--eval-problems must be <= 100000, got ", o.eval_problems);
  RLKV_CHECK(std::isfinite(o.time_limit_s) && o.time_limit_s >= 0, "--time-limit must be a number of seconds >= 0");
  RLKV_CHECK(threads >= 0, "--threads must be >= 0 (0: one per core)");
  const ModelConfig shape = toy_model_config(o);  // the shape checks, before the work
  validate_toy_options(o.task);
  const int64_t longest = toy_max_sequence_tokens(o.task);
  RLKV_CHECK(longest <= shape.max_position_embeddings, "the longest problem of --k-max ", o.task.k_max,
             " operands up to --num-max ", o.task.num_max, " may take ", longest,
             " tokens (BOS, prompt, chain, EOS), beyond the toy model's ", shape.max_position_embeddings,
             " positions: lower --k-max or --num-max");
  check_model_dir(out);
  at::set_num_threads(threads > 0 ? int(threads) : int(std::thread::hardware_concurrency()));
  const ToyTrainResult r =
      train_toy_model(o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  std::string cmd = "rlkv toy train";
  for (int i = 1; i < argc; ++i) cmd += std::string(" ") + argv[i];
  save_toy_model(r, o, out, cmd);
  std::fprintf(stderr, "saved %s (%.0f s, %.0f tokens/s)\n", out.c_str(), r.seconds, double(r.tokens) / r.seconds);
  return 0;
}

}  // namespace

int cmd_toy(int argc, char** argv) {
  const char* usage =
      "usage: rlkv toy data --n N --seed S --output FILE.jsonl | rlkv toy train --output DIR [options]\n";
  RLKV_CHECK(argc >= 2, "rlkv toy needs a subcommand (data or train)");
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h") {
    std::cout << usage;
    return 0;
  }
  if (sub == "data") return toy_data(argc - 1, argv + 1);
  if (sub == "train") return toy_train(argc - 1, argv + 1);
  throw UserError(str_cat("rlkv toy: unknown subcommand '", sub, "' (data or train)"));
}

}  // namespace rlkv
