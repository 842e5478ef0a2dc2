// The GPU rollout path against the CPU: the tiny parity models and the toy model loaded on
// cuda:0, prefilled and decoded step by step through paged / ring caches on the device (the CUDA
// KV-write and decode-attention kernels through runtime/torch_attention.cpp) with a mask that compresses
// half the heads, against the same steps on the CPU; the same decode steps replayed as CUDA graphs
// (runtime/static_decode.h), and two batch sizes in turn (one padded) through graphs sharing a memory pool; then
// greedy generations with continuous batching, eager and with graphs, and on many threads with
// streams of their own (20 one after another, then 4 at once).
// The fixtures' head dims (16, 24) take the generic kernel: a random Llama-shaped model with head_dim
// 128 and 4 query heads per KV head, decoded after a 700-token prompt, takes the split kernel with
// split-K and its combine (and, in graph mode, a workspace from the graph's memory pool).
// fp32: logits within 1e-4 of the logit scale (cuBLAS vs CPU GEMM rounding); bf16: within 5e-2.
// Exits 77 (skipped) where LibTorch has no CUDA, no GPU is visible, or the build has no CUDA path.
// Parts (all by default; `--parts` takes a comma-separated subset, `--no-threads` all but threads):
// sampling, parity (steps eager and through graphs), generators (eager and graphs), threads. Run one
// at a time, they tell which part leaves the process unable to exit cleanly.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>

#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/model_thread.h"
#include "runtime/model_writer.h"
#include "runtime/sampling_device.h"
#include "runtime/static_decode.h"
#include "runtime/torch_attention.h"
#include "test_util.h"

using namespace rlkv;

namespace {
int failures = 0;

// The summary line and the exit status, after every part that ran.
int finish() {
  std::printf("op_test_runtime_cuda: %d failed\n", failures);
  return failures ? 1 : 0;
}

void check(bool ok, const std::string& what, double value = 0) {
  std::printf("%s: %s (%g)\n", ok ? "ok" : "FAIL", what.c_str(), value);
  if (!ok) ++failures;
}

// A sequence with mask `keep` prefilled with `prompt` into `cache`; returns its id and the logits of
// the prompt's last position (host).
std::pair<int64_t, at::Tensor> prefill(const Model& m, KvCache& cache, const std::vector<uint8_t>& keep,
                                       const std::vector<int64_t>& prompt) {
  const int64_t T = int64_t(prompt.size());
  const int64_t seq = cache.add_sequence(keep);
  cache.reserve(seq, T);
  at::Tensor h = m.forward_dense(at::tensor(prompt).unsqueeze(0).to(m.device()),
                                 [&](int64_t l, const at::Tensor& k, const at::Tensor& v) {
                                   cache.write_prefill(seq, l, k[0].contiguous(), v[0].contiguous(), 1);
                                 });
  cache.set_length(seq, T);
  return {seq, m.logits(h[0][T - 1]).cpu()};
}

// Graph state after a run through StaticDecodes: captures, and the shared pool's holders as the CUDA
// caching allocator counts them (the StaticDecodes and each live graph).
struct GraphRun {
  int64_t captures = 0;
  int pool_users = 0;
  int64_t kernels = -1;  // kernel nodes of the last captured graph
};

std::vector<at::Tensor> steps(const Model& m, const std::vector<uint8_t>& keep, const std::vector<int64_t>& prompt,
                              const std::vector<int64_t>& cont, GraphRun* graphs = nullptr) {
  KvCache cache(m.local_config(), m.dtype(), m.device(), 2, 3, 4);
  const int64_t T = int64_t(prompt.size());
  auto [seq, first] = prefill(m, cache, keep, prompt);
  std::vector<at::Tensor> out{first};
  if (graphs != nullptr) {  // the same steps as CUDA graph replays
    StaticDecodeOptions o;
    o.max_len = T + 4;  // passes it during the run: the only graph of its pool is reset and captured again
    StaticDecodes sds(m, cache, o);
    StaticDecode& sd = sds.batch(1);
    for (int64_t t : cont) out.push_back(m.logits(sd.step(at::tensor(std::vector<int64_t>{t}), {seq}))[0].cpu());
    *graphs = {sd.captures(), sds.pool_users(), sd.graph_kernels()};
    return out;
  }
  for (int64_t t : cont)
    out.push_back(
        m.logits(m.forward_decode(at::tensor(std::vector<int64_t>{t}).to(m.device()), cache, {seq}, 1))[0].cpu());
  return out;
}

// Three sequences (one with mask `keep`, two all full) decoded in alternating steps of the three and
// of the first alone, as a generator's batch sizes change when sequences finish: with `graphs`,
// through one StaticDecodes padding batches to their buckets (graphs of 4 rows, one of them padding,
// and of 1 row, sharing one memory pool, replayed in turn, each captured again when the lengths pass
// their bound), else eagerly. Returns every step's logits (host); `run` gets the graph state.
std::vector<at::Tensor> alternating(const Model& m, const std::vector<uint8_t>& keep,
                                    const std::vector<int64_t>& prompt, const std::vector<int64_t>& cont, bool graphs,
                                    GraphRun* run = nullptr) {
  KvCache cache(m.local_config(), m.dtype(), m.device(), 2, 3, 4);
  const std::vector<uint8_t> full(keep.size(), 1);
  const int64_t a = prefill(m, cache, keep, prompt).first;
  const int64_t b = prefill(m, cache, full, std::vector<int64_t>(prompt.begin(), prompt.end() - 3)).first;
  const int64_t c = prefill(m, cache, full, std::vector<int64_t>(prompt.begin(), prompt.end() - 1)).first;
  StaticDecodeOptions o;
  o.max_len = int64_t(prompt.size()) + 4;
  o.pad_batches = true;
  StaticDecodes sds(m, cache, o);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < cont.size(); ++i) {
    const std::vector<int64_t> seqs = i % 2 == 0 ? std::vector<int64_t>{a, b, c} : std::vector<int64_t>{a};
    const std::vector<int64_t> toks(seqs.size(), cont[i]);
    const at::Tensor h =
        graphs ? sds.step(at::tensor(toks), seqs) : m.forward_decode(at::tensor(toks).to(m.device()), cache, seqs, 1);
    out.push_back(m.logits(h).cpu());
  }
  if (run != nullptr)
    *run = {sds.size() == 2 ? sds.batch(1).captures() + sds.batch(4).captures() : -1, sds.pool_users()};
  return out;
}

