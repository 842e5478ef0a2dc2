#include "runtime/attention.h"

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
  at::Tensor scores = at::matmul(qh, kh.transpose(-1, -2)) * scale;  // [B, Hkv, G, T, T]
  at::Tensor future = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor o = at::matmul(p, vh);  // [B, Hkv, G, T, D]
  return o.reshape({B, Hq, T, D}).permute({0, 2, 1, 3});
}

}  // namespace rlkv
