// Decode throughput and KV memory of the runtime (not a test: it prints numbers).
// For each batch size, generates exactly --new-tokens tokens per sequence (EOS disabled) from random
// prompts, with every head full and with half of the KV heads compressed, and prints one JSON line
// per run: {"impl": "rlkv", "batch", "mask", "tokens_per_s", "decode_tokens_per_s", "kv_bytes", ...}.
// bench/run_decode_bench.sh runs it next to transformers' generate on the same model.
#include <ATen/Parallel.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/model.h"

namespace po = boost::program_options;
using namespace rlkv;

int main(int argc, char** argv) try {
  po::options_description desc("bench_decode");
  std::string model_dir, batches;
  int64_t prompt_len, new_tokens, threads, sink, window, repeats;
  desc.add_options()("help,h", "show this help")("model", po::value(&model_dir)->required(), "model directory")(
      "batch", po::value(&batches)->default_value("1,8,32"), "batch sizes")(
      "prompt-len", po::value(&prompt_len)->default_value(16), "prompt tokens")(
      "new-tokens", po::value(&new_tokens)->default_value(64), "generated tokens per sequence")(
      "threads", po::value(&threads)->default_value(2), "CPU threads")("sink", po::value(&sink)->default_value(4), "S")(
      "window", po::value(&window)->default_value(16), "W")("repeats", po::value(&repeats)->default_value(3),
                                                            "timed runs per setting (best is reported)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  po::notify(vm);
  at::set_num_threads(int(threads));
  const Model model = Model::load(model_dir, at::kFloat);
  const ModelConfig& c = model.config();
  const int64_t heads = c.num_layers * c.num_kv_heads;
  std::vector<uint8_t> half(size_t(heads), 1);
  for (int64_t i = 0; i < heads; i += 2) half[size_t(i)] = 0;

  std::stringstream bs(batches);
  std::string item;
  while (std::getline(bs, item, ',')) {
    const int64_t B = std::stoll(item);
    for (const char* mask_name : {"full", "half"}) {
      std::mt19937 rng(1234);
      std::vector<GenerationRequest> reqs;
      for (int64_t b = 0; b < B; ++b) {
        GenerationRequest r;
        r.id = b;
        for (int64_t t = 0; t < prompt_len; ++t) r.prompt.push_back(int32_t(rng() % uint32_t(c.vocab_size)));
        if (std::string(mask_name) == "half") r.keep = half;
        r.stream = uint64_t(b);
        reqs.push_back(std::move(r));
      }
      GeneratorOptions o;
      o.sampling.temperature = 0;
      o.max_new_tokens = new_tokens;
      o.eos_ids = {-1};
      o.max_batch = B;
      o.sink = sink;
      o.window = window;
      o.num_threads = int(threads);
      Generator g(model, nullptr, o);
      g.run(reqs);  // warm-up (pools, allocator, BLAS buffers)
      double best = 1e30, best_decode = 1e30;
      GenerationStats st;
      for (int64_t r = 0; r < repeats; ++r) {
        g.reset_stats();
        const auto t0 = std::chrono::steady_clock::now();
        g.run(reqs);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (secs < best) {
          best = secs;
          best_decode = g.stats().decode_seconds;
          st = g.stats();
        }
      }
      nlohmann::json j = {{"impl", "rlkv"},
                          {"model", c.model_type},
                          {"batch", B},
                          {"mask", mask_name},
                          {"threads", threads},
                          {"generated_tokens", st.generated_tokens},
                          {"seconds", best},
                          {"tokens_per_s", double(st.generated_tokens) / best},
                          {"decode_tokens_per_s", double(st.generated_tokens - B) / best_decode},
                          {"graph_captures", st.graph_captures},
                          {"kv_bytes_allocated", st.peak_kv_allocated_bytes},
                          {"kv_bytes_formula", st.peak_kv_formula_bytes},
                          {"kv_bytes_all_full", st.peak_kv_full_bytes}};
      std::cout << j.dump() << std::endl;
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_decode: " << e.what() << "\n";
  return 2;
}
