// Batched generation with per-sequence head masks and continuous batching (docs/design.md section 5).
//
// A run takes any number of requests. Up to max_batch sequences decode together; whenever some
// finish, queued requests join: their prompts are prefilled together (full attention on all heads,
// right-padded, which is exact under a causal mask), their caches are then compressed to sink +
// window for the heads their mask compresses, and they enter the decode batch. Each sequence samples
// from its own seeded stream, so its tokens do not depend on batch composition (up to GEMM rounding).
// Stops: EOS ids, stop strings, the length cap, and the repetition detector of docs/design.md section 4
// (every K generated tokens, stop when the last K hold fewer than U distinct tokens).
// Not thread safe; one Generator per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/finish_reason.h"
#include "runtime/eviction.h"
#include "runtime/sampling.h"

namespace rlkv {

class Model;
class Tokenizer;
class KvCache;
class StaticDecodes;

struct GenerationRequest {
  int64_t id = 0;
  std::vector<int32_t> prompt;  // token ids, at least one
  std::vector<uint8_t> keep;    // [L * H_kv] 1 = full cache, 0 = compressed; empty = all full
  uint64_t stream = 0;          // sampling stream of this sequence (with GeneratorOptions::seed)
  // > 0: token dropping (GeneratorOptions::dropping) on every head, at most this many tokens per
  // head after each compression; `keep` must then be empty.
  int64_t budget = 0;
};

struct GenerationResult {
  int64_t id = 0;
  int64_t prompt_len = 0;
  std::vector<int32_t> tokens;  // generated tokens (EOS included when it ended the sequence)
  std::string text;             // decoded generated text (special tokens skipped); empty without a tokenizer
  FinishReason finish = FinishReason::kLength;
  int64_t kv_rows_peak = 0;  // KV rows (each of K and V) held at the sequence's peak, over layers and KV heads
};

// When decode steps run through device-resident tables captured as CUDA graphs (runtime/static_decode.h).
// kAuto: on for a model on a GPU that is not tensor-parallel and runs no token dropping (the cases the
// graph step supports), eager everywhere else. kOn on the CPU runs the same table-driven step without a
// capture (how the tests check it there). Measured on an H200: a decode step of an 8B-shaped model at
// batch 4 x 16k tokens takes 13.95 ms through graphs against 30.8 ms eager, and no measured shape was
// slower; a graph is captured once per batch bucket a Generator meets (a batch of n sequences runs at
// graph_batch_bucket(n) rows, the rest padding: 1, 2, 4, then multiples of 8) and again when the cache
// lengths pass its bound, so an actor that keeps its Generator pays each capture once.
enum class CudaGraphs { kOff, kOn, kAuto };

// kAuto resolved for a model on a GPU or not, tensor-parallel or not, with token dropping or not.
bool resolve_cuda_graphs(CudaGraphs mode, bool on_gpu, bool tensor_parallel, bool token_dropping);

struct GeneratorOptions {
  SamplingParams sampling;
  uint64_t seed = 0;
  int64_t max_new_tokens = 256;
  std::vector<std::string> stop;
  int64_t repetition_every = 0;
  int64_t repetition_min_distinct = 0;
  int64_t max_batch = 32;
  int64_t sink = 4, window = 16, page_size = 16;
  int num_threads = 0;
  std::vector<int64_t> eos_ids;  // defaults to the model's when empty
  // Decode steps through device-resident tables (runtime/static_decode.h), one StaticDecode per batch
  // size (per batch bucket with graphs); with cuda_graphs, captured and replayed as CUDA graphs on a
  // GPU (see CudaGraphs). Not for
  // tensor-parallel models (they keep the eager step). runtime.cuda_graphs (auto | true | false) sets
  // cuda_graphs.
  bool resident_tables = false;
  CudaGraphs cuda_graphs = CudaGraphs::kAuto;
  // Logits on a GPU are sampled there (runtime/sampling_device.h): only the tokens come back.
  bool sample_on_device = true;
  // The token-dropping baseline that requests with a budget run (runtime/eviction.h; CPU only). The
  // parameters' sink and window are the generator's; the budget is each request's.
  std::optional<EvictionMethod> dropping;
  EvictionParams dropping_params;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;
  int64_t table_steps = 0;     // decode steps through resident tables (runtime/static_decode.h)
  int64_t graph_captures = 0;  // CUDA graphs captured by the decode steps (0 without graphs)
  int64_t sequences = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  // KV bytes (of this rank's KV heads under tensor parallelism):
  int64_t peak_kv_allocated_bytes = 0;  // pages + rings held by live sequences, at the peak
  int64_t peak_kv_formula_bytes = 0;    // docs/design.md section 5 formula at the peak
  int64_t peak_kv_full_bytes = 0;       // the same sequences with every head full, at the peak
};

class Generator {
 public:
  Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts);
  ~Generator();

  // Generates for every request; `on_done` (optional) sees each result as it finishes. Results are
  // returned in request order.
  std::vector<GenerationResult> run(const std::vector<GenerationRequest>& requests,
                                    const std::function<void(const GenerationResult&)>& on_done = {});
  const GenerationStats& stats() const { return stats_; }
  bool cuda_graphs() const { return graphs_; }  // decode steps through tables and graphs (CudaGraphs resolved)
  // Zeroes the statistics and the cache's peak figures, so a later run reports its own peak.
  void reset_stats();

 private:
  const Model& model_;
  const Tokenizer* tok_;
  GeneratorOptions opts_;
  bool graphs_ = false;  // opts_.cuda_graphs resolved for this model
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<StaticDecodes> static_;  // over cache_, by batch size; null: the eager step
  GenerationStats stats_;
};

}  // namespace rlkv
