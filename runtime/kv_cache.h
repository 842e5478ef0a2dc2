// Per-head KV caches in two pools (docs/design.md section 5), as in the paper's SGLang backend:
//   - full heads: a paged pool of rows [page, page_size, head_dim]; a (sequence, layer, head) takes a
//     new page every page_size tokens;
//   - compressed heads: a pool of fixed rings of S + W rows; position p lives in slot p if p < S,
//     else S + (p - S) mod W (rlkv_ring_slot), so the ring always holds the S sink and W most recent
//     positions.
// Each sequence has its own head mask (keep[l * H_kv + h] = 1: full), so one batch mixes masks.
// Pools grow by doubling when a free list runs dry (the base pointers move then, which is why kernel
// spans are rebuilt for every call); memory of finished sequences returns to the free lists.
//
// Token dropping (the baselines of docs/design.md section 10; runtime/eviction.h has the rules): a
// sequence added with a token budget keeps, for every head, at most eviction_capacity() entries in
// the rows of its pages, in position order; when a decode step finds them full, the method's rule
// chooses the entries that stay (H2O: one leaves each step; SnapKV / R-KV: back to the budget) and
// they are compacted to the front. The rules' evidence is gathered as decoding goes: the attention
// each entry receives (an output of the CPU kernel) and the last queries. CPU only.
//
// Byte accounting: `allocated_bytes()` counts the pages and rings held by live sequences;
// `formula_bytes()` is docs/design.md's 2 * bytes_per_element * head_dim * (n * full + min(n, S + W) *
// compressed) summed over layers and live sequences; `reserved_bytes()` is the pools' capacity.
// Not thread safe: one generator drives one cache.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/attention.h"
#include "runtime/eviction.h"
#include "runtime/model_config.h"

namespace rlkv {

class KvCache {
 public:
  // Where the page lists of the full heads live for the kernels. Host: the spans point at host vectors
  // (the CPU kernels read them; a GPU binding would copy them per call). Table: an int32 tensor
  // [sequence slots * L * H_kv, max pages] on the cache's device, updated in place as pages are taken
  // (one small scatter per write call when anything changed), so a GPU step uploads no page lists.
  // Automatic: table on GPUs, host on the CPU.
  enum class PageLists { automatic, host, table };

  KvCache(const ModelConfig& cfg, at::ScalarType dtype, at::Device device, int64_t sink, int64_t window,
          int64_t page_size, PageLists page_lists = PageLists::automatic);

  // A new empty sequence with head mask `keep` (size L * H_kv, 1 = full cache; empty = all full), or,
  // with `budget` > 0, token dropping on every head at that budget (tokens per head; `keep` must
  // then be empty or all full, and set_token_dropping must have chosen the method).
  int64_t add_sequence(const std::vector<uint8_t>& keep, int64_t budget = 0);
  // The token-dropping method and its parameters (sink and window are the cache's; the budget is
  // each sequence's). Only for a cache on the CPU.
  void set_token_dropping(EvictionMethod method, const EvictionParams& params);
  // KV rows (each of K and V) the sequence holds now, over all layers and KV heads.
  int64_t rows_held(int64_t seq) const;
  // The positions a token-dropping head of `seq` holds now (ascending); head_index = layer * H_kv + h.
  std::vector<int64_t> dropping_positions(int64_t seq, int64_t head_index) const;
  // After the attention of a decode step's `layer` (q [B, Hq, head_dim], the same `seqs` as the
  // spans it read): token-dropping sequences keep the attention their entries received (H2O) and the
  // step's queries (SnapKV, R-KV). Nothing for the others.
  void note_decode_attention(const std::vector<int64_t>& seqs, int64_t layer, const at::Tensor& q);
  void release(int64_t seq);
  int64_t length(int64_t seq) const;
  const std::vector<uint8_t>& keep(int64_t seq) const;

  // Sizes the pools for at least `pages` pages and `rings` rings in one allocation each (instead of
  // growth by doubling, which holds old and new pools at once while it copies): for large GPU caches.
  void reserve_capacity(int64_t pages, int64_t rings);
  // Makes room for `new_len` tokens in `seq` (pages / rings), before any write. Can grow the pools.
  void reserve(int64_t seq, int64_t new_len);
  // Writes positions [0, T) of `seq` for `layer`: k, v [T, H_kv, head_dim] (contiguous, cache
  // dtype). Compressed heads keep only their sink and last-window positions.
  void write_prefill(int64_t seq, int64_t layer, const at::Tensor& k, const at::Tensor& v, int num_threads);
  // Writes one token per sequence at position length(seq): k, v [B, H_kv, head_dim].
  void write_decode(const std::vector<int64_t>& seqs, int64_t layer, const at::Tensor& k, const at::Tensor& v,
                    int num_threads);
  // Sets the length after all layers of a step were written.
  void set_length(int64_t seq, int64_t len);
  // A decode step's bookkeeping around its writes: begin_step reserves one more token for each of
  // `seqs` and returns their lengths (the new tokens' positions); end_step advances each by one.
  std::vector<int64_t> begin_step(const std::vector<int64_t>& seqs);
  void end_step(const std::vector<int64_t>& seqs);
  // Kernel view of `layer` for `seqs`, [seqs.size() * H_kv], each sequence taken at
  // length(seq) + `extra_tokens` tokens (0: as it is; 1 during a decode step, the new token included).
  std::vector<rlkv_kv_span> spans(const std::vector<int64_t>& seqs, int64_t layer, int64_t extra_tokens) const;

