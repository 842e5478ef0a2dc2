// Token-dropping baselines (docs/design.md section 10): which cached tokens of one (sequence, layer,
// KV head) a fixed token budget keeps, by the published rule of each method. Pure functions over one
// head's cache as it stands (entries in position order); the runtime's budgeted cache calls them
// and compacts the kept entries. Torch-free; computed in double.
//
// Every rule keeps the first `sink` positions and the `window` most recent ones (the same S + W a
// compressed head of a head mask keeps), and fills the rest of the budget by its score:
//   - H2O (Zhang et al. 2023): heavy hitters by the attention each token has received, summed over
//     the generated queries and the GQA group; half of the budget for the most recent tokens (at
//     least `window`), the rest for the heaviest. One token leaves per decoding step once the cache
//     is full (h2o_victim).
//   - SnapKV applied during decoding (as kvpress): every `every` generated tokens the cache goes back
//     to the budget, scored by the softmax attention of the last `queries` queries (averaged over
//     them and the GQA group), average-pooled over positions (kernel `pool`, zero padding counted).
//   - R-KV (Cai et al. 2025, its public code): when the cache reaches budget + buffer, score =
//     lambda x importance - (1 - lambda) x redundancy over the tokens before the last `queries`
//     (the observation window, always kept): importance = the softmax over those tokens of the last
//     `queries` queries' logits (max over the GQA group), averaged over the queries and max-pooled
//     (kernel `pool`); redundancy = softmax over tokens of the mean pairwise key cosine similarity,
//     where similarities <= `threshold` count as given and, for each token, its most recent
//     near-duplicate (similarity > threshold) is exempt, so that among duplicates the latest survives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

enum class EvictionMethod { kH2O, kSnapKV, kRKV };

// "h2o" | "snapkv" | "rkv"; anything else is a UserError naming `what`.
EvictionMethod parse_eviction_method(const std::string& name, const std::string& what);
const char* eviction_method_name(EvictionMethod m);

struct EvictionParams {
  int64_t budget = 0;  // tokens kept (>= sink + window + 1)
  int64_t sink = 0;    // first positions always kept
  int64_t window = 0;  // most recent positions always kept
  // SnapKV
  int64_t snap_every = 128, snap_queries = 64, snap_pool = 5;
  // R-KV (the paper's lambda; its code ships 0.07)
  int64_t rkv_buffer = 128, rkv_queries = 8, rkv_pool = 7;
  double rkv_lambda = 0.1, rkv_threshold = 0.5;
};

// The smallest budget method `m` accepts: sink + max(window, rkv_queries) + 1, and for H2O at least
// 2 sink + 1 (its recent half, budget / 2 entries, must leave an entry that is not sink to evict).
int64_t min_eviction_budget(EvictionMethod m, const EvictionParams& p);

// Checks every count against 0..kMaxCacheSlots and the budget against min_eviction_budget
// (UserError naming `what`, e.g. "--budget").
void check_eviction_params(EvictionMethod m, const EvictionParams& p, const std::string& what);

// Entries a cache holds before the rule compresses it: budget (H2O, one token out per step),
// budget + snap_every (SnapKV) or budget + rkv_buffer (R-KV).
int64_t eviction_capacity(EvictionMethod m, const EvictionParams& p);

// H2O: the entry of a full cache (n == budget entries, positions ascending) to drop so that a new
// token can enter: the lowest accumulated attention `acc` among the entries that are neither sink nor
// among the most recent max(window, budget / 2); ties go to the oldest.
int64_t h2o_victim(const std::vector<double>& acc, const std::vector<int64_t>& positions, const EvictionParams& p);

// SnapKV: the entries kept (ascending) of a cache of n entries, given `probs` [q][n]: the softmax
// attention of each of the last q queries over the n entries, summed over the GQA group.
std::vector<int64_t> snapkv_keep(const std::vector<std::vector<double>>& probs, const std::vector<int64_t>& positions,
                                 const EvictionParams& p);

// R-KV: the entries kept (ascending), given `logits` [q][n] (the last q queries' q.k / sqrt(d), the
// maximum over the GQA group) and the entries' keys [n][d].
std::vector<int64_t> rkv_keep(const std::vector<std::vector<double>>& logits,
                              const std::vector<std::vector<float>>& keys, const std::vector<int64_t>& positions,
                              const EvictionParams& p);

// R-KV's redundancy distribution over n keys (exposed for tests): softmax_j of mean_i s'_ij, with s
// the cosine similarity (diagonal 0) and s'_ij = 0 where j is i's most recent near-duplicate.
std::vector<double> rkv_redundancy(const std::vector<std::vector<float>>& keys, double threshold);

}  // namespace rlkv
