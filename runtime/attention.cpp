#include "runtime/attention.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "runtime/kv_cache.h"

namespace rlkv {

at::Tensor decode_attention(const at::Tensor& q, const std::vector<kv_span>& spans, int64_t num_kv_heads,
                            float scale, int num_threads) {
  RLKV_ASSERT(q.dim() == 3 && q.is_contiguous(), "decode_attention: q must be contiguous [B, Hq, hd]");
  const int64_t B = q.size(0), Hq = q.size(1), D = q.size(2);
  RLKV_ASSERT(num_kv_heads > 0 && Hq % num_kv_heads == 0, "decode_attention: Hq % Hkv != 0");
  RLKV_ASSERT(int64_t(spans.size()) == B * num_kv_heads, "decode_attention: ", spans.size(), " spans for ", B,
              " x ", num_kv_heads);
  at::Tensor out = at::empty_like(q);
  decode_attention_args a{};
  a.num_seqs = B;
  a.num_q_heads = Hq;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = D;
  a.q = q.data_ptr();
  a.q_stride_seq = q.stride(0);
  a.q_stride_head = q.stride(1);
  a.out = out.data_ptr();
  a.out_stride_seq = out.stride(0);
  a.out_stride_head = out.stride(1);
  a.spans = spans.data();
  a.scale = scale;
  a.dtype = to_kv_dtype(q.scalar_type());
  RLKV_CHECK(q.device().is_cpu(), "decode attention on ", q.device().str(),
             " needs the CUDA kernels, which this build does not have");
  const kernel_status st = decode_attention_cpu(&a, num_threads);
  RLKV_ASSERT(st == KERNEL_STATUS_OK, "decode_attention_cpu failed with status ", int(st));
  return out;
}

at::Tensor dense_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(2), G = Hq / Hkv;
  // [B, Hkv, G, T, D] against [B, Hkv, 1, T, D]: the group shares K and V by broadcasting.
  at::Tensor qh = q.permute({0, 2, 1, 3}).reshape({B, Hkv, G, T, D});
  at::Tensor kh = k.permute({0, 2, 1, 3}).unsqueeze(2);
  at::Tensor vh = v.permute({0, 2, 1, 3}).unsqueeze(2);
  // Query blocks of at most kBlock rows attend to the keys up to their last row: the scores never
  // exceed [.., kBlock, T] (memory) and the strictly-future triangle is mostly skipped (compute).
  constexpr int64_t kBlock = 256;
  const auto bool_opts = at::TensorOptions().dtype(at::kBool).device(q.device());
  std::vector<at::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += kBlock) {
    const int64_t rows = std::min(kBlock, T - t0), keys = t0 + rows;
    at::Tensor qb = qh.narrow(3, t0, rows);
    at::Tensor scores = at::matmul(qb, kh.narrow(3, 0, keys).transpose(-1, -2)) * scale;  // [B, Hkv, G, rows, keys]
    // Row i (position t0 + i) may see keys 0..t0 + i.
    at::Tensor future = at::ones({rows, keys}, bool_opts).triu(t0 + 1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    outs.push_back(at::matmul(p, vh.narrow(3, 0, keys)));  // [B, Hkv, G, rows, D]
  }
  at::Tensor o = outs.size() == 1 ? outs[0] : at::cat(outs, 3);
  return o.reshape({B, Hq, T, D}).permute({0, 2, 1, 3});
}

}  // namespace rlkv
