// rlkv: one binary, subcommands (docs/design.md section 8). Exit status: 0 success, 2 bad usage or bad
// input (one-line message naming the file, line or key), 1 any other failure. Library code throws;
// exceptions become exit codes here, after the subcommand has unwound (launch/failure.h; under
// mpirun a failing rank does it itself and ends the job).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "launch/cli.h"
#include "launch/failure.h"

namespace {

const char* kUsage =
    "usage: rlkv <command> [options]\n"
    "commands:\n"
    "  train    --config FILE [--resume CKPT|auto] [--section.key=value ...]   (alone or under mpirun)\n"
    "  actor    --config FILE --connect ENDPOINT   (an elastic actor joining a running job)\n"
    "  generate --model DIR --prompt TEXT [--mask SPEC --sparsity S] [--sink S --window W] [--stats]\n"
    "  eval     --model DIR --data FILE.jsonl --method full|rlkv|random|streaming|single-head|h2o|snapkv|rkv\n"
    "           [--mask SPEC] [--sparsity S,...] [--budget N]\n"
    "  compare  --config FILE --data FILE.jsonl --sparsity S,... [--mask CKPT] [--duo-retrieval DIR] ...\n"
    "  score    --input ROLLOUTS.jsonl --output SCORED.jsonl [--task toy|math] [--strict]\n"
    "  prepare  --config FILE --input IN.jsonl --output OUT.jsonl\n"
    "  duo-train --config FILE --data retrieval|reasoning --output DIR [--steps N --lr X --reg X --batch N]\n"
    "  export   SOURCE --format rlkv-sglang|duo|json|layers [--sparsity S] --output PATH\n"
    "  inspect  CKPT.h5 [--json]\n"
    "  toy      data --n N --seed S --output FILE.jsonl | train --output DIR\n"
    "run 'rlkv <command> --help' for the options of a command\n";

}  // namespace

int main(int argc, char** argv) {
  rlkv::log_init();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "generate") return rlkv::cmd_generate(argc - 1, argv + 1);
    if (cmd == "toy") return rlkv::cmd_toy(argc - 1, argv + 1);
    if (cmd == "eval") return rlkv::cmd_eval(argc - 1, argv + 1);
    if (cmd == "compare") return rlkv::cmd_compare(argc - 1, argv + 1);
    if (cmd == "score") return rlkv::cmd_score(argc - 1, argv + 1);
    if (cmd == "export") return rlkv::cmd_export(argc - 1, argv + 1);
    if (cmd == "prepare") return rlkv::cmd_prepare(argc - 1, argv + 1);
    if (cmd == "duo-train") return rlkv::cmd_duo_train(argc - 1, argv + 1);
#ifdef RLKV_WITH_DISTRIBUTED
    if (cmd == "train") return rlkv::cmd_train(argc - 1, argv + 1);
    if (cmd == "actor") return rlkv::cmd_actor(argc - 1, argv + 1);
    if (cmd == "inspect") return rlkv::cmd_inspect(argc - 1, argv + 1);
#else
    if (cmd == "train" || cmd == "actor" || cmd == "inspect")
      throw rlkv::UserError("this build has no training (configured with RLKV_WITH_DISTRIBUTED=OFF)");
#endif
    std::fprintf(stderr, "rlkv: unknown command '%s' (run 'rlkv --help' for the list)\n", cmd.c_str());
    return 2;
  } catch (...) {
    return rlkv::report_failure(cmd, std::current_exception());
  }
}
