// A Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) on LibTorch tensors.
//
// One implementation of the architecture serves three callers:
//   - forward_dense: full causal attention over right-padded token batches [B, T]; used for prefill,
//     for parity tests against transformers, and (with autograd) for training the toy model;
//   - forward_decode: one new token per sequence, attention over the per-head KV caches through the
//     kernels (kernels/attention.h), each sequence with its own head mask.
// Weights are held fused where that saves GEMM launches: wqkv = [q; k; v] rows and w_gate_up =
// [gate; up] rows (split back by name_map() / hf_tensors() when saving a Hugging Face directory).
// Tensor parallelism: a model loaded with a tensor-parallel group
// holds only its rank's share (query / KV heads with their groups, MLP rows, vocabulary rows):
// column-parallel wqkv and w_gate_up, row-parallel wo and w_down with one all-reduce after each, a
// vocabulary-parallel embedding (one all-reduce) and LM head (one all-gather of the logits). All
// ranks of the group must run the same forward calls in the same order.
// Thread safety: forward calls are const and may run concurrently on different caches, except on a
// tensor-parallel model (one forward at a time: the collectives are ordered).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "runtime/model_config.h"
#include "runtime/tensor_comm.h"
#include "runtime/tp_shard.h"

namespace rlkv {

class KvCache;

struct LayerWeights {
  at::Tensor input_norm;      // [hidden]
  at::Tensor wqkv;            // [(Hq + 2 Hkv) * head_dim, hidden]
  at::Tensor bqkv;            // [(Hq + 2 Hkv) * head_dim] or undefined
  at::Tensor q_norm, k_norm;  // [head_dim] (Qwen3) or undefined
  at::Tensor wo;              // [hidden, Hq * head_dim]
  at::Tensor post_norm;       // [hidden]
  at::Tensor w_gate_up;       // [2 * intermediate, hidden]
  at::Tensor w_down;          // [hidden, intermediate]
};

struct ModelWeights {
  at::Tensor embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;  // [hidden]
  at::Tensor lm_head;     // [vocab, hidden]; the same tensor as embed when tied
};

struct LoadOptions {
  at::Device device = at::kCPU;
  // Tensor-parallel group; null or size 1 = the whole model.
  std::shared_ptr<TensorComm> tp;
  // model.load = broadcast: rank 0 of this group reads every tensor whole and broadcasts it, each
  // rank keeps its share. Null = model.load = shard: every rank reads only the byte ranges of its
  // share from the safetensors files.
  std::shared_ptr<TensorComm> reader_group;
};

struct LoadStats {
  int64_t bytes_read = 0;      // tensor bytes this rank copied out of the safetensors files
  int64_t bytes_received = 0;  // tensor bytes this rank received by broadcast
  int64_t weight_bytes = 0;    // bytes of the weights this rank holds
  double seconds = 0;
};

// Called by forward_dense once per layer with that layer's K and V after RoPE, [B, T, Hkv, head_dim].
using KvSink = std::function<void(int64_t layer, const at::Tensor& k, const at::Tensor& v)>;
// The attention of a dense forward (forward_dense_with): q [B, T, Hq, hd], k / v [B, T, Hkv, hd] after
// RoPE (this rank's heads) -> the attention output [B, T, Hq, hd], before the output projection.
using AttentionFn =
    std::function<at::Tensor(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v)>;
// The cache side of a decode step (forward_decode_with): stores this layer's new K / V [B, Hkv, hd]
// (contiguous, after RoPE; unless forward_decode_with stored them through its write items) and
// returns the attention output [B, Hq, hd] of q [B, Hq, hd].
using DecodeAttention =
    std::function<at::Tensor(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v)>;

class Model {
 public:
  // Loads DIR (config.json + safetensors) into `dtype` on `device`. Throws UserError on bad input.
  static Model load(const std::string& dir, at::ScalarType dtype, at::Device device = at::kCPU);
  static Model load(const std::string& dir, at::ScalarType dtype, const LoadOptions& opts, LoadStats* stats = nullptr);
  // Random weights for a config (tests, toy training from scratch). Deterministic given `seed` on the
  // CPU; on another device the weights are drawn there, from that device's default generator (fast
  // for benchmark-sized models; reproducible only after at::manual_seed).
  static Model random(const ModelConfig& cfg, at::ScalarType dtype, uint64_t seed, double init_std = 0.02,
                      at::Device device = at::kCPU);

