#include "runtime/generator.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <unordered_set>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/sampling_device.h"
#include "runtime/static_decode.h"
#include "runtime/tokenizer.h"

namespace rlkv {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Active {
  size_t index;  // into requests / results
  int64_t seq;   // cache sequence
  Rng rng;
  int32_t last = 0;
  bool done = false;
};

// One Generator::run over the generator's model, cache, static decoders and statistics: the
// requests, their results, the queue of requests not yet admitted and the active sequences.
// Each step is admission (queued requests join, with one batched prefill) or one decode step of
// the active batch; both sample a token per sequence and retire the finished ones.
class GenerationRun {
 public:
  // `statics`: the table-driven decode step (null: the model's eager step).
  GenerationRun(const Model& model, const Tokenizer* tok, const GeneratorOptions& opts, KvCache& cache,
                StaticDecodes* statics, GenerationStats& stats, const std::vector<GenerationRequest>& requests,
                const std::function<void(const GenerationResult&)>& on_done)
      : model_(model),
        tok_(tok),
        opts_(opts),
        cache_(cache),
        statics_(statics),
        stats_(stats),
        requests_(requests),
        on_done_(on_done),
        cfg_(model.config()) {
    check_requests();
    eos_.insert(opts_.eos_ids.begin(), opts_.eos_ids.end());
    results_.resize(requests_.size());
    for (size_t i = 0; i < requests_.size(); ++i) queue_.push_back(i);
  }

  std::vector<GenerationResult> run() {
    try {
      while (!queue_.empty() || !active_.empty()) {
        if (!queue_.empty() && int64_t(active_.size()) < opts_.max_batch) {
          admit();
          continue;  // admit more before decoding if slots freed up
        }
        decode_step();
      }
    } catch (...) {
      for (auto& a : active_) cache_.release(a.seq);
      throw;
    }
    return std::move(results_);
  }

 private:
  // Prompts not empty, within the model's positions and inside the vocabulary, head masks of one entry per KV head (or
  // none).
  void check_requests() const {
    const int64_t V = cfg_.vocab_size;
    const int64_t heads_total = cfg_.num_layers * cfg_.num_kv_heads;
    for (const auto& r : requests_) {
      RLKV_CHECK(!r.prompt.empty(), "request ", r.id, ": empty prompt");
      // Longer prompts are outside what the model was trained for, and an unbounded one exhausts
      // memory in the prefill.
      RLKV_CHECK(cfg_.max_position_embeddings <= 0 || int64_t(r.prompt.size()) <= cfg_.max_position_embeddings,
                 "request ", r.id, ": prompt of ", r.prompt.size(), " tokens, longer than the model's ",
                 "max_position_embeddings (", cfg_.max_position_embeddings, ")");
      for (int32_t t : r.prompt)
        RLKV_CHECK(t >= 0 && t < V, "request ", r.id, ": token id ", t, " outside the vocabulary");
      RLKV_CHECK(r.keep.empty() || int64_t(r.keep.size()) == heads_total, "request ", r.id, ": head mask of ",
                 r.keep.size(), " entries for ", heads_total, " KV heads");
      RLKV_CHECK(r.budget >= 0, "request ", r.id, ": negative token budget");
      if (r.budget == 0) continue;
      RLKV_CHECK(opts_.dropping.has_value(), "request ", r.id, ": a token budget needs GeneratorOptions::dropping");
      RLKV_CHECK(statics_ == nullptr && (model_.tp() == nullptr || model_.tp()->size() == 1),
                 "token dropping runs the eager decode step of a whole model (no resident tables, CUDA graphs or "
                 "tensor parallelism)");
    }
  }

  // Admits queued requests into free batch slots with one batched prefill.
  void admit() {
    const auto t0 = Clock::now();
    const std::vector<size_t> idx = dequeue(std::min(queue_.size(), size_t(opts_.max_batch) - active_.size()));
    const at::Tensor tokens = padded_prompts(idx);
    const size_t first_new = active_.size();
    const std::vector<int64_t> seqs = join(idx);
    prefill(idx, seqs, tokens, first_new);
    note_memory();
    stats_.prefill_seconds += since(t0);
    retire();
  }

  std::vector<size_t> dequeue(size_t take) {
    std::vector<size_t> idx(queue_.begin(), queue_.begin() + int64_t(take));
    queue_.erase(queue_.begin(), queue_.begin() + int64_t(take));
    return idx;
  }

