// A decode step whose cache traffic goes through tables resident on the device, so that everything
// it launches can be captured once in a CUDA graph and replayed.
//
// The eager step (Model::forward_decode) builds each layer's span and write-item records on the host
// and copies them to the GPU per layer and per call, between the layer's kernels: ~2 copies and
// ~20 kernel launches per layer, each paid by the host at every step. Here, per step, the host writes
// every layer's records at once into a pinned mirror (KvCache::step_tables), issues one copy of them,
// one of the positions and one of the tokens, and then either runs the layers eagerly or replays a
// CUDA graph of them. What the graph reads stays at fixed addresses: the tables, the token and position
// buffers, and a buffer for each layer's new K / V rows (the write items' sources; with the fused
// layer kernels, the q / k / v kernel stores K / V through the write items itself, and the buffer
// (not allocated then), its two copies and the KV-write launch drop out of the step). The attention
// launch shape is fixed by a bound on the cache lengths (max_len: blocks past a span's end exit at
// once). The cache's own addresses (pools, page table) are not captured: they reach the kernels
// through the tables uploaded at every step, so the cache may grow freely. A graph is captured per
// StaticDecode (one per batch size, which may run fewer sequences as padding) and again only when a
// length passes max_len (which then doubles); the graphs of one generator (StaticDecodes) share one
// memory pool, and with pad_batches a generator's batch sizes share graphs by bucket.
// The capture step runs the layers once, eagerly, as the warm-up before its capture, and does not replay.
//
// On the CPU (and with cuda_graph off) the same tables drive the CPU kernels: this is how the tests
// check the path on machines without a GPU. Not for tensor-parallel models (their collectives are
// not captured here); the generator keeps those on the eager step.
// Measured on an H200 (tests/op_test_runtime_cuda.cpp, bench/bench_decode_step.cpp): logits equal the
// CPU's with and without graphs (fp32 <= 1.2e-6, bf16 <= 7e-3); graphs take a decode step of an
// 8B-shaped model at batch 4 x 16k tokens from 30.8 ms (eager) to 13.95 ms.
// Thread safety: none; one StaticDecode per cache and batch size, driven by one thread.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/model.h"

namespace rlkv {

// What the graphs of one StaticDecodes share: a memory pool of the CUDA caching allocator for their
// temporaries, held by this object (so that re-capturing a graph after its reset finds the pool even
// when no other graph holds it), and the stream they are captured on, created for this object and
// no other's (a pool's free blocks serve only the stream they were allocated on, so captures on
// different streams would not reuse each other's; and work another thread launched onto a stream
// while it captures would be recorded into the graph).
// Sharing is safe when graphs replay one at a time on one stream and no tensor a capture allocates
// outlives it: a graph's temporaries are then dead whenever another replays. StaticDecode's captures
// qualify: what a step leaves behind is in buffers made before the capture (tables, the new K / V
// rows, the output). Made by StaticDecodes; opaque elsewhere.
class GraphShare;

// Bytes the CUDA caching allocator holds from the driver on `device` (0 off CUDA); with
// `release_unused`, after returning to the driver what no tensor or graph holds. For measurements.
int64_t device_reserved_bytes(const at::Device& device, bool release_unused = false);

struct StaticDecodeOptions {
  bool cuda_graph = true;  // capture and replay on CUDA devices (ignored on the CPU)
  int64_t max_len = 0;     // initial bound of the cache lengths (0: twice the longest at the first step)
  int num_threads = 0;     // CPU kernels
  std::shared_ptr<GraphShare> graph_share;  // null: one of its own (a pool and a capture stream of its own)
  // StaticDecodes::step runs n sequences through the StaticDecode of graph_batch_bucket(n) rows, the
  // rest padded, instead of one of n rows: a generator whose batch shrinks from B to 1 captures about
  // 3 + B / 8 graphs instead of B. A pad row costs its share of the GEMMs (weight-bound at decode
  // batch sizes) and a one-slot attention; it touches no cache. Off: one StaticDecode per batch size.
  bool pad_batches = false;
};

// The batch size a padded step of n sequences runs at: n up to 2, then 4, then multiples of 8.
int64_t graph_batch_bucket(int64_t n);

class StaticDecode {
 public:
  StaticDecode(const Model& model, KvCache& cache, int64_t batch, StaticDecodeOptions opts = {});
  ~StaticDecode();
  StaticDecode(const StaticDecode&) = delete;
  StaticDecode& operator=(const StaticDecode&) = delete;

