// Op test of the fused layer kernels (kernels/layer_ops_cuda.h) against the ATen expressions they
// replace (runtime/layer_ops.h with fused = false: what the CPU model computes). One source, two
// programs:
//   op_test_layer_ops_emu (RLKV_OP_TEST_EMU): the kernel source compiled for the CPU under the SIMT
//     emulator (kernels/simt_emu.h), called through its C entry points on CPU tensors; runs everywhere;
//   op_test_layer_ops_cuda: runtime/layer_ops.h with fused = true on CUDA tensors (the binding and the
//     kernels on the GPU); exit 77 (ctest: skipped) without a GPU or without a CUDA LibTorch.
// Cases: fp32 / fp16 / bf16; rows 1 to 32; hidden sizes 64, 200 (not a multiple of the block) and 4096,
// with and without the residual addition; q / k / v with GQA groups 1, 4 and 7, head_dim 16 to 256, a
// row stride wider than the heads, with and without per-head q / k norms, and with the decode step's KV
// write through write items into a paged pool and a ring; SiLU-and-multiply. What must
// match exactly does (the residual sum, rotary embedding without norms); the rest is within a few
// units in the last place of the dtype (the fp32 sum of squares is added in another order), and most
// elements are equal. Bad arguments give RLKV_STATUS_BAD_ARGS. Exit 0: all pass; 1: a mismatch.
#include <ATen/ATen.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/layer_ops.h"

#ifdef RLKV_OP_TEST_EMU
#include "kernels/simt_emu.h"

#include "kernels/layer_ops_cuda_impl.cuh"
#endif

