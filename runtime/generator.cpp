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

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kRepetition: return "repetition";
  }
  return "?";
}

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

}  // namespace

Generator::Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts)
    : model_(model), tok_(tokenizer), opts_(std::move(opts)) {
  RLKV_CHECK(opts_.max_batch >= 1, "generator: max_batch must be >= 1");
  RLKV_CHECK(opts_.max_new_tokens >= 1, "generator: max_new_tokens must be >= 1");
  if (opts_.eos_ids.empty()) opts_.eos_ids = model.config().eos_token_ids;
  // A tensor-parallel rank caches only its own KV heads.
  cache_ = std::make_unique<KvCache>(model.local_config(), model.dtype(), model.device(), opts_.sink, opts_.window,
                                     opts_.page_size);
}

Generator::~Generator() = default;

std::vector<GenerationResult> Generator::run(const std::vector<GenerationRequest>& requests,
                                             const std::function<void(const GenerationResult&)>& on_done) {
  at::NoGradGuard no_grad;  // generation never needs gradients, even on a model being trained
  const ModelConfig& cfg = model_.config();
  const int64_t V = cfg.vocab_size;
  const int64_t heads_total = cfg.num_layers * cfg.num_kv_heads;
  const int64_t local_heads = cfg.num_layers * model_.local_config().num_kv_heads;
  const TpShard& shard = model_.shard();
  for (const auto& r : requests) {
    RLKV_CHECK(!r.prompt.empty(), "request ", r.id, ": empty prompt");
    for (int32_t t : r.prompt) RLKV_CHECK(t >= 0 && t < V, "request ", r.id, ": token id ", t, " outside the vocabulary");
    RLKV_CHECK(r.keep.empty() || int64_t(r.keep.size()) == heads_total, "request ", r.id, ": head mask of ",
               r.keep.size(), " entries for ", heads_total, " KV heads");
  }
  const std::unordered_set<int64_t> eos(opts_.eos_ids.begin(), opts_.eos_ids.end());
  size_t max_stop = 0;
  for (const auto& s : opts_.stop) max_stop = std::max(max_stop, s.size());

  std::vector<GenerationResult> results(requests.size());
  std::deque<size_t> queue;
  for (size_t i = 0; i < requests.size(); ++i) queue.push_back(i);
  std::vector<Active> active;
  SamplingScratch scratch;
  KvCache& cache = *cache_;
  const bool use_static = (opts_.resident_tables || opts_.cuda_graphs) &&
                          (model_.tp() == nullptr || model_.tp()->size() == 1);

  // Appends a sampled token to sequence `a` and decides whether it is finished.
  auto accept = [&](Active& a, int32_t tok) {
    GenerationResult& res = results[a.index];
    res.tokens.push_back(tok);
    a.last = tok;
    ++stats_.generated_tokens;
    if (eos.count(tok)) {
      res.finish = FinishReason::kEos;
      a.done = true;
      return;
    }
    if (tok_ && !tok_->is_special(tok)) {
      const std::string bytes = tok_->token_bytes(tok);
      const size_t before = res.text.size();
      res.text += bytes;
      // A stop string can only end inside the bytes just added.
      for (const auto& s : opts_.stop) {
        const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
        const size_t at = res.text.find(s, from);
        if (at != std::string::npos) {
          res.text.resize(at + s.size());
          res.finish = FinishReason::kStop;
          a.done = true;
          return;
        }
      }
    }
    const int64_t n = int64_t(res.tokens.size());
    const int64_t K = opts_.repetition_every;
    if (K > 0 && n % K == 0) {
      std::unordered_set<int32_t> distinct(res.tokens.end() - K, res.tokens.end());
      if (int64_t(distinct.size()) < opts_.repetition_min_distinct) {
        res.finish = FinishReason::kRepetition;
        a.done = true;
        return;
      }
    }
    if (n >= opts_.max_new_tokens) {
      res.finish = FinishReason::kLength;
      a.done = true;
    }
  };

  // Every rank of a tensor-parallel group holds the same gathered logits and samples the same
  // tokens; rank 0's are broadcast anyway so that the group can never drift apart.
  auto sample_rows = [&](const at::Tensor& logits, std::vector<Active*>& rows) {
    at::Tensor toks;
    if (!logits.device().is_cpu() && opts_.sample_on_device) {
      // Only the chosen tokens come back (runtime/sampling_device.h), once, after the group's
      // broadcast on the device; the rows' uniforms are drawn here.
      std::vector<double> u(rows.size(), 0.0);
      if (opts_.sampling.temperature > 0)
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
        t[b] = sample_token(base + int64_t(b) * V, V, opts_.sampling, rows[b]->rng, scratch);
      if (model_.tp()) model_.tp()->broadcast(toks, 0);
    }
    const int32_t* t = toks.data_ptr<int32_t>();
    for (size_t b = 0; b < rows.size(); ++b) accept(*rows[b], t[b]);
  };

  auto note_memory = [&]() {
    cache.update_peak();
    int64_t tokens = 0;
    for (const auto& a : active) tokens += cache.length(a.seq);
    const int64_t full = 2 * int64_t(kv_dtype_size(to_kv_dtype(model_.dtype()))) * cfg.head_dim * local_heads * tokens;
    stats_.peak_kv_full_bytes = std::max(stats_.peak_kv_full_bytes, full);
    stats_.peak_kv_allocated_bytes = std::max(stats_.peak_kv_allocated_bytes, cache.peak_allocated_bytes());
    stats_.peak_kv_formula_bytes = std::max(stats_.peak_kv_formula_bytes, cache.peak_formula_bytes());
  };

  auto retire = [&]() {
    for (auto& a : active)
      if (a.done) {
        cache.release(a.seq);
        if (on_done) on_done(results[a.index]);
      }
    active.erase(std::remove_if(active.begin(), active.end(), [](const Active& a) { return a.done; }), active.end());
  };

  try {
    while (!queue.empty() || !active.empty()) {
      // Admit queued requests into free batch slots with one batched prefill.
      if (!queue.empty() && int64_t(active.size()) < opts_.max_batch) {
        const auto t0 = Clock::now();
        const size_t take = std::min(queue.size(), size_t(opts_.max_batch) - active.size());
        std::vector<size_t> idx(queue.begin(), queue.begin() + int64_t(take));
        queue.erase(queue.begin(), queue.begin() + int64_t(take));
        int64_t tmax = 0;
        for (size_t i : idx) tmax = std::max<int64_t>(tmax, int64_t(requests[i].prompt.size()));
        at::Tensor tokens = at::zeros({int64_t(take), tmax}, at::kLong);
        auto acc = tokens.accessor<int64_t, 2>();
        std::vector<int64_t> seqs;
        for (size_t r = 0; r < take; ++r) {
          const auto& req = requests[idx[r]];
          for (size_t t = 0; t < req.prompt.size(); ++t) acc[int64_t(r)][int64_t(t)] = req.prompt[t];
          const int64_t seq = cache.add_sequence(shard.local_mask(req.keep, cfg.num_layers, cfg.num_kv_heads));
          cache.reserve(seq, int64_t(req.prompt.size()));
          seqs.push_back(seq);
          results[idx[r]].id = req.id;
          results[idx[r]].prompt_len = int64_t(req.prompt.size());
          stats_.prompt_tokens += int64_t(req.prompt.size());
          ++stats_.sequences;
        }
        const size_t first_new = active.size();
        for (size_t r = 0; r < take; ++r)
          active.push_back(Active{idx[r], seqs[r], Rng(opts_.seed, requests[idx[r]].stream)});
        at::Tensor hidden = model_.forward_dense(tokens.to(model_.device()), [&](int64_t layer, const at::Tensor& k,
                                                                                 const at::Tensor& v) {
          for (size_t r = 0; r < take; ++r) {
            const int64_t T = int64_t(requests[idx[r]].prompt.size());
            cache.write_prefill(seqs[r], layer, k[int64_t(r)].narrow(0, 0, T).contiguous(),
                                v[int64_t(r)].narrow(0, 0, T).contiguous(), opts_.num_threads);
          }
        });
        std::vector<at::Tensor> last;
        std::vector<Active*> rows;
        for (size_t r = 0; r < take; ++r) {
          const int64_t T = int64_t(requests[idx[r]].prompt.size());
          cache.set_length(seqs[r], T);
          last.push_back(hidden[int64_t(r)][T - 1]);
          rows.push_back(&active[first_new + r]);
        }
        sample_rows(model_.logits(at::stack(last)), rows);
        note_memory();
        stats_.prefill_seconds += since(t0);
        retire();
        continue;  // admit more before decoding if slots freed up
      }
      const auto t0 = Clock::now();
      std::vector<int64_t> seqs;
      std::vector<int64_t> toks;
      std::vector<Active*> rows;
      for (auto& a : active) {
        seqs.push_back(a.seq);
        toks.push_back(a.last);
        rows.push_back(&a);
      }
      at::Tensor hidden;
      if (use_static) {
        auto& sd = static_[int64_t(seqs.size())];
        if (!sd) {
          StaticDecodeOptions so;
          so.cuda_graph = opts_.cuda_graphs;
          so.num_threads = opts_.num_threads;
          sd = std::make_unique<StaticDecode>(model_, cache, int64_t(seqs.size()), so);
        }
        hidden = sd->step(at::tensor(toks), seqs);
      } else {
        hidden = model_.forward_decode(at::tensor(toks).to(model_.device()), cache, seqs, opts_.num_threads);
      }
      sample_rows(model_.logits(hidden), rows);
      ++stats_.decode_steps;
      note_memory();
      stats_.decode_seconds += since(t0);
      retire();
    }
  } catch (...) {
    for (auto& a : active) cache.release(a.seq);
    throw;
  }
  return results;
}

}  // namespace rlkv