// Saves the random split-kernel model (see the top) into `dir` and returns it.
std::string split_kernel_model(const std::string& dir) {
  ModelConfig c;
  c.model_type = "llama";
  c.num_layers = 2;
  c.hidden_size = 256;
  c.num_q_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 128;
  c.intermediate_size = 512;
  c.vocab_size = 512;
  c.rope_theta = 500000.0;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 4096;
  save_hf_model(Model::random(c, at::kFloat, 11, 0.05), dir, "{}");
  return dir;
}
}  // namespace

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a crash loses no line of what ran before it
  std::string parts = ",sampling,parity,generators,threads,";
  if (argc == 2 && std::string(argv[1]) == "--no-threads") {
    parts = ",sampling,parity,generators,";
  } else if (argc == 3 && std::string(argv[1]) == "--parts") {
    parts = "," + std::string(argv[2]) + ",";
    for (const std::string known : {"sampling", "parity", "generators", "threads"}) {
      for (size_t at; (at = parts.find("," + known + ",")) != std::string::npos;) parts.erase(at, known.size() + 1);
    }
    if (parts != ",") {
      std::fprintf(stderr, "op_test_runtime_cuda: unknown part in '%s' (sampling, parity, generators, threads)\n",
                   argv[2]);
      return 2;
    }
    parts = "," + std::string(argv[2]) + ",";
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: op_test_runtime_cuda [--no-threads | --parts sampling,parity,generators,threads]\n");
    return 2;
  }
  auto part = [&](const char* name) { return parts.find("," + std::string(name) + ",") != std::string::npos; };
  const bool threads = part("threads");
  if (!cuda_kernels_available() || !at::hasCUDA()) {
    std::printf("op_test_runtime_cuda: no CUDA path in this build or no GPU: skipped\n");
    return 77;
  }
  const at::Device gpu(at::kCUDA, 0);
  if (part("sampling")) {
    // Sampling on the GPU (runtime/sampling_device.h) against the host sampler, same uniforms.
    const int64_t B = 64, V = 32000;
    at::manual_seed(3);
    at::Tensor logits = at::randn({B, V}) * 3.0;
    for (const SamplingParams p : {SamplingParams{0.0, 1.0, 0}, SamplingParams{1.0, 1.0, 0},
                                   SamplingParams{0.6, 0.95, 20}, SamplingParams{1.0, 0.9, 0}}) {
      std::vector<double> u(static_cast<size_t>(B));
      int same = 0;
      std::vector<int32_t> want(static_cast<size_t>(B));
      SamplingScratch scratch;
      for (int64_t b = 0; b < B; ++b) {
        Rng a(9, uint64_t(b)), c(9, uint64_t(b));
        want[size_t(b)] = sample_token(logits[b].contiguous().data_ptr<float>(), V, p, a, scratch);
        u[size_t(b)] = c.uniform();
      }
      const at::Tensor got = sample_rows_on_device(logits.to(gpu), p, u).cpu();
      for (int64_t b = 0; b < B; ++b) same += got[b].item<int32_t>() == want[size_t(b)];
      check(same == B,
            "sampling on the GPU equals the host sampler (T " + std::to_string(p.temperature) + ", top_p " +
                std::to_string(p.top_p) + ", top_k " + std::to_string(p.top_k) + ")",
            same);
    }
  }
  // The models are written and loaded only for the parts that use them (so that a part run alone
  // does no more than it needs).
  const bool models = part("parity") || part("generators") || threads;
  if (!models) return finish();
  using rlkv_test::fixture;
  const rlkv_test::TempDir tmp;
  const std::string split_dir = split_kernel_model(tmp / "split");
  for (const std::string& dir :
       {fixture("models/llama_tiny"), fixture("models/qwen2_tiny"), fixture("models/qwen3_tiny"),
        fixture("models/mistral_tiny"), std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner", split_dir}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      const Model cpu = Model::load(dir, dt);
      const Model dev = Model::load(dir, dt, gpu);
      const ModelConfig& c = cpu.config();
      std::mt19937_64 rng(5);
      std::vector<uint8_t> keep(size_t(c.kv_heads_total()));
      for (auto& k : keep) k = uint8_t(rng() & 1);
      keep[0] = 0;
      std::vector<int64_t> prompt, cont;
      const int prompt_len = dir == split_dir ? 700 : 11;
      for (int i = 0; i < prompt_len; ++i) prompt.push_back(int64_t(rng() % uint64_t(c.vocab_size)));
      for (int i = 0; i < 20; ++i) cont.push_back(int64_t(rng() % uint64_t(c.vocab_size)));
      if (part("parity")) {
        const auto a = steps(cpu, keep, prompt, cont);
        const auto b = steps(dev, keep, prompt, cont);
        // The largest difference of any step's logits, relative to the CPU logits' scale (at least 1).
        auto worst_between = [](const std::vector<at::Tensor>& ref, const std::vector<at::Tensor>& x) {
          double w = 0;
          for (size_t i = 0; i < ref.size(); ++i)
            w = std::max(w,
                         (ref[i] - x[i]).abs().max().item<double>() / std::max(1.0, ref[i].abs().max().item<double>()));
          return w;
        };
        auto worst_of = [&](const std::vector<at::Tensor>& x) { return worst_between(a, x); };
        const double worst = worst_of(b);
        check(worst <= (dt == at::kFloat ? 1e-4 : 5e-2), dir + " " + dtype_name(dt) + " decode logits, GPU vs CPU",
              worst);
        GraphRun gr;
        const auto g = steps(dev, keep, prompt, cont, &gr);
        const double worst_graph = worst_of(g);
        check(worst_graph <= (dt == at::kFloat ? 1e-4 : 5e-2) && gr.captures >= 2 && gr.pool_users == 2 &&
                  gr.kernels >= c.num_layers,
              dir + " " + dtype_name(dt) + " decode logits through CUDA graphs (" + std::to_string(gr.captures) +
                  " captures, the pool held by " + std::to_string(gr.pool_users) + ", " + std::to_string(gr.kernels) +
                  " kernels a step), GPU vs CPU",
              worst_graph);
        GraphRun alt;
        const double worst_alt = worst_between(alternating(cpu, keep, prompt, cont, false),
                                               alternating(dev, keep, prompt, cont, true, &alt));
        check(worst_alt <= (dt == at::kFloat ? 1e-4 : 5e-2) && alt.captures >= 4 && alt.pool_users == 3,
              dir + " " + dtype_name(dt) +
                  " batch sizes 3 (padded to 4) and 1 in turn through two graphs sharing a memory pool (" +
                  std::to_string(alt.captures) + " captures, the pool held by " + std::to_string(alt.pool_users) +
                  "), GPU vs CPU",
              worst_alt);
      }
      if (dt != at::kFloat || !(part("generators") || threads)) continue;
      GeneratorOptions o;
      o.cuda_graphs = CudaGraphs::kOff;  // the eager step first, then graphs
      o.sampling.temperature = 0;
      o.max_new_tokens = 16;
      o.max_batch = 3;  // batch 3 (with graphs, padded to 4), then the fourth request alone
      o.eos_ids = {-1};
      o.sink = 2;
      o.window = 3;
      o.page_size = 4;
      std::vector<GenerationRequest> reqs;
      for (int i = 0; i < 4; ++i) {
        GenerationRequest r;
        r.id = i;
        for (int t = 0; t < 5 + 3 * i; ++t) r.prompt.push_back(int32_t(rng() % uint64_t(c.vocab_size)));
        if (i == 1) r.keep = keep;
        r.stream = uint64_t(i);
        reqs.push_back(std::move(r));
      }
      const auto ga = Generator(cpu, nullptr, o).run(reqs);
      if (part("generators")) {
        for (const CudaGraphs mode : {CudaGraphs::kOff, CudaGraphs::kOn}) {
          GeneratorOptions og = o;
          og.cuda_graphs = mode;
          Generator gen(dev, nullptr, og);
          const auto got = gen.run(reqs);
          int same = 0;
          for (size_t i = 0; i < reqs.size(); ++i) same += ga[i].tokens == got[i].tokens;
          // With graphs: batches of 3 (padded to 4) and then 1, each captured at least once.
          const int64_t caps = gen.stats().graph_captures;
          check(same == int(reqs.size()) && (mode == CudaGraphs::kOn ? caps >= 2 : caps == 0),
                dir + " greedy generations" + (mode == CudaGraphs::kOn ? " with CUDA graphs" : "") +
                    " equal on GPU and CPU (" + std::to_string(caps) + " graph captures)",
                same);
        }
      }
      if (!threads) continue;
      // Generator threads as actor threads sharing a GPU run them: each under a ModelThread (its own
      // stream, the device bound, one intra-op thread), half of them capturing and replaying graphs
      // (a capture must not break the other threads' host copies and allocations). 20 threads one
      // after another (threads come and go over a run), then 4 at once.
      std::atomic<int> good{0}, own{0}, runs{0};
      std::mutex err_mu;
      std::exception_ptr err;
      auto body = [&](int i) {
        try {
          const ModelThread mt(dev, 1);
          own += mt.own_stream();
          GeneratorOptions oi = o;
          oi.cuda_graphs = i % 2 == 1 ? CudaGraphs::kOn : CudaGraphs::kOff;
          const auto got = Generator(dev, nullptr, oi).run(reqs);
          int eq = 0;
          for (size_t r = 0; r < reqs.size(); ++r) eq += ga[r].tokens == got[r].tokens;
          good += eq == int(reqs.size());
          ++runs;
        } catch (...) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (!err) err = std::current_exception();
        }
      };
      for (int i = 0; i < 20; ++i) std::thread(body, i).join();
      std::vector<std::thread> four;
      for (int i = 0; i < 4; ++i) four.emplace_back(body, i);
      for (auto& t : four) t.join();
      if (err) std::rethrow_exception(err);
      check(good == 24 && own == 24 && runs == 24,
            dir + " 20 generator threads one after another and 4 at once (eager and graphs) equal the CPU", good);
    }
  }
  return finish();
} catch (const std::exception& e) {
  std::fprintf(stderr, "op_test_runtime_cuda: %s\n", e.what());
  return 1;
}
