// A rank's share of a model under Megatron-style tensor parallelism (docs/design.md section 5).
//
// With N ranks in a tensor-parallel group, rank r holds:
//   - query heads [q_begin, q_begin + num_q_heads): Hq / N of them (Hq must divide by N);
//   - KV heads [kv_begin, kv_begin + num_kv_heads) with their query groups: Hkv / N of them when N
//     divides Hkv; when Hkv divides N (more ranks than KV heads), one KV head, replicated on the
//     N / Hkv ranks that share its query group. Any other pair is refused;
//   - MLP intermediate rows [i_begin, i_begin + intermediate) (I must divide by N);
//   - vocabulary rows [v_begin, v_begin + v_count) of the embedding and the LM head, padded with zero
//     rows to vocab_padded = ceil(V / N) so that every rank holds the same shape.
// The per-head masks stay local: rank r's caches and masks cover only its KV heads.
// Torch-free; refusals are UserErrors naming the sizes.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/model_config.h"

namespace rlkv {

struct TpShard {
  int rank = 0, size = 1;
  int64_t q_begin = 0, num_q_heads = 0;
  int64_t kv_begin = 0, num_kv_heads = 0;
  int64_t i_begin = 0, intermediate = 0;
  int64_t v_begin = 0, v_count = 0, vocab_padded = 0;

  bool whole() const { return size == 1; }
  // The columns of a global [L * Hkv] head mask that this rank's cache holds, as an [L * local] mask.
  std::vector<uint8_t> local_mask(const std::vector<uint8_t>& keep, int64_t num_layers, int64_t total_kv_heads) const;
};

// Throws UserError when `size` ranks cannot share the model (see above).
TpShard tp_shard(const ModelConfig& cfg, int rank, int size);

// The model as one rank sees it: head counts and intermediate size of its share (for its caches).
ModelConfig local_config(const ModelConfig& cfg, const TpShard& s);

}  // namespace rlkv