  // The prompts of `idx`, right-padded with zeros to the longest: [idx.size(), longest].
  at::Tensor padded_prompts(const std::vector<size_t>& idx) const {
    int64_t tmax = 0;
    for (size_t i : idx) tmax = std::max<int64_t>(tmax, int64_t(requests_[i].prompt.size()));
    at::Tensor tokens = at::zeros({int64_t(idx.size()), tmax}, at::kLong);
    auto acc = tokens.accessor<int64_t, 2>();
    for (size_t r = 0; r < idx.size(); ++r) {
      const auto& req = requests_[idx[r]];
      for (size_t t = 0; t < req.prompt.size(); ++t) acc[int64_t(r)][int64_t(t)] = req.prompt[t];
    }
    return tokens;
  }

  // New sequences join: a cache sequence with this rank's share of the head mask, room for the
  // prompt, their results' ids, then their place in the active batch. Returns the cache sequences.
  std::vector<int64_t> join(const std::vector<size_t>& idx) {
    const TpShard& shard = model_.shard();
    std::vector<int64_t> seqs;
    for (size_t i : idx) {
      const auto& req = requests_[i];
      const int64_t seq =
          cache_.add_sequence(shard.local_mask(req.keep, cfg_.num_layers, cfg_.num_kv_heads), req.budget);
      // Active at once: if a later request of this admission throws (a budget add_sequence refuses,
      // a reservation that fails), run()'s clean-up releases this one too.
      active_.push_back(Active{i, seq, Rng(opts_.seed, req.stream)});
      cache_.reserve(seq, int64_t(req.prompt.size()));
      seqs.push_back(seq);
      results_[i].id = req.id;
      results_[i].prompt_len = int64_t(req.prompt.size());
      stats_.prompt_tokens += int64_t(req.prompt.size());
      ++stats_.sequences;
    }
    return seqs;
  }

  // Full attention over the padded prompts, writing each prompt's K / V into its cache, then the
  // first token of each new sequence (active_[first_new...]) sampled from its last position.
  void prefill(const std::vector<size_t>& idx, const std::vector<int64_t>& seqs, const at::Tensor& tokens,
               size_t first_new) {
    const size_t take = idx.size();
    at::Tensor hidden =
        model_.forward_dense(tokens.to(model_.device()), [&](int64_t layer, const at::Tensor& k, const at::Tensor& v) {
          for (size_t r = 0; r < take; ++r) {
            const int64_t T = int64_t(requests_[idx[r]].prompt.size());
            cache_.write_prefill(seqs[r], layer, k[int64_t(r)].narrow(0, 0, T).contiguous(),
                                 v[int64_t(r)].narrow(0, 0, T).contiguous(), opts_.num_threads);
          }
        });
    std::vector<at::Tensor> last;
    std::vector<Active*> rows;
    for (size_t r = 0; r < take; ++r) {
      const int64_t T = int64_t(requests_[idx[r]].prompt.size());
      cache_.set_length(seqs[r], T);
      last.push_back(hidden[int64_t(r)][T - 1]);
      rows.push_back(&active_[first_new + r]);
    }
    const at::Tensor logits = model_.logits(at::stack(last));
    // Weights that hold NaN or Inf (a damaged or badly converted checkpoint), or activations that
    // overflow the dtype, make logits NaN or Inf; the rollouts would then be noise that scores nothing.
    // Checked once per prefill (the decode steps stay free of host syncs).
    RLKV_CHECK(at::isfinite(logits).all().item<bool>(), "the model computes NaN or Inf logits for a prompt: its ",
               "weights hold NaN or Inf, or its activations overflow ", c10::toString(model_.dtype()));
    sample_rows(logits, rows);
  }

  // One decode step of every active sequence: its last token in, its next token sampled.
  void decode_step() {
    const auto t0 = Clock::now();
    std::vector<int64_t> seqs;
    std::vector<int64_t> toks;
    std::vector<Active*> rows;
    for (auto& a : active_) {
      seqs.push_back(a.seq);
      toks.push_back(a.last);
      rows.push_back(&a);
    }
    sample_rows(model_.logits(decode_forward(seqs, toks)), rows);
    ++stats_.decode_steps;
    note_memory();
    stats_.decode_seconds += since(t0);
    retire();
  }

