#include "runtime/sampling_device.h"

#include <limits>

#include "core/error.h"

namespace rlkv {

at::Tensor sample_rows_on_device(const at::Tensor& logits, const SamplingParams& p,
                                 const std::vector<double>& uniforms) {
  RLKV_ASSERT(logits.dim() == 2, "sample_rows_on_device: logits must be [B, V]");
  const int64_t B = logits.size(0), V = logits.size(1);
  const double inf = std::numeric_limits<double>::infinity();
  at::Tensor x = at::nan_to_num(logits.to(at::kFloat), -inf, inf, -inf);  // NaN never wins
  if (p.greedy()) return x.argmax(-1).to(at::kInt);                       // the first maximum on ties
  RLKV_ASSERT(int64_t(uniforms.size()) == B, "sample_rows_on_device: ", uniforms.size(), " uniforms for ", B, " rows");
  // Candidates in sample_token's order: top-k sorted, or all sorted for a nucleus, else index order.
  int64_t k = (p.top_k > 0 && p.top_k < V) ? p.top_k : V;
  at::Tensor vals = x, idx, kth;
  if (k < V) {
    std::tie(vals, idx) = at::topk(x, k, -1, /*largest=*/true, /*sorted=*/true);
    // Every token tied with its row's k-th logit stays a candidate (as in sample_token and Hugging
    // Face's top-k): the widest row's count of them sets the candidates, each row's own k-th value
    // masks the rest.
    kth = vals.narrow(-1, k - 1, 1);
    const int64_t widest = (x >= kth).sum(-1).max().item<int64_t>();
    if (widest > k) {
      k = widest;
      std::tie(vals, idx) = at::topk(x, k, -1, /*largest=*/true, /*sorted=*/true);
    }
  } else if (p.top_p < 1.0) {
    std::tie(vals, idx) = at::sort(x, /*stable=*/true, -1, /*descending=*/true);
  }
  at::Tensor mx = std::get<0>(vals.max(-1, /*keepdim=*/true));                     // [B, 1]
  at::Tensor probs = ((vals - mx).to(at::kDouble) * (1.0 / p.temperature)).exp();  // [B, k]
  at::Tensor last = at::full({B, 1}, k - 1, at::TensorOptions().dtype(at::kLong).device(x.device()));
  if (kth.defined()) {
    const at::Tensor in = vals >= kth;  // a row's candidates: a prefix of its sorted values
    probs = probs * in.to(at::kDouble);
    last = in.sum(-1, /*keepdim=*/true).to(at::kLong) - 1;
  }
  if (p.top_p < 1.0) {
    // Nucleus: the smallest prefix whose mass reaches top_p (at least the first candidate).
    at::Tensor cum = (probs / probs.sum(-1, /*keepdim=*/true)).cumsum(-1);
    at::Tensor reached = cum >= p.top_p;
    at::Tensor first = reached.to(at::kInt).argmax(-1, /*keepdim=*/true);
    last = at::where(reached.any(-1, /*keepdim=*/true), at::minimum(first, last), last);
    at::Tensor pos = at::arange(k, at::TensorOptions().dtype(at::kLong).device(x.device())).unsqueeze(0);
    probs = probs * (pos <= last).to(at::kDouble);
  }
  at::Tensor cdf = probs.cumsum(-1);
  at::Tensor target = at::tensor(uniforms, at::kDouble).to(x.device()).unsqueeze(1) * cdf.narrow(-1, k - 1, 1);
  // The first candidate whose cumulative mass exceeds the target (sample_token's `u < acc`).
  at::Tensor pick = at::minimum((cdf <= target).sum(-1, /*keepdim=*/true), last);
  // All -inf: the first candidate; some +inf: the first of those (their masses are NaN).
  pick = at::where(mx.isfinite(), pick, (vals == mx).to(at::kInt).argmax(-1, /*keepdim=*/true));
  at::Tensor token = idx.defined() ? idx.gather(-1, pick) : pick;
  return token.squeeze(-1).to(at::kInt);
}

}  // namespace rlkv
