#include "runtime/torch_attention.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "runtime/kv_cache.h"

#ifdef RLKV_WITH_CUDA
#include "kernels/attention_cuda.h"
#endif
#ifdef RLKV_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstring>

namespace rlkv {

bool cuda_kernels_available() {
#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
  return true;
#else
  return false;
#endif
}

namespace {

[[maybe_unused]] [[noreturn]] void no_cuda_path(const char* what, at::Device d) {
  throw UserError(str_cat(what, " on ", d.str(),
                          " needs the CUDA kernels and a CUDA LibTorch, which this build does "
                          "not have"));
}

#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
void* stream_of(at::Device d) { return c10::cuda::getCurrentCUDAStream(d.index()).stream(); }

// Copies `recs` and, unless they already are device memory, the page lists their `pages` point at
// (pages_of(rec) entries each) into one device buffer, pointing the copies' `pages` at the device
// lists. The returned tensor owns the buffer; the caching allocator keeps it valid for work queued on
// the stream before it is freed.
template <class Rec, class PagesOf>
at::Tensor upload(const std::vector<Rec>& recs, PagesOf pages_of, bool pages_on_device, at::Device dev,
                  const Rec** out) {
  std::vector<int64_t> counts(recs.size(), 0);
  int64_t total = 0;
  if (!pages_on_device)
    for (size_t i = 0; i < recs.size(); ++i) total += counts[i] = recs[i].pages ? pages_of(recs[i]) : 0;
  const int64_t rec_bytes = int64_t(recs.size() * sizeof(Rec));
  const int64_t bytes = rec_bytes + total * int64_t(sizeof(int32_t));
  // Pinned staging (LibTorch's caching host allocator): the copy below is then asynchronous, and the
  // allocator does not reuse the block before the copy has run. From pageable memory the driver may
  // wait for the stream first, which would serialise the host's launches with the GPU's work.
  at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  at::Tensor buf = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(dev));
  char* hb = static_cast<char*>(host.data_ptr());
  const char* db = static_cast<const char*>(buf.data_ptr());
  Rec* hr = reinterpret_cast<Rec*>(hb);
  int32_t* hp = reinterpret_cast<int32_t*>(hb + rec_bytes);
  int64_t off = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    hr[i] = recs[i];
    if (!counts[i]) continue;
    std::memcpy(hp + off, recs[i].pages, size_t(counts[i]) * sizeof(int32_t));
    hr[i].pages = reinterpret_cast<const int32_t*>(db + rec_bytes) + off;
    off += counts[i];
  }
  buf.copy_(host, /*non_blocking=*/true);  // on the current stream, before the kernel that reads it
  *out = reinterpret_cast<const Rec*>(db);
  return buf;
}
#endif

}  // namespace

void kv_write(const std::vector<rlkv_kv_write_item>& items, int64_t head_dim, rlkv_dtype dtype, at::Device device,
              int num_threads, bool pages_on_device) {
#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
  if (device.is_cuda() && !items.empty()) {
    const rlkv_kv_write_item* d = nullptr;
    at::Tensor keep = upload(
        items, [](const rlkv_kv_write_item& it) { return it.slot / it.page_size + 1; }, pages_on_device, device, &d);
    kv_write_resident(d, int64_t(items.size()), head_dim, dtype, device, num_threads);
    return;
  }
#else
  (void)pages_on_device;
#endif
  kv_write_resident(items.data(), int64_t(items.size()), head_dim, dtype, device, num_threads);
}

namespace {

rlkv_decode_args attention_args(const at::Tensor& q, at::Tensor& out, int64_t num_kv_heads, float scale) {
  RLKV_ASSERT(q.dim() == 3 && q.is_contiguous(), "decode_attention: q must be contiguous [B, Hq, hd]");
  const int64_t B = q.size(0), Hq = q.size(1), D = q.size(2);
  RLKV_ASSERT(num_kv_heads > 0 && Hq % num_kv_heads == 0, "decode_attention: Hq % Hkv != 0");
  out = at::empty_like(q);  // contiguous like q
  return rlkv_decode_args_packed(B, Hq, num_kv_heads, D, q.data_ptr(), out.data_ptr(), nullptr, scale,
                                 to_kv_dtype(q.scalar_type()));
}

#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
// Runs the CUDA kernel with `a.spans` already on the device; the split-K workspace comes from the
// caching allocator (inside a CUDA graph capture: from the graph's pool, so replays reuse it).
void run_cuda_attention(rlkv_decode_args& a, at::Device dev) {
  const c10::cuda::CUDAGuard on_device(dev);  // raw launches (and the SM count) use the current device
  at::Tensor work;
  a.workspace_bytes = rlkv_decode_attention_cuda_workspace_bytes(&a);
  if (a.workspace_bytes > 0) {
    work = at::empty({a.workspace_bytes}, at::TensorOptions().dtype(at::kByte).device(dev));
    a.workspace = work.data_ptr();
  }
  const rlkv_status cst = rlkv_decode_attention_cuda(&a, stream_of(dev));
  RLKV_CHECK(cst == RLKV_STATUS_OK, "rlkv_decode_attention_cuda failed with status ", int(cst),
             " (supported: head_dim <= 256 and query heads per KV head * head_dim <= 4096)");
}
#endif

}  // namespace