namespace {

int g_failures = 0, g_checks = 0;

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

const char* name(at::ScalarType t) { return t == at::kFloat ? "f32" : t == at::kHalf ? "f16" : "bf16"; }

double tolerance(at::ScalarType t) { return t == at::kFloat ? 2e-6 : t == at::kHalf ? 2e-3 : 1.6e-2; }

// got equals want exactly, or within the dtype's tolerance (relative above 1, absolute below: the
// values are O(1), and a sum of two rounded products can cancel) with at least 80% of the elements
// identical in 16-bit dtypes.
void compare(const at::Tensor& got, const at::Tensor& want, bool exact, const std::string& what) {
  const at::Tensor g = got.to(at::kCPU).to(at::kFloat), w = want.to(at::kFloat);
  if (g.sizes() != w.sizes()) {
    check(false, what + ": shape");
    return;
  }
  const at::Tensor diff = (g - w).abs();
  const double tol = tolerance(want.scalar_type());
  const bool finite = at::isfinite(g).all().item<bool>();
  const bool close = (diff <= at::clamp_min(w.abs(), 1.0) * tol).all().item<bool>();
  const double equal = (diff == 0).to(at::kFloat).mean().item<double>();
  // In fp32 a last-place change of the norm's scale moves most elements; in 16 bits it rarely shows.
  const double equal_share = want.scalar_type() == at::kFloat ? 0.0 : 0.8;
  const bool ok = finite && (exact ? equal == 1.0 : close && equal >= equal_share);
  if (!ok)
    std::printf("  %s: max diff %.3g, %.1f%% equal%s\n", what.c_str(), diff.max().item<double>(), 100 * equal,
                finite ? "" : ", not finite");
  check(ok, what);
}

#ifdef RLKV_OP_TEST_EMU
const char* const kName = "op_test_layer_ops_emu";
rlkv_dtype kdtype(at::ScalarType t) {
  return t == at::kFloat ? RLKV_DTYPE_F32 : t == at::kHalf ? RLKV_DTYPE_F16 : RLKV_DTYPE_BF16;
}
bool ready() { return true; }
at::Device device() { return at::kCPU; }
// The kernels through their C entry points, in the emulator, on CPU tensors.
at::Tensor run_norm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& w, double eps) {
  at::Tensor out = at::empty_like(x);
  rlkv_add_rms_norm_args a{x.data_ptr(), delta.defined() ? delta.data_ptr() : nullptr,
                           w.data_ptr(), out.data_ptr(),
                           x.size(0),    x.size(1),
                           float(eps),   kdtype(x.scalar_type())};
  check(rlkv_add_rms_norm_cuda_emu(&a, nullptr) == RLKV_STATUS_OK, "add_rms_norm status");
  return out;
}
rlkv::QkvHeads run_rope(const at::Tensor& qkv, int64_t hq, int64_t hkv, int64_t hd, const at::Tensor& qn,
                        const at::Tensor& kn, double eps, const at::Tensor& cos, const at::Tensor& sin,
                        const rlkv_kv_write_item* items = nullptr) {
  const int64_t B = qkv.size(0);
  rlkv::QkvHeads o{at::empty({B, hq, hd}, qkv.options()), at::empty({B, hkv, hd}, qkv.options()),
                   at::empty({B, hkv, hd}, qkv.options())};
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  rlkv_qkv_rope_args a{qkv.data_ptr(),
                       qkv.stride(0),
                       c.data_ptr(),
                       s.data_ptr(),
                       qn.defined() ? qn.data_ptr() : nullptr,
                       kn.defined() ? kn.data_ptr() : nullptr,
                       float(eps),
                       o.q.data_ptr(),
                       o.k.data_ptr(),
                       o.v.data_ptr(),
                       B,
                       hq,
                       hkv,
                       hd,
                       kdtype(qkv.scalar_type()),
                       items};
  check(rlkv_qkv_rope_cuda_emu(&a, nullptr) == RLKV_STATUS_OK, "qkv_rope status");
  return o;
}
at::Tensor run_silu(const at::Tensor& gu, int64_t I) {
  at::Tensor out = at::empty({gu.size(0), I}, gu.options());
  check(rlkv_silu_mul_cuda_emu(gu.data_ptr(), out.data_ptr(), gu.size(0), I, kdtype(gu.scalar_type()), nullptr) ==
            RLKV_STATUS_OK,
        "silu_mul status");
  return out;
}
void bad_args() {
  float buf[64] = {};
  rlkv_add_rms_norm_args n{buf, nullptr, buf + 16, buf + 32, 1, 16, 1e-5f, RLKV_DTYPE_F32};
  check(rlkv_add_rms_norm_cuda_emu(&n, nullptr) == RLKV_STATUS_OK, "a good norm call");
  rlkv_add_rms_norm_args bad = n;
  bad.out = bad.x;
  check(rlkv_add_rms_norm_cuda_emu(&bad, nullptr) == RLKV_STATUS_BAD_ARGS, "norm: out aliasing x refused");
  bad = n;
  bad.weight = nullptr;
  check(rlkv_add_rms_norm_cuda_emu(&bad, nullptr) == RLKV_STATUS_BAD_ARGS, "norm: no weight refused");
  bad = n;
  bad.hidden = 0;
  check(rlkv_add_rms_norm_cuda_emu(&bad, nullptr) == RLKV_STATUS_BAD_ARGS, "norm: hidden 0 refused");
  bad = n;
  bad.dtype = rlkv_dtype(7);
  check(rlkv_add_rms_norm_cuda_emu(&bad, nullptr) == RLKV_STATUS_BAD_ARGS, "norm: unknown dtype refused");
  rlkv_qkv_rope_args r{buf, 12, buf, buf, nullptr, nullptr, 1e-5f, buf, buf, buf, 1, 1, 1, 4, RLKV_DTYPE_F32, nullptr};
  rlkv_qkv_rope_args rb = r;
  rb.head_dim = 3;
  rb.qkv_stride = 9;
  check(rlkv_qkv_rope_cuda_emu(&rb, nullptr) == RLKV_STATUS_BAD_ARGS, "rope: odd head_dim refused");
  rb = r;
  rb.qkv_stride = 11;
  check(rlkv_qkv_rope_cuda_emu(&rb, nullptr) == RLKV_STATUS_BAD_ARGS, "rope: short row stride refused");
  rb = r;
  rb.q_norm = buf;
  check(rlkv_qkv_rope_cuda_emu(&rb, nullptr) == RLKV_STATUS_BAD_ARGS, "rope: q_norm without k_norm refused");
  check(rlkv_silu_mul_cuda_emu(buf, nullptr, 1, 4, RLKV_DTYPE_F32, nullptr) == RLKV_STATUS_BAD_ARGS,
        "silu: no output refused");
  check(rlkv_silu_mul_cuda_emu(buf, buf + 8, 1, 0, RLKV_DTYPE_F32, nullptr) == RLKV_STATUS_BAD_ARGS,
        "silu: intermediate 0 refused");
}
#else
const char* const kName = "op_test_layer_ops_cuda";
bool ready() { return at::hasCUDA() && rlkv::fused_layer_ops_available(at::Device(at::kCUDA, 0)); }
at::Device device() { return at::Device(at::kCUDA, 0); }
at::Tensor run_norm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& w, double eps) {
  return rlkv::add_rms_norm(x, delta, w, eps, /*fused=*/true);
}
rlkv::QkvHeads run_rope(const at::Tensor& qkv, int64_t hq, int64_t hkv, int64_t hd, const at::Tensor& qn,
                        const at::Tensor& kn, double eps, const at::Tensor& cos, const at::Tensor& sin,
                        const rlkv_kv_write_item* items = nullptr) {
  return rlkv::qkv_rope(qkv, hq, hkv, hd, qn, kn, eps, cos, sin, /*fused=*/true, items);
}
at::Tensor run_silu(const at::Tensor& gu, int64_t I) { return rlkv::silu_mul(gu, I, /*fused=*/true); }
void bad_args() {}
#endif