  // Tables of one decode step for every layer, written to host memory (a pinned mirror of the device
  // tables of runtime/static_decode.h): spans[l * R * H_kv + b * H_kv + h] over length(seq) + 1 tokens,
  // and items[same index] writing the new token at position length(seq), read from
  // k_src + l * src_layer_stride + (b * H_kv + h) * head_dim elements (v_src likewise; strides and
  // offsets in bytes; k_src / v_src null: items without sources, for a kernel that stores K / V
  // itself). R = `rows_per_layer` (0: B = seqs.size(); else >= B, and the entries of rows B..R-1, a
  // padded batch's, are left to the caller). Every sequence must be reserved for length + 1 first.
  void step_tables(const std::vector<int64_t>& seqs, rlkv_kv_span* spans, rlkv_kv_write_item* items, const char* k_src,
                   const char* v_src, int64_t src_layer_stride, int64_t rows_per_layer = 0);

  int64_t allocated_bytes() const;
  int64_t formula_bytes() const;
  int64_t reserved_bytes() const;
  int64_t peak_allocated_bytes() const { return peak_allocated_; }
  int64_t peak_formula_bytes() const { return peak_formula_; }
  int64_t live_sequences() const;
  // Updates the peak figures (the generator calls it once per step: it walks every live sequence).
  void update_peak();
  // Starts the peak figures again from what is held now (Generator::reset_stats).
  void reset_peak() {
    peak_allocated_ = 0;
    peak_formula_ = 0;
    update_peak();
  }
  // True when spans' and write items' page lists are device memory (the page table of a GPU cache).
  bool pages_on_device() const { return use_table_ && !device_.is_cpu(); }
  bool uses_page_table() const { return use_table_; }
  int64_t sink() const { return sink_; }
  int64_t window() const { return window_; }

 private:
  // A token-dropping head: its entries are rows 0..n-1 of its pages, positions ascending.
  struct Dropped {
    std::vector<int64_t> pos;
    std::vector<double> acc;         // H2O: attention each entry has received
    std::vector<float> queries;      // SnapKV / R-KV: the last queries, [kept][group][head_dim], oldest first
    std::vector<int64_t> query_pos;  // their positions
  };
  struct Seq {
    bool live = false;
    int64_t len = 0;
    int64_t budget = 0;                       // > 0: token dropping on every head
    std::vector<uint8_t> keep;                // [L * H]
    std::vector<std::vector<int32_t>> pages;  // [L * H], full and token-dropping heads
    std::vector<int32_t> ring;                // [L * H], compressed heads (-1 for full)
    std::vector<Dropped> dropped;             // [L * H] when budget > 0
  };
  int32_t take_page();
  int32_t take_ring();
  void grow(at::Tensor& k, at::Tensor& v, std::vector<int32_t>& free, int64_t rows_per_unit, int64_t at_least = 0);
  const Seq& seq_ref(int64_t seq) const;
  rlkv_kv_span span_of(const Seq& s, size_t head_index, int64_t tokens) const;
  // The write of position `pos` of a head into its span `sp` = span_of(s, head_index, pos + 1).
  rlkv_kv_write_item write_item(const Seq& s, size_t head_index, int64_t pos, const rlkv_kv_span& sp, const char* k_src,
                                const char* v_src) const;

  // Token dropping (kv_dropping.cpp).
  int64_t dropping_capacity(const Seq& s) const;
  EvictionParams dropping_params(const Seq& s) const;
  char* entry_row(const Seq& s, size_t i, int64_t entry, bool value) const;
  void copy_entry(const Seq& s, size_t i, int64_t from, int64_t to);
  void write_prefill_dropping(Seq& s, int64_t layer, const at::Tensor& k, const at::Tensor& v);
  int64_t make_room(Seq& s, size_t i);  // the entry the next token goes to
  void compress(Seq& s, size_t i);
  std::vector<std::vector<float>> entry_keys(const Seq& s, size_t i) const;
  std::optional<EvictionMethod> dropping_;
  EvictionParams dropping_params_;
  mutable std::vector<std::vector<float>> weights_;  // the last spans()' attention outputs (H2O)

  ModelConfig cfg_;
  at::ScalarType dtype_;
  at::Device device_;
  rlkv_dtype kdtype_;
  int64_t sink_, window_, page_size_, head_dim_, heads_, layers_;
  int64_t esz_;
  at::Tensor k_pages_, v_pages_;  // [capacity, page_size, head_dim]
  at::Tensor k_rings_, v_rings_;  // [capacity, S + W, head_dim]
  std::vector<int32_t> free_pages_, free_rings_;
  int64_t pages_used_ = 0, rings_used_ = 0;
  std::vector<Seq> seqs_;
  std::vector<int64_t> free_seq_ids_;
  int64_t peak_allocated_ = 0, peak_formula_ = 0;
  // Page table (PageLists::table): row (seq * L * H + i) holds the pages of head i of seq.
  bool use_table_ = false;
  at::Tensor page_table_;  // int32 [table_rows_, table_cols_] on device_
  int64_t table_rows_ = 0, table_cols_ = 0;
  std::vector<int64_t> dirty_at_;  // flat offsets of entries set since the last flush
  std::vector<int32_t> dirty_page_;
  void table_note(int64_t seq, size_t i);  // after s.pages[i] grew by one page
  void table_flush();                      // applies the noted entries (rebuilding if it must grow)
  void table_rebuild(int64_t rows, int64_t cols);
};

rlkv_dtype to_kv_dtype(at::ScalarType t);

}  // namespace rlkv
