// `rlkv generate`: load a model, wrap the prompt in the template, generate with a head mask.
// Under mpirun -np N the N ranks run the model as one tensor-parallel group; rank 0
// prints the generations, every rank logs the bytes of weights it read.

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "comm/collectives.h"
#include "core/config.h"
#include "core/error.h"
#include "launch/cli.h"
#include "launch/failure.h"
#include "launch/tp_setup.h"
#include "masks/head_mask.h"
#include "masks/mask_spec.h"
#include "problems/dataset.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

// The BLAS library LibTorch's CPU GEMMs resolved to in this process (from /proc/self/maps).
std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line)) {
    for (const char* name : {"libopenblas", "libmkl", "libblis", "libblas.so", "libflexiblas"}) {
      const size_t at = line.find(name);
      if (at == std::string::npos) continue;
      const size_t slash = line.rfind('/');
      std::string lib = line.substr(slash == std::string::npos ? at : slash + 1);
      if (found.find(lib) == std::string::npos) found += (found.empty() ? "" : ", ") + lib;
    }
  }
  if (found.empty()) return "none found (GEMMs may use a slow fallback)";
  // libblas.so.3 is an alternatives link: name what it points to.
  if (found.find("libblas.so") != std::string::npos && found.find("openblas") == std::string::npos)
    found += " (reference BLAS? install libopenblas0-pthread)";
  return found;
}

