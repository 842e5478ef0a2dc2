#include "launch/cli.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "problems/dataset.h"
#include "runtime/generator.h"

namespace po = boost::program_options;

namespace rlkv {

ParsedArgs parse_args(int argc, char** argv, const po::options_description& desc,
                      const po::positional_options_description* positional) {
  ParsedArgs out;
  po::parsed_options parsed(nullptr);
  try {
    po::command_line_parser p(argc, argv);
    // No abbreviations: Boost would take --seed for --seeds (eval, compare), another experiment.
    p.options(desc).allow_unregistered().style(po::command_line_style::default_style &
                                               ~po::command_line_style::allow_guessing);
    if (positional) p.positional(*positional);
    parsed = p.run();
    po::store(parsed, out.vm);
    po::notify(out.vm);
  } catch (const po::error& e) {
    throw UserError(str_cat("bad command line: ", program_options_text(e)));
  }
  for (const auto& o : parsed.options) {
    // A bare word that no positional argument takes (a stray word, or a second word of a value).
    if (o.position_key >= 0 && (o.unregistered || o.string_key.empty()))
      throw UserError(one_line(str_cat("unexpected argument '", o.value.empty() ? "" : o.value[0], "' (see --help)")));
    // An empty value names nothing: refused rather than read as the option left out (an empty
    // --config or --data would otherwise fall back to the defaults, an empty --mask to every head
    // full). A prompt may be empty.
    if (!o.unregistered && o.value.size() == 1 && o.value[0].empty() && o.string_key != "prompt")
      throw UserError(str_cat("--", o.string_key, ": an empty value (leave the option out for its default)"));
    if (!o.unregistered) continue;
    const std::string key = o.string_key;
    // As typed, without a value: "-x" stays "-x" (Boost's key for it is "-x", shown as "---x" before).
    const std::string typed = o.original_tokens.empty() ? "--" + key : o.original_tokens[0];
    RLKV_CHECK(key.find('.') != std::string::npos && key[0] != '-', "unknown option '",
               one_line(typed.substr(0, typed.find('=')), 100, OneLine::kEscapeBytes), "' (see --help)");
    RLKV_CHECK(o.value.size() == 1, "config override --", key, " needs exactly one value (--", key, "=VALUE)");
    out.overrides.push_back(key + "=" + o.value[0]);
  }
  return out;
}

uint64_t seed_option(int64_t seed) {
  RLKV_CHECK(seed >= 0, "--seed must be >= 0, got ", seed);
  return uint64_t(seed);
}

GeneratorOptions generator_options(const Config& cfg) {
  GeneratorOptions go;
  go.sampling.temperature = cfg.rollout.temperature;
  go.sampling.top_p = cfg.rollout.top_p;
  go.sampling.top_k = cfg.rollout.top_k;
  go.seed = uint64_t(cfg.rollout.seed);
  go.max_new_tokens = cfg.rollout.max_new_tokens;
  go.stop = cfg.rollout.stop;
  go.repetition_every = cfg.rollout.repetition_every;
  go.repetition_min_distinct = cfg.rollout.repetition_min_distinct;
  go.max_batch = cfg.runtime.max_batch;
  go.sink = cfg.cache.sink;
  go.window = cfg.cache.window;
  go.page_size = cfg.cache.page_size;
  go.num_threads = cfg.runtime.threads > 0 ? int(cfg.runtime.threads) : 0;
  go.cuda_graphs = cfg.runtime.cuda_graphs == "true"    ? CudaGraphs::kOn
                   : cfg.runtime.cuda_graphs == "false" ? CudaGraphs::kOff
                                                        : CudaGraphs::kAuto;
  go.dropping_params.snap_every = cfg.dropping.snapkv_every;
  go.dropping_params.snap_queries = cfg.dropping.snapkv_queries;
  go.dropping_params.rkv_buffer = cfg.dropping.rkv_buffer;
  go.dropping_params.rkv_queries = cfg.dropping.rkv_queries;
  go.dropping_params.rkv_lambda = cfg.dropping.rkv_lambda;
  return go;
}

DatasetFields dataset_fields(const Config& cfg) {
  DatasetFields f;
  f.id = cfg.data.id_field;
  f.prompt = cfg.data.prompt_field;
  f.answer = cfg.data.answer_field;
  f.solution = cfg.data.solution_field;
  return f;
}

int actor_thread_share(const Config& cfg, int ranks_on_node) {
  if (cfg.runtime.threads > 0) return int(cfg.runtime.threads);
  const int cores = int(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, ranks_on_node * int(std::max<int64_t>(1, cfg.placement.actors))));
}

int set_intra_op_threads(const Config& cfg, int ranks_on_node) {
  const int cores = int(std::thread::hardware_concurrency());
  const int n = cfg.runtime.threads > 0 ? int(cfg.runtime.threads) : std::max(1, cores / std::max(1, ranks_on_node));
  at::set_num_threads(n);
  return n;
}

}  // namespace rlkv