at::Tensor on_device(const at::Tensor& t) { return t.defined() ? t.to(device()) : t; }

void norm_cases(at::ScalarType dt) {
  for (const auto& [rows, hidden] : std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {3, 200}, {32, 4096}})
    for (const bool with_delta : {false, true}) {
      const std::string what = std::string("add_rms_norm ") + name(dt) + " rows " + std::to_string(rows) + " hidden " +
                               std::to_string(hidden) + (with_delta ? " with residual" : "");
      const at::Tensor x0 = (at::randn({rows, hidden}) * 2).to(dt);
      const at::Tensor delta = with_delta ? at::randn({rows, hidden}).to(dt) : at::Tensor();
      const at::Tensor w = (at::randn({hidden}) * 0.5 + 1).to(dt);
      at::Tensor x_ref = x0.clone();
      const at::Tensor want = rlkv::add_rms_norm(x_ref, delta, w, 1e-5, /*fused=*/false);
      at::Tensor x = on_device(x0);
      const at::Tensor got = run_norm(x, on_device(delta), on_device(w), 1e-5);
      compare(x, x_ref, /*exact=*/true, what + ": residual stream");
      compare(got, want, /*exact=*/false, what + ": output");
    }
}

void rope_cases(at::ScalarType dt) {
  struct Shape {
    int64_t rows, hq, hkv, hd, extra;
  };
  for (const Shape& s : std::vector<Shape>{{1, 4, 1, 16, 0}, {3, 7, 7, 64, 8}, {32, 32, 8, 128, 0}, {2, 8, 2, 256, 0}})
    for (const bool norms : {false, true}) {
      const std::string what = std::string("qkv_rope ") + name(dt) + " rows " + std::to_string(s.rows) + " heads " +
                               std::to_string(s.hq) + "/" + std::to_string(s.hkv) + " head_dim " +
                               std::to_string(s.hd) + (s.extra ? " wide rows" : "") + (norms ? " with q/k norms" : "");
      const int64_t width = (s.hq + 2 * s.hkv) * s.hd;
      const at::Tensor qkv = at::randn({s.rows, width + s.extra}).to(dt).narrow(1, 0, width);
      const at::Tensor qn = norms ? (at::randn({s.hd}) * 0.5 + 1).to(dt) : at::Tensor();
      const at::Tensor kn = norms ? (at::randn({s.hd}) * 0.5 + 1).to(dt) : at::Tensor();
      // Model::rope_tables' construction at random positions up to 32k.
      const at::Tensor pos = at::randint(0, 32768, {s.rows}, at::kLong).to(at::kFloat);
      const at::Tensor inv = at::pow(10000.0, -at::arange(0, s.hd, 2, at::kFloat) / double(s.hd));
      const at::Tensor ang = at::outer(pos, inv), emb = at::cat({ang, ang}, -1), sn = emb.sin();
      const int64_t h = s.hd / 2;
      const at::Tensor cos = emb.cos().to(dt).unsqueeze(-2);
      const at::Tensor sin = at::cat({-sn.narrow(-1, 0, h), sn.narrow(-1, h, h)}, -1).to(dt).unsqueeze(-2);
      const rlkv::QkvHeads want = rlkv::qkv_rope(qkv, s.hq, s.hkv, s.hd, qn, kn, 1e-6, cos, sin, /*fused=*/false);
      const rlkv::QkvHeads got = run_rope(on_device(qkv), s.hq, s.hkv, s.hd, on_device(qn), on_device(kn), 1e-6,
                                          on_device(cos), on_device(sin));
      compare(got.q, want.q, /*exact=*/!norms, what + ": q");
      compare(got.k, want.k, /*exact=*/!norms, what + ": k");
      compare(got.v, want.v, /*exact=*/true, what + ": v");
    }
}

