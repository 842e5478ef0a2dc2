// Decode step time of a Llama-3.1-8B-shaped model with random weights (end-to-end
// benchmark; not a test: it prints numbers). Default shape: 32 layers, hidden 4096, 32 query / 8 KV
// heads of 128, MLP 14336, vocabulary 128256, bf16, on --device (cuda by default).
//
// For each batch size and sparsity s (fraction of each sequence's KV heads compressed, a seeded random
// choice per sequence), every sequence gets a cache of --context tokens written directly (random K/V
// through KvCache::write_prefill: compressed heads keep their S sink and W last positions), then
// --steps decode steps run through Model::forward_decode (mode eager) or a StaticDecode (mode graphs:
// resident tables, replayed CUDA graphs on a GPU) + logits + greedy argmax copied to the host (what the
// generator does per step), with the fused layer kernels (--fused on, the default) and / or with ATen
// operators in their place (--fused off). Printed per setting, one JSON line: ms per step, tokens/s, ATen operator
// calls of one step as the host dispatches them (nested calls included; a replayed graph needs few), in
// graphs mode on a GPU the kernels and all nodes of the captured step (the launches a replay makes), the
// KV bytes the step's attention reads, and for s > 0 the speed-up over s = 0 against two predictions:
//   - "theory_attention": 1 / ((1 - s) + s (S + W) / len), the attention-only bound;
//   - "theory_bytes": (weights + KV bytes at s = 0) / (weights + KV bytes at s), the whole step as a
//     memory-bound read of weights and caches.
// --graph-batches N adds, per graphs setting, one JSON line "graph_memory": the reserved GPU memory
// and the captures that N more batch sizes add with a graph and a memory pool each, with a graph each
// in one shared pool, and with batches padded to their buckets in one shared pool (what a generator
// does), see graph_memory below.
// Run by launch/gpu_check.sh on a GPU machine; on a CPU it runs too (use a small --layers).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/layer_ops.h"
#include "runtime/model.h"
#include "runtime/static_decode.h"

namespace po = boost::program_options;
using namespace rlkv;

namespace {

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stod(item));
  return out;
}

// ATen operator calls dispatched by this thread (nested ones included) while a counter is installed:
// on a GPU, roughly the kernel launches the host pays for in an eager step.
int64_t g_ops = 0;
std::unique_ptr<at::ObserverContext> count_op(const at::RecordFunction&) {
  ++g_ops;
  return nullptr;
}
template <class F>
int64_t count_ops(F&& f) {
  g_ops = 0;
  const at::CallbackHandle h =
      at::addThreadLocalCallback(at::RecordFunctionCallback(&count_op).scopes({at::RecordScope::FUNCTION}));
  f();
  at::removeCallback(h);
  return g_ops;
}

void sync(const at::Tensor& t) {
  // A host copy waits for the stream that produced `t` (and everything queued before it).
  (void)t.to(at::kCPU);
}

