// DuoAttention's head identification (Xiao et al. 2024) as a baseline head-score trainer
// (`rlkv duo-train`): one gate alpha in [0, 1] per (layer, KV head), initialised to 1. Every query
// head of a KV head attends as
//     alpha x full causal attention + (1 - alpha) x streaming attention,
// streaming attention letting a query at position t see only the sink p < S and the recent window
// t - W < p <= t (itself included): what a compressed head's S + W ring holds. The model's weights are
// frozen; the gates minimise
//     loss = mse + reg x mean |alpha|,
// mse the mean over label positions and hidden units of (h_full - h_gated)^2, h the final-norm hidden
// states (Model::forward_dense's output) of the full and of the gated model. AdamW on the gates only
// (betas 0.9 / 0.999, eps 1e-8, no weight decay), the gradient rescaled to L2 norm `clip` when longer,
// alphas clamped to [0, 1] after each step; learning rate lr x min(1, (s + 1) / w, (N - s) / w) at
// step s of N, w = max(1, N / 5): a linear warm-up over the first fifth, constant, and a linear decay
// over the last fifth that reaches 0 just after the last step. The final alphas are the head scores
// (higher = keep the full cache), written in DuoAttention's format and ours (masks/mask_export.h).
//
// Label positions are the positions whose hidden state predicts a target token (the position before
// each target token), since that hidden state is what the model turns into the token. Data:
//   retrieval  synthetic passkeys in the toy vocabulary (duo_retrieval_sequence below): the "haystack"
//              is a list of random numbers, each query makes the model copy the next one from it, and
//              the targets are the copied digits;
//   reasoning  the model's own greedy full-cache responses to the training prompts; the targets are the
//              response tokens (chain of thought, answer and the end-of-sequence token).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/generator.h"
#include "runtime/model.h"
#include "toy/toy_task.h"

namespace rlkv {

class Tokenizer;

struct DuoTrainOptions {
  // Optimiser steps. On the toy model the mean gate settles by step ~100 of 200, and 200 steps of 16
  // sequences take 48-49 s on one thread of the 2-core development machine (either data source).
  int64_t steps = 200;
  int64_t batch = 16;  // sequences per step
  double lr = 0.02;    // peak learning rate
  double reg = 0.05;   // weight of mean |alpha|
  // Gradient L2-norm clipping (0 = off). A guard only: on the toy model the norm stays within
  // 0.002-0.07, where Adam's per-coordinate scaling makes clipping irrelevant.
  double clip = 1.0;
  int64_t sink = 4, window = 16;
  uint64_t seed = 0;  // batch order and synthetic data
};

// Checks the options (UserError naming the flag: --steps, --batch, --lr, --reg, --clip, cache.sink /
// cache.window).
void check_duo_options(const DuoTrainOptions& opts);

// One training sequence: token ids, and label[t] = 1 where hidden state t enters the loss.
struct DuoSequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> label;
};

// A batch of sequences: tokens [B, T] int64 right-padded with `pad` (causal attention keeps the padding
// out of the real positions), label mask [B, T] bool.
struct DuoBatch {
  at::Tensor tokens, labels;
};
DuoBatch make_duo_batch(const std::vector<DuoSequence>& seqs, int32_t pad);

// Synthetic passkey retrieval in the toy vocabulary. The toy model fetches the numbers of its prompt
// in order, one per chain step (it counts steps: given "Q:23+45+12+67+...=67+" it writes 45, the second
// number, not 30, the one after 67), so the passkey format is the one it reads:
//   <s> Q:n1+n2+...+nK=  n1+n2=s2;s2+n3=s3;...;s(K-1)+nK=sK;A:sK </s>
//   haystack: K distinct random numbers (the toy task's ranges); query i: the chain up to "s(i-1)+",
//   which asks for the i-th number; answer i: the digits of n_i (n1 and n2 for the first step).
// The targets are the answers' digits only (the sums are local arithmetic). Each answer lies at least
// 3K - 1 tokens before the position that predicts it (17 for the toy task's K >= 6): outside a
// 16-token window, so a head fetches it with the full cache only, but for n1's first digit (position
// 3, after <s> Q:), which a 4-token sink holds, so that a streaming head sees it too.
DuoSequence duo_retrieval_sequence(std::mt19937_64& rng, const ToyTaskOptions& task);