std::string human_bytes(int64_t b) {
  char buf[64];
  if (b >= (int64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(int64_t(1) << 30));
  else if (b >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / double(1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  return buf;
}

void add_generate_options(po::options_description& desc) {
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                 "INI config file (keys of docs/design.md section 7)")(
      "model", po::value<std::string>(), "model directory (model.path)")(
      "prompt", po::value<std::vector<std::string>>(), "prompt text (repeatable)")(
      "num-samples", po::value<int64_t>()->default_value(1), "samples per prompt")(
      "mask", po::value<std::string>()->default_value("full"),
      "head mask: full | streaming | random[:SEED] | score file or directory (rlkv-sglang, duo)")(
      "sparsity", po::value<double>(), "fraction of KV heads compressed (with --mask)")(
      "sink", po::value<int64_t>(), "cache.sink")("window", po::value<int64_t>(), "cache.window")(
      "temperature", po::value<double>(), "rollout.temperature (0 = greedy)")(
      "top-p", po::value<double>(), "rollout.top_p")("top-k", po::value<int64_t>(), "rollout.top_k")(
      "seed", po::value<int64_t>(), "rollout.seed")("max-new-tokens", po::value<int64_t>(), "rollout.max_new_tokens")(
      "dtype", po::value<std::string>(), "model.dtype")("threads", po::value<int64_t>(), "runtime.threads")(
      "max-batch", po::value<int64_t>(), "runtime.max_batch")("raw", "do not apply model.prompt_template")(
      "json", "print one JSON object per generation instead of plain text")(
      "stats", "print tokens/s and KV cache bytes to stderr");
}

// Flags are shorthands for config keys and win over the config file: each flag given becomes an
// override "key=value", appended in this order.
void add_flag_overrides(const po::variables_map& vm, std::vector<std::string>& overrides) {
  auto flag = [&](const char* name, const char* key) {
    if (!vm.count(name)) return;
    const auto& v = vm[name].value();
    std::string s;
    if (auto* p = boost::any_cast<std::string>(&v))
      s = *p;
    else if (auto* i = boost::any_cast<int64_t>(&v))
      s = std::to_string(*i);
    else if (auto* d = boost::any_cast<double>(&v)) {
      // The shortest text that reads back as the same double (std::to_string keeps 6 decimals:
      // --top-p 0.9999996 became 1, which turns the nucleus off).
      char buf[32];
      s.assign(buf, std::to_chars(buf, buf + sizeof buf, *d).ptr);
    }
    overrides.push_back(std::string(key) + "=" + s);
  };
  flag("model", "model.path");
  flag("sink", "cache.sink");
  flag("window", "cache.window");
  flag("temperature", "rollout.temperature");
  flag("top-p", "rollout.top_p");
  flag("top-k", "rollout.top_k");
  flag("seed", "rollout.seed");
  flag("max-new-tokens", "rollout.max_new_tokens");
  flag("dtype", "model.dtype");
  flag("threads", "runtime.threads");
  flag("max-batch", "runtime.max_batch");
}

// `samples` requests per prompt (templated unless --raw), all with the head mask `keep`; request i
// samples from stream i.
std::vector<GenerationRequest> make_requests(const po::variables_map& vm, const Config& cfg, const Tokenizer& tok,
                                             const std::vector<uint8_t>& keep, int64_t samples) {
  std::vector<GenerationRequest> reqs;
  const auto prompts = vm["prompt"].as<std::vector<std::string>>();
  for (const auto& p : prompts) {
    const std::string text = vm.count("raw") ? p : apply_prompt_template(cfg.model.prompt_template, p);
    std::vector<int32_t> ids = tok.encode(text, cfg.model.add_special_tokens);
    RLKV_CHECK(!ids.empty(), "prompt encodes to no tokens");
    for (int64_t s = 0; s < samples; ++s) {
      GenerationRequest r;
      r.id = int64_t(reqs.size());
      r.prompt = ids;
      r.keep = keep;
      r.stream = uint64_t(r.id);
      reqs.push_back(std::move(r));
    }
  }
  return reqs;
}

// The generations on stdout in request order: their text, or with --json one object a line.
void print_results(const std::vector<GenerationResult>& results, bool json) {
  for (const auto& r : results) {
    if (json) {
      nlohmann::json j = {{"id", r.id},
                          {"prompt_len", r.prompt_len},
                          {"length", r.tokens.size()},
                          {"finish_reason", finish_reason_name(r.finish)},
                          {"tokens", r.tokens},
                          {"text", r.text}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << r.text << "\n";
    }
  }
  std::cout.flush();
}

// --stats on stderr: the model and its mask, the layout, the counters and timings, the KV bytes.
void print_stats(const Config& cfg, const Model& model, const std::vector<uint8_t>& keep, int ranks, int threads,
                 const GenerationStats& s) {
  const ModelConfig& mc = model.config();
  int64_t compressed = 0;
  for (uint8_t k : keep) compressed += k ? 0 : 1;
  const double secs = s.prefill_seconds + s.decode_seconds;
  std::fprintf(stderr,
               "model: %s (%s), %lld layers x %lld KV heads, %lld compressed (sparsity %.3f), sink %lld, window %lld\n"
               "tensor parallel: %d rank(s), this rank holds %lld KV heads per layer\n"
               "threads: %d, BLAS: %s\n"
               "sequences: %lld, prompt tokens: %lld, generated tokens: %lld, decode steps: %lld (%lld through "
               "resident tables), CUDA graphs captured: %lld\n"
               "time: prefill %.3f s, decode %.3f s; %.1f generated tokens/s\n"
               "KV cache at peak: %s allocated, %s by the formula, %s with every head full (%.1f%%)\n",
               mc.model_type.c_str(), dtype_name(model.dtype()), (long long)mc.num_layers, (long long)mc.num_kv_heads,
               (long long)compressed, double(compressed) / double(keep.size()), (long long)cfg.cache.sink,
               (long long)cfg.cache.window, ranks, (long long)model.local_config().num_kv_heads, threads,
               loaded_blas().c_str(), (long long)s.sequences, (long long)s.prompt_tokens, (long long)s.generated_tokens,
               (long long)s.decode_steps, (long long)s.table_steps, (long long)s.graph_captures, s.prefill_seconds,
               s.decode_seconds, secs > 0 ? double(s.generated_tokens) / secs : 0.0,
               human_bytes(s.peak_kv_allocated_bytes).c_str(), human_bytes(s.peak_kv_formula_bytes).c_str(),
               human_bytes(s.peak_kv_full_bytes).c_str(),
               s.peak_kv_full_bytes ? 100.0 * double(s.peak_kv_allocated_bytes) / double(s.peak_kv_full_bytes) : 0.0);
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  po::options_description desc("rlkv generate options");
  add_generate_options(desc);
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv generate --model DIR --prompt TEXT [options] [--section.key=value ...]\n" << desc;
    return 0;
  }
  add_flag_overrides(vm, args.overrides);
  const Config cfg = load_config(vm.count("config") ? vm["config"].as<std::string>() : "", args.overrides);
  RLKV_CHECK(!cfg.model.path.empty(), "no model: give --model DIR (or model.path in --config)");
  RLKV_CHECK(vm.count("prompt"), "no prompt: give --prompt TEXT");
  const int64_t samples = vm["num-samples"].as<int64_t>();
  RLKV_CHECK(samples >= 1 && samples <= 1000000, "--num-samples must be in 1..1000000, got ", samples);
  const bool sparsity_given = vm.count("sparsity") != 0;
  const double sparsity = sparsity_given ? vm["sparsity"].as<double>() : 0.0;
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "--sparsity must be in [0, 1], got ", sparsity);

  MpiSession mpi(nullptr, nullptr);
  return run_on_ranks("generate", mpi, [&] {
    std::shared_ptr<Collectives> world = mpi.active() ? mpi_world() : local_collectives();
    const int ranks = world->size();
    RLKV_CHECK(cfg.actor.tensor_parallel == 1 || cfg.actor.tensor_parallel == ranks,
               "actor.tensor_parallel = ", cfg.actor.tensor_parallel, " but rlkv generate runs on ", ranks,
               " rank(s): it runs one tensor-parallel group of all ranks (launch/mpirun.sh -np N)");
    const bool printer = world->rank() == 0;
    std::shared_ptr<Collectives> node = ranks > 1 ? std::shared_ptr<Collectives>(world->split_node()) : nullptr;
    const int threads = set_intra_op_threads(cfg, node ? node->size() : 1);
    const Model model = load_group_model(cfg, world, node);

    const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
    const std::vector<uint8_t> keep = resolve_mask(vm["mask"].as<std::string>(), sparsity, sparsity_given,
                                                   model.config(), printer ? cfg.cache.sink : -1, cfg.cache.window);
    const std::vector<GenerationRequest> reqs = make_requests(vm, cfg, tok, keep, samples);
    GeneratorOptions go = generator_options(cfg);
    go.num_threads = threads;
    Generator gen(model, &tok, go);
    const auto results = gen.run(reqs);
    if (!printer) return 0;
    print_results(results, vm.count("json") != 0);
    if (vm.count("stats")) print_stats(cfg, model, keep, ranks, threads, gen.stats());
    return 0;
  });
}

}  // namespace rlkv
