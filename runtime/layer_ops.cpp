#include "runtime/layer_ops.h"

#include "core/error.h"
#include "runtime/kv_cache.h"

#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/layer_ops_cuda.h"
#define RLKV_FUSED_LAYER_OPS 1
#endif

namespace rlkv {

bool fused_layer_ops_available(at::Device device) {
#ifdef RLKV_FUSED_LAYER_OPS
  return device.is_cuda();
#else
  (void)device;
  return false;
#endif
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return w * (xf * at::rsqrt(var + eps)).to(x.scalar_type());
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  // (-x2) * s == x2 * (-s) exactly, and rounding is symmetric: rotate_half's negation moves into sin.
  const int64_t h = x.size(-1) / 2;
  return x * cos + at::cat({x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1) * sin;
}

#ifdef RLKV_FUSED_LAYER_OPS
namespace {

void* stream_of(at::Device d) { return c10::cuda::getCurrentCUDAStream(d.index()).stream(); }

void check_status(rlkv_status st, const char* what) {
  RLKV_CHECK(st == RLKV_STATUS_OK, what, " failed with status ", int(st));
}

void check_operand(const at::Tensor& t, const at::Tensor& like, int64_t numel, const char* what) {
  RLKV_ASSERT(t.defined() && t.is_contiguous() && t.device() == like.device() &&
                  t.scalar_type() == like.scalar_type() && t.numel() == numel,
              "fused layer kernels: ", what, " must be contiguous, ", numel, " elements of the activations' dtype");
}

}  // namespace
#endif

at::Tensor add_rms_norm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& w, double eps, bool fused) {
  if (!fused) {
    if (delta.defined()) x = x + delta;
    return rms_norm(x, w, eps);
  }
#ifdef RLKV_FUSED_LAYER_OPS
  RLKV_ASSERT(x.dim() == 2 && x.is_contiguous() && x.is_cuda(), "add_rms_norm: x must be contiguous [rows, hidden]");
  const int64_t rows = x.size(0), hidden = x.size(1);
  at::Tensor d = delta.defined() ? delta.contiguous() : delta;
  if (d.defined()) check_operand(d, x, rows * hidden, "delta");
  check_operand(w, x, hidden, "the norm weight");
  at::Tensor out = at::empty_like(x);
  const c10::cuda::CUDAGuard on_device(x.device());
  rlkv_add_rms_norm_args a{
      x.data_ptr(), d.defined() ? d.data_ptr() : nullptr, w.data_ptr(), out.data_ptr(), rows, hidden,
      float(eps),   to_kv_dtype(x.scalar_type())};
  check_status(rlkv_add_rms_norm_cuda(&a, stream_of(x.device())), "rlkv_add_rms_norm_cuda");
  return out;
#else
  throw UserError("fused layer kernels: this build has no CUDA kernels with a CUDA LibTorch");
#endif
}

QkvHeads qkv_rope(const at::Tensor& qkv, int64_t hq, int64_t hkv, int64_t hd, const at::Tensor& q_norm,
                  const at::Tensor& k_norm, double eps, const at::Tensor& cos, const at::Tensor& sin, bool fused,
                  const rlkv_kv_write_item* kv_items) {
  const int64_t B = qkv.size(0);
  RLKV_ASSERT(fused || kv_items == nullptr, "qkv_rope: KV write items need the fused kernel");
  if (!fused) {
    at::Tensor q = qkv.narrow(-1, 0, hq * hd).view({B, hq, hd});
    at::Tensor k = qkv.narrow(-1, hq * hd, hkv * hd).view({B, hkv, hd});
    at::Tensor v = qkv.narrow(-1, (hq + hkv) * hd, hkv * hd).reshape({B, hkv, hd}).contiguous();
    if (q_norm.defined()) {
      q = rms_norm(q, q_norm, eps);
      k = rms_norm(k, k_norm, eps);
    }
    return {apply_rope(q, cos, sin).contiguous(), apply_rope(k, cos, sin).contiguous(), v};
  }
#ifdef RLKV_FUSED_LAYER_OPS
  RLKV_ASSERT(qkv.dim() == 2 && qkv.stride(1) == 1 && qkv.size(1) >= (hq + 2 * hkv) * hd && qkv.is_cuda(),
              "qkv_rope: qkv must be [B, (Hq + 2 Hkv) * head_dim] rows");
  RLKV_ASSERT(q_norm.defined() == k_norm.defined(), "qkv_rope: q_norm and k_norm go together");
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  check_operand(c, qkv, B * hd, "cos");
  check_operand(s, qkv, B * hd, "sin");
  if (q_norm.defined()) {
    check_operand(q_norm, qkv, hd, "q_norm");
    check_operand(k_norm, qkv, hd, "k_norm");
  }
  const auto opts = qkv.options();
  QkvHeads out{at::empty({B, hq, hd}, opts), at::empty({B, hkv, hd}, opts), at::empty({B, hkv, hd}, opts)};
  const c10::cuda::CUDAGuard on_device(qkv.device());
  rlkv_qkv_rope_args a{qkv.data_ptr(),
                       qkv.stride(0),
                       c.data_ptr(),
                       s.data_ptr(),
                       q_norm.defined() ? q_norm.data_ptr() : nullptr,
                       k_norm.defined() ? k_norm.data_ptr() : nullptr,
                       float(eps),
                       out.q.data_ptr(),
                       out.k.data_ptr(),
                       out.v.data_ptr(),
                       B,
                       hq,
                       hkv,
                       hd,
                       to_kv_dtype(qkv.scalar_type()),
                       kv_items};
  check_status(rlkv_qkv_rope_cuda(&a, stream_of(qkv.device())), "rlkv_qkv_rope_cuda");
  return out;
#else
  (void)eps;
  throw UserError("fused layer kernels: this build has no CUDA kernels with a CUDA LibTorch");
#endif
}

at::Tensor silu_mul(const at::Tensor& gate_up, int64_t I, bool fused) {
  if (!fused) return at::silu(gate_up.narrow(-1, 0, I)) * gate_up.narrow(-1, I, I);
#ifdef RLKV_FUSED_LAYER_OPS
  RLKV_ASSERT(gate_up.dim() == 2 && gate_up.is_contiguous() && gate_up.size(1) == 2 * I && gate_up.is_cuda(),
              "silu_mul: gate_up must be contiguous [rows, 2 I]");
  at::Tensor out = at::empty({gate_up.size(0), I}, gate_up.options());
  const c10::cuda::CUDAGuard on_device(gate_up.device());
  check_status(rlkv_silu_mul_cuda(gate_up.data_ptr(), out.data_ptr(), gate_up.size(0), I,
                                  to_kv_dtype(gate_up.scalar_type()), stream_of(gate_up.device())),
               "rlkv_silu_mul_cuda");
  return out;
#else
  throw UserError("fused layer kernels: this build has no CUDA kernels with a CUDA LibTorch");
#endif
}

}  // namespace rlkv