// The model's greedy full-cache responses to `prompts` (token ids), as sequences prompt + response
// whose targets are the response tokens. `go` supplies the length cap, stops and batch size;
// sampling is forced greedy and every head full. `tok` (may be null) applies go.stop's strings.
std::vector<DuoSequence> duo_reasoning_sequences(const Model& model, const Tokenizer* tok,
                                                 const std::vector<std::vector<int32_t>>& prompts, GeneratorOptions go);

// Streaming attention (sink + recent window, causal): q [B, T, Hq, hd], k / v [B, T, Hkv, hd] ->
// [B, T, Hq, hd], GQA as in dense_causal_attention, softmax in fp32.
at::Tensor streaming_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale, int64_t sink,
                               int64_t window);
// alpha [Hkv] (any dtype; differentiable): alpha x dense_causal_attention + (1 - alpha) x
// streaming_attention per KV head and its query heads. alpha = 1 gives dense_causal_attention's
// output exactly.
at::Tensor duo_gated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale,
                               const at::Tensor& alpha, int64_t sink, int64_t window);

// One step's numbers (metrics.jsonl).
struct DuoStepPoint {
  int64_t step = 0;                   // 1-based
  double loss = 0, mse = 0, reg = 0;  // loss = mse + reg (reg = the weighted term)
  double lr = 0, grad_norm = 0, mean_alpha = 0, seconds = 0;
  std::vector<double> alphas;  // after the step, [L * H_kv] layer-major
};

struct DuoTrainResult {
  int64_t num_layers = 0, num_kv_heads = 0;
  std::vector<double> alphas;  // final, [L * H_kv] layer-major, in [0, 1]
  std::vector<DuoStepPoint> history;
  double seconds = 0;
  int64_t label_tokens = 0;  // hidden states that entered the loss, over all steps
};

// Draws the next batch of sequences.
using DuoBatchSource = std::function<std::vector<DuoSequence>(std::mt19937_64& rng, int64_t batch)>;
// Fresh synthetic passkey sequences per batch (one count of numbers per batch).
DuoBatchSource duo_retrieval_source(const ToyTaskOptions& task);
// Batches drawn without replacement from a fixed pool, reshuffled after each pass; a batch holds
// sequences of similar lengths (sorted within windows of 16 batches) to spare padding.
DuoBatchSource duo_pool_source(std::vector<DuoSequence> pool);

// Trains the gates of `model` (frozen; the gates and the loss in fp32, tested on fp32 models).
// `on_step` (optional) sees every step as it finishes.
DuoTrainResult train_duo_gates(const Model& model, const DuoBatchSource& source, const DuoTrainOptions& opts,
                               const std::function<void(const DuoStepPoint&)>& on_step = {});

// What the output directory records besides the scores.
struct DuoOutputInfo {
  std::string model;      // model path or name
  std::string data;       // retrieval | reasoning
  double sparsity = 0.5;  // of the binary mask in head_mask.json and config.json
  int64_t head_dim = -1;  // for kv_bytes_per_token
  std::string command;    // the command line that made it
};

// Writes DIR/full_attention_heads.tsv + DIR/config.json (DuoAttention's format), DIR/head_mask.json
// (rlkv-head-mask/v1), DIR/metrics.jsonl (one object per step: step, loss, mse, reg, lr, grad_norm,
// mean_alpha, alphas, seconds) and DIR/duo_train.json (the settings and timing). `rlkv eval --mask DIR`
// reads the directory.
void save_duo_outputs(const std::string& dir, const DuoTrainResult& r, const DuoTrainOptions& opts,
                      const DuoOutputInfo& info);

// The names save_duo_outputs writes in DIR.
std::vector<std::string> duo_output_names();

}  // namespace rlkv