// The memory a generator's graphs take as its batch shrinks from B (= seqs.size()): one decode step
// each through batch sizes B-1 down to B-n (each captures a graph), first with a memory pool per graph
// (separate StaticDecodes), then through one StaticDecodes (one pool shared), then through one that
// pads batches to their buckets (as a generator does: graph_batch_bucket, fewer captures): the growth
// of the CUDA caching allocator's reserved bytes in each case (with a pool each, each capture also
// takes a new stream, and cuBLAS keeps a workspace per stream), the captures, and the mean time of
// these steps (a step that captures makes its StaticDecode, runs an eager step, the capture and the
// graph's instantiation; compare ms_per_step).
nlohmann::json graph_memory(const Model& model, KvCache& cache, const std::vector<int64_t>& seqs,
                            const at::Tensor& tokens, int64_t max_len, int64_t n, int threads) {
  const int64_t B = int64_t(seqs.size()), last = std::max<int64_t>(1, B - n);
  if (last >= B) return {{"bench", "graph_memory"}, {"batch", B}, {"batch_sizes", 0}};  // batch 1: no smaller size
  StaticDecodeOptions so;
  so.max_len = max_len;
  so.num_threads = threads;
  nlohmann::json j = {{"bench", "graph_memory"}, {"batch", B}, {"batch_sizes", B - last}};
  for (const std::string key : {"own_pools", "shared_pool", "padded"}) {
    const int64_t before = device_reserved_bytes(model.device(), /*release_unused=*/true);
    int64_t captures = 0;
    std::vector<std::unique_ptr<StaticDecode>> own;  // own_pools: a StaticDecode (and pool) per batch size
    StaticDecodeOptions o = so;
    o.pad_batches = key == "padded";
    std::optional<StaticDecodes> sds;  // the others: one StaticDecodes, its graphs in one pool
    if (key != "own_pools") sds.emplace(model, cache, o);
    std::map<int64_t, StaticDecode*> ran;  // batch size run -> its StaticDecode
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t b = B - 1; b >= last; --b) {
      const std::vector<int64_t> sb(seqs.begin(), seqs.begin() + b);
      if (key == "own_pools") {
        own.push_back(std::make_unique<StaticDecode>(model, cache, b, so));
        (void)own.back()->step(tokens.slice(0, 0, b), sb);
        ran[b] = own.back().get();
      } else {
        (void)sds->step(tokens.slice(0, 0, b), sb);
        const int64_t rows = o.pad_batches ? graph_batch_bucket(b) : b;
        ran[rows] = &sds->batch(rows);
      }
    }
    for (const auto& [rows, sd] : ran) captures += sd->captures();
    (void)device_reserved_bytes(model.device());  // waits for the steps
    const double ms = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3;
    // What the graphs and their StaticDecodes hold (unused cached blocks returned first, as before).
    const int64_t grown = device_reserved_bytes(model.device(), /*release_unused=*/true) - before;
    j[key + "_bytes"] = grown;
    j[key + "_captures"] = captures;
    j[key + "_ms_per_step"] = ms / double(B - last);
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) try {
  po::options_description desc("bench_decode_step");
  std::string device_name, batches, sparsities, dtype_name_opt, modes, fused_opt;
  int64_t layers, hidden, heads, kv_heads, head_dim, inter, vocab, context, steps, sink, window, page, threads,
      graph_batches;
  desc.add_options()("help,h", "show this help")("device", po::value(&device_name)->default_value("cuda"),
                                                 "cpu | cuda | cuda:N")(
      "batch", po::value(&batches)->default_value("32,64,128"), "batch sizes")(
      "sparsity", po::value(&sparsities)->default_value("0,0.5"), "fractions of KV heads compressed")(
      "mode", po::value(&modes)->default_value("eager,graphs"),
      "eager (Model::forward_decode) and/or graphs (StaticDecode: resident tables, CUDA graphs on a GPU)")(
      "fused", po::value(&fused_opt)->default_value("on"),
      "on and/or off: the fused layer kernels of a decode step on a GPU (runtime/layer_ops.h), or ATen operators")(
      "context", po::value(&context)->default_value(4096), "cached tokens per sequence")(
      "steps", po::value(&steps)->default_value(16), "timed decode steps")(
      "layers", po::value(&layers)->default_value(32), "")("hidden", po::value(&hidden)->default_value(4096), "")(
      "heads", po::value(&heads)->default_value(32), "")("kv-heads", po::value(&kv_heads)->default_value(8), "")(
      "head-dim", po::value(&head_dim)->default_value(128), "")("intermediate", po::value(&inter)->default_value(14336),
                                                                "")("vocab", po::value(&vocab)->default_value(128256),
                                                                    "")(
      "dtype", po::value(&dtype_name_opt)->default_value("bfloat16"), "float32 | bfloat16 | float16")(
      "sink", po::value(&sink)->default_value(16), "S")("window", po::value(&window)->default_value(64), "W")(
      "page-size", po::value(&page)->default_value(16), "rows per page of the full-head pool")(
      "threads", po::value(&threads)->default_value(2), "CPU threads (device cpu)")(
      "graph-batches", po::value(&graph_batches)->default_value(0),
      "N > 0 (graphs mode): after the timing, the memory of N more graphs, batch sizes B-1 down to "
      "B-N, with a pool each and sharing one");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  po::notify(vm);
  at::set_num_threads(int(threads));
  const at::Device device(device_name);
  const at::ScalarType dtype = parse_dtype(dtype_name_opt);

  ModelConfig c;
  c.model_type = "llama";
  c.num_layers = layers;
  c.hidden_size = hidden;
  c.num_q_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.intermediate_size = inter;
  c.vocab_size = vocab;
  c.rope_theta = 500000.0;
  c.rms_norm_eps = 1e-5;
  at::manual_seed(1234);
  const auto t_load = std::chrono::steady_clock::now();
  Model model = Model::random(c, dtype, 1234, 0.02, device);
  const double param_bytes = double(model.parameter_bytes());
  std::cerr << "bench_decode_step: random model on " << device.str() << ": " << param_bytes / 1e9 << " GB in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count() << " s\n";
  const int64_t es = int64_t(at::elementSize(dtype));
  // Weight bytes one step reads: every parameter but the input embedding table, of which a step reads
  // the batch's rows only (untied; a tied table is read whole by the output projection).
  const auto weight_bytes_read = [&](int64_t B) {
    if (c.tie_word_embeddings) return param_bytes;
    return param_bytes - double(c.vocab_size * c.hidden_size * es) + double(B * c.hidden_size * es);
  };
  const int64_t heads_total = layers * kv_heads;
  const auto opts = at::TensorOptions().dtype(dtype).device(device);

  std::vector<std::string> mode_list;
  {
    std::stringstream ms(modes);
    std::string m;
    while (std::getline(ms, m, ',')) {
      RLKV_CHECK(m == "eager" || m == "graphs", "--mode: expected eager and/or graphs, got '", m, "'");
      mode_list.push_back(m);
    }
  }
  std::vector<bool> fused_list;
  {
    std::stringstream fs(fused_opt);
    std::string f;
    while (std::getline(fs, f, ',')) {
      RLKV_CHECK(f == "on" || f == "off", "--fused: expected on and/or off, got '", f, "'");
      fused_list.push_back(f == "on");
    }
  }
  std::map<std::tuple<std::string, bool, int64_t>, double> dense_ms;  // (mode, fused, batch) -> ms at s = 0
  std::map<std::tuple<std::string, bool, int64_t>, double> dense_kv;  // (mode, fused, batch) -> KV bytes at s = 0
  for (double bd : parse_list(batches)) {
    const int64_t B = int64_t(bd);
    for (double s : parse_list(sparsities)) {
      // Masks: each sequence compresses round(s * heads_total) of its KV heads, a seeded choice.
      std::mt19937 rng(uint32_t(B * 1000 + int64_t(s * 100)));
      std::vector<std::vector<uint8_t>> keeps;
      int64_t full_heads = 0, comp_heads = 0;
      for (int64_t b = 0; b < B; ++b) {
        std::vector<uint8_t> keep(size_t(heads_total), 1);
        std::vector<int64_t> idx(static_cast<size_t>(heads_total));
        std::iota(idx.begin(), idx.end(), 0);
        std::shuffle(idx.begin(), idx.end(), rng);
        const int64_t n = int64_t(s * double(heads_total) + 0.5);
        for (int64_t i = 0; i < n; ++i) keep[size_t(idx[size_t(i)])] = 0;
        full_heads += heads_total - n;
        comp_heads += n;
        keeps.push_back(std::move(keep));
      }
      // One cache per (batch, sparsity), filled once; each mode then decodes steps + 2 more tokens, and
      // graph_memory's three passes up to graph_batches each.
      const int64_t total =
          context + int64_t(mode_list.size() * fused_list.size()) * (steps + 2 + 3 * graph_batches) + 2;
      KvCache cache(c, dtype, device, sink, window, page);
      cache.reserve_capacity(full_heads * ((total + page - 1) / page), comp_heads);
      // Random K / V for the context, shared by every sequence and layer (contents do not change the time).
      at::Tensor kr = at::randn({context, kv_heads, head_dim}, opts) * 0.5;
      at::Tensor vr = at::randn({context, kv_heads, head_dim}, opts);
      std::vector<int64_t> seqs;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t id = cache.add_sequence(keeps[size_t(b)]);
        cache.reserve(id, context);
        for (int64_t l = 0; l < layers; ++l) cache.write_prefill(id, l, kr, vr, int(threads));
        cache.set_length(id, context);
        seqs.push_back(id);
      }
      at::Tensor tokens = at::randint(0, vocab, {B}, at::TensorOptions().dtype(at::kLong).device(device));
      for (const bool fused : fused_list)
        for (const std::string& mode : mode_list) {
          model.set_fused_decode(fused);
          const double len0 = double(cache.length(seqs[0]));
          std::unique_ptr<StaticDecode> sd;
          if (mode == "graphs") {
            StaticDecodeOptions so;
            so.max_len = total;
            so.num_threads = int(threads);
            sd = std::make_unique<StaticDecode>(model, cache, B, so);
          }
          auto step = [&] {
            at::Tensor h = sd ? sd->step(tokens, seqs) : model.forward_decode(tokens, cache, seqs, int(threads));
            tokens = model.logits(h).argmax(-1);
            at::Tensor host = tokens.to(at::kCPU);  // the generator samples on the host
            (void)host;
          };
          step();  // warm-up: allocator, cuBLAS handles and workspaces (and the graph's capture)
          sync(tokens);
          const int64_t ops = count_ops(step);  // one more (untimed) step, counting its ATen calls
          sync(tokens);
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t i = 0; i < steps; ++i) step();
          sync(tokens);
          const double ms =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3 / double(steps);
          // Bytes the attention of one step reads (all layers): K and V rows of every span, at the mean length.
          const double len = len0 + 2.0 + double(steps) / 2.0;
          const double kv_read = 2.0 * double(head_dim * es) *
                                 (double(full_heads) * len + double(comp_heads) * std::min(len, double(sink + window)));
          if (s == 0.0) {
            dense_ms[{mode, fused, B}] = ms;
            dense_kv[{mode, fused, B}] = kv_read;
          }
          const double weight_bytes = weight_bytes_read(B);
          nlohmann::json j = {{"bench", "decode_step"},
                              {"mode", mode},
                              {"fused_layer_ops", fused && fused_layer_ops_available(device)},
                              {"device", device.str()},
                              {"graph_captures", sd ? sd->captures() : 0},
                              {"graph_kernels_per_step", sd ? sd->graph_kernels() : -1},
                              {"graph_nodes_per_step", sd ? sd->graph_nodes() : -1},
                              {"aten_ops_per_step", ops},
                              {"dtype", dtype_name(dtype)},
                              {"layers", layers},
                              {"batch", B},
                              {"context", context},
                              {"sparsity", s},
                              {"sink", sink},
                              {"window", window},
                              {"ms_per_step", ms},
                              {"tokens_per_s", double(B) * 1e3 / ms},
                              {"weight_bytes", weight_bytes},
                              {"kv_bytes_read_per_step", kv_read},
                              {"gb_per_s_weights_plus_kv", (weight_bytes + kv_read) / (ms * 1e-3) / 1e9}};
          if (s > 0.0 && dense_ms.count({mode, fused, B})) {
            const double speedup = dense_ms[{mode, fused, B}] / ms;
            const double t_att = 1.0 / ((1.0 - s) + s * double(sink + window) / len);
            const double t_bytes = (weight_bytes + dense_kv[{mode, fused, B}]) / (weight_bytes + kv_read);
            j["speedup_vs_dense"] = speedup;
            j["theory_attention"] = t_att;
            j["theory_bytes"] = t_bytes;
            j["of_theory_bytes"] = speedup / t_bytes;
          }
          std::cout << j.dump() << std::endl;
          if (sd && graph_batches > 0) {  // on the CPU: no graphs, 0 bytes
            sd.reset();
            std::cout << graph_memory(model, cache, seqs, tokens, total, graph_batches, int(threads)).dump()
                      << std::endl;
          }
        }
    }
  }
  return 0;
} catch (const c10::Error& e) {  // first line only: LibTorch appends a C++ backtrace
  const std::string what = e.what_without_backtrace();
  std::cerr << "bench_decode_step: " << what.substr(0, what.find('\n')) << "\n";
  return 2;
} catch (const std::exception& e) {
  std::cerr << "bench_decode_step: " << e.what() << "\n";
  return 2;
}
