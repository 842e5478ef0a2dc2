#include "runtime/tp_shard.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace rlkv {

TpShard tp_shard(const ModelConfig& c, int rank, int size) {
  RLKV_CHECK(size >= 1 && rank >= 0 && rank < size, "tensor parallel rank ", rank, " of ", size);
  const int64_t n = size, hq = c.num_q_heads, hkv = c.num_kv_heads, inter = c.intermediate_size, V = c.vocab_size;
  const std::string what = "tensor_parallel = " + std::to_string(size);
  RLKV_CHECK(hkv % n == 0 || n % hkv == 0, what, " cannot share the model's ", hkv,
             " KV heads: one must divide the other (each rank holds whole KV heads with their query groups)");
  RLKV_CHECK(hq % n == 0, what, " does not divide the model's ", hq, " query heads");
  RLKV_CHECK(inter % n == 0, what, " does not divide the model's MLP intermediate size ", inter);
  RLKV_CHECK(V >= n, what, " is more ranks than the vocabulary's ", V, " rows");
  TpShard s;
  s.rank = rank;
  s.size = size;
  s.num_q_heads = hq / n;
  s.q_begin = rank * s.num_q_heads;
  if (hkv % n == 0) {
    s.num_kv_heads = hkv / n;
    s.kv_begin = rank * s.num_kv_heads;
  } else {
    s.num_kv_heads = 1;  // replicated on n / hkv ranks
    s.kv_begin = s.q_begin / c.group_size();
  }
  s.intermediate = inter / n;
  s.i_begin = rank * s.intermediate;
  s.vocab_padded = (V + n - 1) / n;
  s.v_begin = std::min<int64_t>(V, rank * s.vocab_padded);
  s.v_count = std::min<int64_t>(V - s.v_begin, s.vocab_padded);
  return s;
}

ModelConfig local_config(const ModelConfig& cfg, const TpShard& s) {
  ModelConfig c = cfg;
  c.num_q_heads = s.num_q_heads;
  c.num_kv_heads = s.num_kv_heads;
  c.intermediate_size = s.intermediate;
  return c;
}

std::vector<uint8_t> TpShard::local_mask(const std::vector<uint8_t>& keep, int64_t num_layers,
                                         int64_t total_kv_heads) const {
  if (keep.empty() || whole()) return keep;
  RLKV_CHECK(int64_t(keep.size()) == num_layers * total_kv_heads, "head mask of ", keep.size(), " entries for ",
             num_layers, " x ", total_kv_heads, " KV heads");
  std::vector<uint8_t> out;
  out.reserve(size_t(num_layers * num_kv_heads));
  for (int64_t l = 0; l < num_layers; ++l)
    for (int64_t j = 0; j < num_kv_heads; ++j) out.push_back(keep[size_t(l * total_kv_heads + kv_begin + j)]);
  return out;
}

}  // namespace rlkv