  const ModelConfig& config() const { return cfg_; }
  // This rank's share: head counts and intermediate size of the weights it holds (= config() when
  // the model is whole). KV caches are built for it.
  const ModelConfig& local_config() const { return local_; }
  const TpShard& shard() const { return shard_; }
  TensorComm* tp() const { return tp_.get(); }
  const ModelWeights& weights() const { return w_; }
  ModelWeights& mutable_weights() { return w_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }

  // tokens [B, T] int64, positions 0..T-1; returns final-normed hidden states [B, T, hidden].
  at::Tensor forward_dense(const at::Tensor& tokens, const KvSink& kv_sink = {}) const;
  // The same layers with each layer's attention computed by `attend` (forward_dense is this with
  // dense causal attention); differentiable when `attend` is (DuoAttention's gated heads, duo/).
  at::Tensor forward_dense_with(const at::Tensor& tokens, const AttentionFn& attend) const;
  // tokens [B], sequences `seqs` of `cache` (whose lengths give the positions); writes the new K/V
  // into the cache and advances it; returns final-normed hidden states [B, hidden].
  at::Tensor forward_decode(const at::Tensor& tokens, KvCache& cache, const std::vector<int64_t>& seqs,
                            int num_threads) const;
  // The layers of a decode step with the cache handled by `attend`: tokens [B], positions [B] int64 on
  // the model's device; issues only device work (no host copies), so it can be captured in a CUDA
  // graph when `attend` can (runtime/static_decode.h). Returns final-normed hidden states [B, hidden].
  // `kv_items`, when fused_kv_write() (else ignored): a device array of layers x B x Hkv KV write
  // items (kernels/attention.h), layer-major; each layer's q / k / v kernel then also stores K / V
  // through its layer's items, before `attend` runs.
  at::Tensor forward_decode_with(const at::Tensor& tokens, const at::Tensor& positions, const DecodeAttention& attend,
                                 const rlkv_kv_write_item* kv_items = nullptr) const;
  // Whether forward_decode_with's q / k / v kernel stores K / V through `kv_items`: the fused layer
  // kernels run (see set_fused_decode) and the model is whole (a tensor-parallel rank's K / V go
  // through `attend`).
  bool fused_kv_write() const;
  // Decode steps on a GPU run the fused layer kernels (runtime/layer_ops.h: one launch for each
  // residual addition with its RMSNorm, for q / k / v with rotary embedding, for SiLU-and-multiply)
  // where this build has them; off, they run as ATen operators. On by default; the CPU ignores it.
  void set_fused_decode(bool on) { fused_decode_ = on; }
  bool fused_decode() const { return fused_decode_; }
  at::Tensor logits(const at::Tensor& hidden) const;  // [..., hidden] -> [..., vocab], fp32 (every rank)

  // Tensors under their Hugging Face names (fused weights split back), for saving.
  std::vector<std::pair<std::string, at::Tensor>> hf_tensors() const;
  // Every trainable tensor (embedding once when tied).
  std::vector<at::Tensor> parameters() const;

  int64_t parameter_bytes() const;

 private:
  Model() = default;
  // Rotary embedding at `positions` [N] as two tables [N, 1, head_dim] in the activations' dtype, built
  // once per forward and shared by every layer's q and k. `sin` has its first half negated, so that
  // rope(x) = x * cos + swap_halves(x) * sin (the usual x * cos + rotate_half(x) * sin, bit for bit).
  struct Rope {
    at::Tensor cos, sin;
  };
  Rope rope_tables(const at::Tensor& positions, at::ScalarType dtype) const;
  at::Tensor embed(const at::Tensor& tokens) const;
  at::Tensor reduce(at::Tensor partial) const;  // all-reduce of a row-parallel output
  at::Tensor block(int64_t layer, const at::Tensor& x, const at::Tensor& attn_out) const;

  ModelConfig cfg_;
  ModelConfig local_;
  TpShard shard_;
  std::shared_ptr<TensorComm> tp_;
  ModelWeights w_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  at::Tensor inv_freq_;  // [head_dim / 2] fp32
  bool fused_decode_ = true;
};

at::ScalarType parse_dtype(const std::string& name);  // float32 | bfloat16 | float16
const char* dtype_name(at::ScalarType t);

}  // namespace rlkv