  // The decode forward pass: through the StaticDecode of this batch size or, with graphs, of its
  // bucket (made on first use) where the generator takes the table-driven step, else the model's eager step.
  at::Tensor decode_forward(const std::vector<int64_t>& seqs, const std::vector<int64_t>& toks) {
    if (statics_ == nullptr)
      return model_.forward_decode(at::tensor(toks).to(model_.device()), cache_, seqs, opts_.num_threads);
    const int64_t before = statics_->captures();
    at::Tensor h = statics_->step(at::tensor(toks), seqs);
    stats_.graph_captures += statics_->captures() - before;
    ++stats_.table_steps;
    return h;
  }

  // Every rank of a tensor-parallel group holds the same gathered logits and samples the same
  // tokens; rank 0's are broadcast anyway so that the group can never drift apart.
  void sample_rows(const at::Tensor& logits, std::vector<Active*>& rows) {
    const int64_t V = cfg_.vocab_size;
    at::Tensor toks;
    if (!logits.device().is_cpu() && opts_.sample_on_device) {
      // Only the chosen tokens come back (runtime/sampling_device.h), once, after the group's
      // broadcast on the device; the rows' uniforms are drawn here.
      std::vector<double> u(rows.size(), 0.0);
      if (!opts_.sampling.greedy())
        for (size_t b = 0; b < rows.size(); ++b) u[b] = rows[b]->rng.uniform();
      toks = sample_rows_on_device(logits, opts_.sampling, u);
      if (model_.tp()) model_.tp()->broadcast(toks, 0);
      toks = toks.to(at::kCPU).contiguous();
    } else {
      toks = at::empty({int64_t(rows.size())}, at::kInt);
      at::Tensor lg = logits.to(at::kCPU).contiguous();
      const float* base = lg.data_ptr<float>();
      int32_t* t = toks.data_ptr<int32_t>();
      for (size_t b = 0; b < rows.size(); ++b)
        t[b] = sample_token(base + int64_t(b) * V, V, opts_.sampling, rows[b]->rng, scratch_);
      if (model_.tp()) model_.tp()->broadcast(toks, 0);
    }
    const int32_t* t = toks.data_ptr<int32_t>();
    for (size_t b = 0; b < rows.size(); ++b) accept(*rows[b], t[b]);
  }

  // Appends a sampled token to sequence `a` and decides whether it is finished, checking in order:
  // EOS, a stop string, the repetition detector, the length cap (max_new_tokens, or prompt and response
  // filling the model's max_position_embeddings: positions past it were never trained).
  void accept(Active& a, int32_t tok) {
    GenerationResult& res = results_[a.index];
    res.tokens.push_back(tok);
    a.last = tok;
    ++stats_.generated_tokens;
    if (eos_.count(tok)) {
      finish(a, FinishReason::kEos);
    } else if (tok_ && !tok_->is_special(tok) && append_text_to_stop(res, tok)) {
      finish(a, FinishReason::kStop);
    } else if (repetitive(res.tokens)) {
      finish(a, FinishReason::kRepetition);
    } else if (int64_t(res.tokens.size()) >= opts_.max_new_tokens ||
               (cfg_.max_position_embeddings > 0 &&
                res.prompt_len + int64_t(res.tokens.size()) >= cfg_.max_position_embeddings)) {
      finish(a, FinishReason::kLength);  // the cap, or the model's context full
    }
  }

  void finish(Active& a, FinishReason why) {
    results_[a.index].finish = why;
    a.done = true;
  }

  // Appends the token's bytes to the text; true when a stop string now ends the text (which is then
  // cut right after it). A stop string can only end inside the bytes just added.
  bool append_text_to_stop(GenerationResult& res, int32_t tok) const {
    const std::string bytes = tok_->token_bytes(tok);
    const size_t before = res.text.size();
    res.text += bytes;
    for (const auto& s : opts_.stop) {
      const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
      const size_t at = res.text.find(s, from);
      if (at != std::string::npos) {
        res.text.resize(at + s.size());
        return true;
      }
    }
    return false;
  }

  // Every repetition_every tokens: fewer than repetition_min_distinct distinct among the last ones.
  bool repetitive(const std::vector<int32_t>& tokens) const {
    const int64_t n = int64_t(tokens.size());
    const int64_t K = opts_.repetition_every;
    if (!(K > 0 && n % K == 0)) return false;
    std::unordered_set<int32_t> distinct(tokens.end() - K, tokens.end());
    return int64_t(distinct.size()) < opts_.repetition_min_distinct;
  }