at::Tensor decode_attention(const at::Tensor& q, const std::vector<rlkv_kv_span>& spans, int64_t num_kv_heads,
                            float scale, int num_threads, bool pages_on_device) {
  RLKV_ASSERT(q.dim() == 3 && int64_t(spans.size()) == q.size(0) * num_kv_heads, "decode_attention: ", spans.size(),
              " spans for ", q.size(0), " x ", num_kv_heads);
#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
  if (q.is_cuda()) {
    // The kernels read rows with 16-byte loads; pools and rings are LibTorch allocations and rows are
    // head_dim * element bytes, so a misaligned span is a bug here, not the user's.
    int64_t max_len = 0;
    for (const rlkv_kv_span& sp : spans) {
      RLKV_ASSERT(reinterpret_cast<uintptr_t>(sp.k) % 16 == 0 && reinterpret_cast<uintptr_t>(sp.v) % 16 == 0,
                  "decode_attention: a span is not 16-byte aligned");
      max_len = std::max(max_len, sp.len);
    }
    const rlkv_kv_span* d = nullptr;
    at::Tensor keep = upload(
        spans, [](const rlkv_kv_span& s) { return (s.len + s.page_size - 1) / s.page_size; }, pages_on_device,
        q.device(), &d);
    return decode_attention_resident(q, d, num_kv_heads, scale, max_len, num_threads);
  }
#else
  (void)pages_on_device;
#endif
  return decode_attention_resident(q, spans.data(), num_kv_heads, scale, /*max_len: unused on the CPU*/ 0, num_threads);
}

at::Tensor decode_attention_resident(const at::Tensor& q, const rlkv_kv_span* spans, int64_t num_kv_heads, float scale,
                                     int64_t max_len, int num_threads) {
  at::Tensor out;
  rlkv_decode_args a = attention_args(q, out, num_kv_heads, scale);
  a.spans = spans;
  a.max_len = max_len;
  if (q.is_cuda()) {
#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
    run_cuda_attention(a, q.device());
    return out;
#else
    no_cuda_path("decode attention", q.device());
#endif
  }
  RLKV_CHECK(q.device().is_cpu(), "decode attention on ", q.device().str(), ": only CPU and CUDA are supported");
  const rlkv_status st = rlkv_decode_attention_cpu(&a, num_threads);
  RLKV_ASSERT(st == RLKV_STATUS_OK, "rlkv_decode_attention_cpu failed with status ", int(st));
  return out;
}

void kv_write_resident(const rlkv_kv_write_item* items, int64_t n, int64_t head_dim, rlkv_dtype dtype,
                       at::Device device, int num_threads) {
  if (device.is_cpu()) {
    const rlkv_status st = rlkv_kv_write_cpu(items, n, head_dim, dtype, num_threads);
    RLKV_ASSERT(st == RLKV_STATUS_OK, "rlkv_kv_write_cpu failed with status ", int(st));
    return;
  }
#if defined(RLKV_WITH_CUDA) && defined(RLKV_TORCH_CUDA)
  RLKV_CHECK(device.is_cuda(), "KV write on ", device.str(), ": only CPU and CUDA are supported");
  if (n == 0) return;
  const c10::cuda::CUDAGuard on_device(device);  // raw launches go to the current device
  const rlkv_status st = rlkv_kv_write_cuda(items, n, head_dim, dtype, stream_of(device));
  RLKV_CHECK(st == RLKV_STATUS_OK, "rlkv_kv_write_cuda failed with status ", int(st));
#else
  no_cuda_path("KV write", device);
#endif
}

GroupedHeads group_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  return {q.permute({0, 2, 1, 3}).reshape({B, Hkv, Hq / Hkv, T, D}), k.permute({0, 2, 1, 3}).unsqueeze(2),
          v.permute({0, 2, 1, 3}).unsqueeze(2)};
}

at::Tensor dense_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float scale) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3);
  const auto [qh, kh, vh] = group_heads(q, k, v);
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