// q / k / v with the KV write in the same launch: each row's k and v heads stored through write items
// into a paged pool (head 0: a page list, slots across pages) and a contiguous ring (head 1). The
// pools must then hold exactly the returned k / v rows at the items' rows and nothing anywhere else.
void rope_write_cases(at::ScalarType dt) {
  const int64_t rows = 3, hq = 8, hkv = 2, hd = 64, page = 4, width = (hq + 2 * hkv) * hd;
  for (const bool norms : {false, true}) {
    const at::Tensor qkv = at::randn({rows, width}).to(dt);
    const at::Tensor qn = norms ? (at::randn({hd}) * 0.5 + 1).to(dt) : at::Tensor();
    const at::Tensor kn = norms ? (at::randn({hd}) * 0.5 + 1).to(dt) : at::Tensor();
    const at::Tensor ang = at::rand({rows, hd}) * 6.28;
    const at::Tensor cos = ang.cos().to(dt).unsqueeze(-2), sin = ang.sin().to(dt).unsqueeze(-2);
    const auto opts = at::TensorOptions().dtype(dt).device(device());
    at::Tensor kp = at::zeros({6, page, hd}, opts), vp = at::zeros({6, page, hd}, opts);    // paged pool
    at::Tensor kr = at::zeros({rows + 2, hd}, opts), vr = at::zeros({rows + 2, hd}, opts);  // one ring
    const std::vector<int32_t> page_ids{5, 1, 3};
    const at::Tensor pages = at::tensor(page_ids, at::kInt).to(device());
    std::vector<rlkv_kv_write_item> items;
    std::vector<int64_t> paged_rows, ring_rows;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t slot = 3 + 4 * r;  // the last row of page r: 23, 7, 15 in pool rows
      paged_rows.push_back(page_ids[size_t(slot / page)] * page + slot % page);
      items.push_back({kp.data_ptr(), vp.data_ptr(), pages.data_ptr<int32_t>(), page, slot, nullptr, nullptr});
      ring_rows.push_back(rows + 1 - r);
      items.push_back({kr.data_ptr(), vr.data_ptr(), nullptr, 0, rows + 1 - r, nullptr, nullptr});
    }
    const int64_t bytes = int64_t(items.size() * sizeof(rlkv_kv_write_item));
    const at::Tensor table =
        at::from_blob(items.data(), {bytes}, at::TensorOptions().dtype(at::kByte)).clone().to(device());
    const rlkv::QkvHeads got = run_rope(on_device(qkv), hq, hkv, hd, on_device(qn), on_device(kn), 1e-6, on_device(cos),
                                        on_device(sin), static_cast<const rlkv_kv_write_item*>(table.data_ptr()));
    const rlkv::QkvHeads want = rlkv::qkv_rope(qkv, hq, hkv, hd, qn, kn, 1e-6, cos, sin, /*fused=*/false);
    const std::string what = std::string("qkv_rope with the KV write ") + name(dt) + (norms ? " with q/k norms" : "");
    compare(got.k, want.k, /*exact=*/!norms, what + ": k");
    compare(got.v, want.v, /*exact=*/true, what + ": v");
    // The pools hold exactly the rows the kernel returned, at the items' rows, and zeros elsewhere.
    const at::Tensor gk = got.k.to(at::kCPU), gv = got.v.to(at::kCPU);
    at::Tensor wkp = at::zeros({6 * page, hd}, dt), wvp = wkp.clone(), wkr = at::zeros({rows + 2, hd}, dt),
               wvr = wkr.clone();
    const at::Tensor pr = at::tensor(paged_rows, at::kLong), rr = at::tensor(ring_rows, at::kLong);
    wkp.index_put_({pr}, gk.select(1, 0));
    wvp.index_put_({pr}, gv.select(1, 0));
    wkr.index_put_({rr}, gk.select(1, 1));
    wvr.index_put_({rr}, gv.select(1, 1));
    compare(kp.view({-1, hd}), wkp, /*exact=*/true, what + ": paged K pool");
    compare(vp.view({-1, hd}), wvp, /*exact=*/true, what + ": paged V pool");
    compare(kr, wkr, /*exact=*/true, what + ": K ring");
    compare(vr, wvr, /*exact=*/true, what + ": V ring");
  }
}

void silu_cases(at::ScalarType dt) {
  for (const auto& [rows, I] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {5, 300}, {32, 1000}}) {
    const at::Tensor gu = (at::randn({rows, 2 * I}) * 3).to(dt);
    // SiLU of 16-bit values as LibTorch computes it on a GPU (and the kernel): in fp32, rounded once.
    // Debian's CPU LibTorch has no fp16 SiLU, and its bf16 one rounds inside the formula.
    const at::Tensor want = dt != at::kFloat
                                ? (at::silu(gu.narrow(-1, 0, I).to(at::kFloat)).to(dt) * gu.narrow(-1, I, I))
                                : rlkv::silu_mul(gu, I, /*fused=*/false);
    compare(run_silu(on_device(gu), I), want, /*exact=*/false,
            std::string("silu_mul ") + name(dt) + " rows " + std::to_string(rows) + " I " + std::to_string(I));
  }
}

}  // namespace

int main() try {
  if (!ready()) {
    std::printf("%s: skipped (no CUDA device, or no CUDA kernels with a CUDA LibTorch in this build)\n", kName);
    return 77;
  }
  at::manual_seed(20261205);
  for (const at::ScalarType dt : {at::kFloat, at::kHalf, at::kBFloat16}) {
    norm_cases(dt);
    rope_cases(dt);
    rope_write_cases(dt);
    silu_cases(dt);
  }
  bad_args();
  std::printf("%s: %d of %d checks passed\n", kName, g_checks - g_failures, g_checks);
  return g_failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::printf("%s: %s\n", kName, e.what());
  return 1;
}