  // Peak KV bytes: allocated, by the formula, and with every head of the live sequences full.
  void note_memory() {
    const int64_t local_heads = cfg_.num_layers * model_.local_config().num_kv_heads;
    cache_.update_peak();
    int64_t tokens = 0;
    for (const auto& a : active_) tokens += cache_.length(a.seq);
    const int64_t full =
        2 * int64_t(rlkv_dtype_size(to_kv_dtype(model_.dtype()))) * cfg_.head_dim * local_heads * tokens;
    stats_.peak_kv_full_bytes = std::max(stats_.peak_kv_full_bytes, full);
    stats_.peak_kv_allocated_bytes = std::max(stats_.peak_kv_allocated_bytes, cache_.peak_allocated_bytes());
    stats_.peak_kv_formula_bytes = std::max(stats_.peak_kv_formula_bytes, cache_.peak_formula_bytes());
    for (const auto& a : active_) {
      int64_t& peak = results_[a.index].kv_rows_peak;
      peak = std::max(peak, cache_.rows_held(a.seq));
    }
  }

  // Finished sequences leave: their cache is released and on_done sees their result.
  void retire() {
    for (auto& a : active_)
      if (a.done) {
        cache_.release(a.seq);
        if (on_done_) on_done_(results_[a.index]);
      }
    auto done = [](const Active& a) { return a.done; };
    active_.erase(std::remove_if(active_.begin(), active_.end(), done), active_.end());
  }

  const Model& model_;
  const Tokenizer* tok_;
  const GeneratorOptions& opts_;
  KvCache& cache_;
  StaticDecodes* statics_;
  GenerationStats& stats_;
  const std::vector<GenerationRequest>& requests_;
  const std::function<void(const GenerationResult&)>& on_done_;
  const ModelConfig& cfg_;
  std::unordered_set<int64_t> eos_;
  std::vector<GenerationResult> results_;
  std::deque<size_t> queue_;  // indices of requests not yet admitted, in request order
  std::vector<Active> active_;
  SamplingScratch scratch_;
};

}  // namespace

bool resolve_cuda_graphs(CudaGraphs mode, bool on_gpu, bool tensor_parallel, bool token_dropping) {
  if (mode != CudaGraphs::kAuto) return mode == CudaGraphs::kOn;
  return on_gpu && !tensor_parallel && !token_dropping;
}

Generator::Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts)
    : model_(model), tok_(tokenizer), opts_(std::move(opts)) {
  RLKV_CHECK(opts_.max_batch >= 1, "generator: max_batch must be >= 1");
  RLKV_CHECK(opts_.max_new_tokens >= 1, "generator: max_new_tokens must be >= 1");
  if (opts_.eos_ids.empty()) opts_.eos_ids = model.config().eos_token_ids;
  const bool tp = model.tp() != nullptr && model.tp()->size() > 1;
  graphs_ = resolve_cuda_graphs(opts_.cuda_graphs, !model.device().is_cpu(), tp, opts_.dropping.has_value());
  // A tensor-parallel rank caches only its own KV heads.
  cache_ = std::make_unique<KvCache>(model.local_config(), model.dtype(), model.device(), opts_.sink, opts_.window,
                                     opts_.page_size);
  if (opts_.dropping) cache_->set_token_dropping(*opts_.dropping, opts_.dropping_params);
  // The table-driven step (graphs or not) where it applies: not for tensor-parallel models.
  if ((opts_.resident_tables || graphs_) && !tp) {
    StaticDecodeOptions so;
    so.cuda_graph = graphs_;
    // Fewer graphs to capture; where none is captured (the CPU), padding would only add work.
    so.pad_batches = graphs_ && model.device().is_cuda();
    so.num_threads = opts_.num_threads;
    static_ = std::make_unique<StaticDecodes>(model, *cache_, so);
  }
}

Generator::~Generator() = default;

std::vector<GenerationResult> Generator::run(const std::vector<GenerationRequest>& requests,
                                             const std::function<void(const GenerationResult&)>& on_done) {
  at::NoGradGuard no_grad;  // generation never needs gradients, even on a model being trained
  return GenerationRun(model_, tok_, opts_, *cache_, static_.get(), stats_, requests, on_done).run();
}

void Generator::reset_stats() {
  stats_ = GenerationStats();
  cache_->reset_peak();
}

}  // namespace rlkv