  // Model::forward_decode's contract for `seqs` (1 to `batch` of them) and tokens [n = seqs.size()]
  // (any device): appends one token to each sequence and returns the final-normed hidden states
  // [n, hidden]. With n < batch the step runs at `batch` rows all the same (the graph's shape): rows
  // past n are padding that reads and writes buffers of this object only (see pad_tables). The
  // returned tensor is (a view of) a buffer of this object: use it before the next step.
  at::Tensor step(const at::Tensor& tokens, const std::vector<int64_t>& seqs);

  int64_t max_len() const { return max_len_; }
  int64_t captures() const { return captures_; }  // graph captures so far (0 off CUDA)
  // The last captured graph's kernel nodes and all its nodes (copies and memsets included): the
  // launches one replayed step makes. -1 before a capture (or where the CUDA runtime could not say).
  int64_t graph_kernels() const { return graph_kernels_; }
  int64_t graph_nodes() const { return graph_nodes_; }
  bool uses_graph() const { return use_graph_; }

 private:
  struct Graph;
  void compute();
  void capture();
  void pad_tables(int64_t n, rlkv_kv_span* spans, rlkv_kv_write_item* items, const char* k_new, const char* v_new,
                  int64_t layer_stride) const;

  const Model& model_;
  KvCache& cache_;
  int64_t batch_;
  StaticDecodeOptions opts_;  // declared before graph_: its graph_share outlives the graph
  bool use_graph_ = false;
  int64_t max_len_ = 0;
  int64_t captures_ = 0;
  int64_t graph_kernels_ = -1, graph_nodes_ = -1;
  int64_t entries_ = 0;                  // layers * batch * KV heads
  at::Tensor tables_host_, tables_dev_;  // [spans | items], bytes (the same tensor on the CPU)
  at::Tensor pos_host_, pos_dev_;        // [B] int64
  at::Tensor tok_host_, tok_dev_;        // [B] int64
  at::Tensor kv_new_;  // [L, 2, B, H_kv, head_dim] new K / V rows of the step (undefined with the fused write)
  at::Tensor out_;     // [B, hidden]
  at::Tensor pad_kv_;  // [2, B, H_kv, head_dim]: the one slot of each padded row's heads
  std::unique_ptr<Graph> graph_;
  // A graph replaced (its bound passed) or whose capture failed, kept until the next capture ends:
  // the caching allocators (device and pinned host) keep a pool whose last graph is gone and refuse
  // to capture into it again, so a shared pool must never be left without a graph between captures.
  std::unique_ptr<Graph> retired_;
};

// The StaticDecodes of one cache, one per batch size run (with pad_batches, one per bucket), made on
// first use, their graphs sharing one GraphShare: a generator meets every batch size from its
// largest down to 1 as sequences finish, and graphs with pools of their own would each keep their
// step's temporaries (activations, the attention's partial results), so their memory would grow with
// the number of batch sizes met instead of staying at the largest step's. Thread safety: as StaticDecode.
class StaticDecodes {
 public:
  StaticDecodes(const Model& model, KvCache& cache, StaticDecodeOptions opts);
  StaticDecode& batch(int64_t size);  // this batch size's StaticDecode
  // A step of `seqs` (StaticDecode::step's contract) through batch(seqs.size()), or with
  // pad_batches through batch(graph_batch_bucket(seqs.size())).
  at::Tensor step(const at::Tensor& tokens, const std::vector<int64_t>& seqs);
  size_t size() const { return by_batch_.size(); }
  int64_t captures() const;  // graph captures of all its StaticDecodes so far
  // Holders of the shared memory pool as the CUDA caching allocator counts them: this object and each
  // graph captured into it; -1 without one (graphs off, a CPU model, no CUDA LibTorch).
  int pool_users() const;

 private:
  const Model& model_;
  KvCache& cache_;
  StaticDecodeOptions opts_;  // before by_batch_: the share outlives the graphs
  std::map<int64_t, std::unique_ptr<StaticDecode>> by_batch_;
};

}  // namespace rlkv
