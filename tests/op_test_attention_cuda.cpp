// Op test of the CUDA attention kernels against the CPU reference (one harness runs every
// case on the CPU reference and, where CUDA runs, on the GPU). The same source builds two programs:
//   op_test_attention_cuda: the kernels on the GPU; exit 77 (ctest: skipped) without a CUDA device;
//   op_test_attention_emu (RLKV_OP_TEST_EMU): the same kernel source compiled for the CPU under the SIMT
//     emulator of kernels/simt_emu.h, which runs on every machine (it checks the kernels' logic:
//     indexing, split-K, softmax merges; not speed, alignment faults or memory ordering).
// Exit 0: every case agrees; 1: a mismatch.
// Cases: dtypes f32 / f16 / bf16; head_dim 64 and 128 (and 256, 96 for the generic path); GQA groups 1,
// 4 and 7 (and 2, 8, 9); span lengths 1, S + W - 1, S + W, S + W + 1, 300 and 4097, with full (paged)
// and compressed (contiguous, at most S + W slots) spans mixed in one batch; split-K on and off (max_len
// unknown), and under loose length bounds (as in graph replays); every case on the tensor-core path
// (16-bit caches) and on both score variants of the CUDA-core split kernel; sentinel bytes around the
// output and the workspace; NaN / inf checks. Inputs are seeded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"

#ifdef RLKV_OP_TEST_EMU
// The emulator first: it defines what the kernel source expects of CUDA.
#include "kernels/simt_emu.h"

#include "kernels/attention_cuda_impl.cuh"
#else
#include "kernels/attention_cuda.h"
#include "kernels/cuda_check.h"
#endif

namespace {

#ifdef RLKV_OP_TEST_EMU
// "Device" memory is host memory; the kernels run in the emulator.
namespace dev {
const char* const kName = "op_test_attention_emu";
bool available() { return true; }
void* alloc(size_t n) { return std::malloc(n ? n : 1); }
void release(void* p) { std::free(p); }
void to_dev(void* d, const void* h, size_t n) { std::memcpy(d, h, n); }
void to_host(void* h, const void* d, size_t n) { std::memcpy(h, d, n); }
void fill(void* d, int byte, size_t n) { std::memset(d, byte, n); }
void sync() {}
int64_t workspace_bytes(const rlkv_decode_args* a) { return rlkv_decode_attention_cuda_workspace_bytes_emu(a); }
rlkv_status decode(const rlkv_decode_args* a) { return rlkv_decode_attention_cuda_emu(a, nullptr); }
rlkv_status write(const rlkv_kv_write_item* it, int64_t n, int64_t d, rlkv_dtype t) {
  return rlkv_kv_write_cuda_emu(it, n, d, t, nullptr);
}
}  // namespace dev
#else
namespace dev {
const char* const kName = "op_test_attention_cuda";
bool available() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}
void* alloc(size_t n) {
  void* p = nullptr;
  CUDA_OK(cudaMalloc(&p, n ? n : 1));
  return p;
}
void release(void* p) { CUDA_OK(cudaFree(p)); }
void to_dev(void* d, const void* h, size_t n) { CUDA_OK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice)); }
void to_host(void* h, const void* d, size_t n) { CUDA_OK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }
void fill(void* d, int byte, size_t n) { CUDA_OK(cudaMemset(d, byte, n)); }
void sync() { CUDA_OK(cudaDeviceSynchronize()); }
int64_t workspace_bytes(const rlkv_decode_args* a) { return rlkv_decode_attention_cuda_workspace_bytes(a); }
rlkv_status decode(const rlkv_decode_args* a) { return rlkv_decode_attention_cuda(a, nullptr); }
rlkv_status write(const rlkv_kv_write_item* it, int64_t n, int64_t d, rlkv_dtype t) {
  return rlkv_kv_write_cuda(it, n, d, t, nullptr);
}
}  // namespace dev
#endif

uint16_t f2bf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1);
  return uint16_t(b >> 16);
}
float bf2f(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Host values stored as `dtype` bytes (f16 via the CPU's conversion in _Float16 when available).
std::vector<uint8_t> store(const std::vector<float>& v, rlkv_dtype t) {
  const size_t es = rlkv_dtype_size(t);
  std::vector<uint8_t> out(v.size() * es);
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == RLKV_DTYPE_F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else if (t == RLKV_DTYPE_BF16) {
      const uint16_t h = f2bf(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      const _Float16 h = _Float16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

float load(const uint8_t* p, rlkv_dtype t) {
  if (t == RLKV_DTYPE_F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t == RLKV_DTYPE_BF16) return bf2f(h);
  _Float16 x;
  std::memcpy(&x, p, 2);
  return float(x);
}

// Device memory owned for one case.
struct DevBuf {
  void* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t bytes) : p(dev::alloc(bytes)), n(bytes) {}
  DevBuf(const void* host, size_t bytes) : DevBuf(bytes) { dev::to_dev(p, host, bytes); }
  ~DevBuf() { dev::release(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  uint8_t* bytes() const { return static_cast<uint8_t*>(p); }
};

struct Case {
  rlkv_dtype t;
  int64_t D, G, len;
  bool bound = true;  // pass max_len (split-K allowed); false: max_len = 0
  int64_t slack = 0;  // max_len = len + slack: a loose bound, as a replayed CUDA graph's launch has
  int32_t variant = RLKV_DECODE_VARIANT_DEFAULT;
  int64_t batch = 2;  // sequences
  int64_t q_pad = 0;  // elements between one query head's row and the next (0: packed)
};

// The kernel a case runs: the tensor-core path where it applies to the variant and shape, else the
// split kernel's score variant (or the generic kernel, for head dims the split kernel lacks).
const char* variant_name(const Case& c, const rlkv_decode_args& a) {
  const int64_t G = a.num_q_heads / a.num_kv_heads;
  const bool tc = (c.variant == RLKV_DECODE_VARIANT_DEFAULT || c.variant == RLKV_DECODE_VARIANT_TC) &&
                  c.t != RLKV_DTYPE_F32 && (c.D == 64 || c.D == 128) && G <= 8;
  if (tc) return "tc  ";
  if (c.D != 64 && c.D != 128 && c.D != 256) return "gen ";
  return c.variant == RLKV_DECODE_VARIANT_COOP ? "coop" : "lane";
}

// B sequences (2 unless the case says) x Hkv = 2 KV heads: spans alternate between full heads (paged, `len` slots,
// pages shuffled over one pool) and compressed heads (contiguous, min(len, S + W) slots), so every batch mixes the two
// and, for long spans, split and unsplit heads.
int run_case(const Case& c, std::mt19937& rng) {
  const rlkv_dtype t = c.t;
  const int64_t D = c.D, G = c.G, len = c.len;
  const int64_t B = c.batch, Hkv = 2, Hq = Hkv * G, page = 16, S = 16, W = 64;
  const int64_t ring = std::min(len, S + W);
  const size_t es = rlkv_dtype_size(t);
  std::normal_distribution<float> nd;
  // Query rows at a stride of D + q_pad elements; the padding holds a value that would show if read.
  const int64_t qs = D + c.q_pad;
  std::vector<float> qf(size_t(B * Hq * qs));
  for (size_t i = 0; i < qf.size(); ++i) qf[i] = int64_t(i) % qs < D ? nd(rng) : 1e4f;
  const int64_t pages_per = (len + page - 1) / page;
  // One pool: paged spans take pages of it, contiguous spans their own region of it.
  std::vector<float> kpool(size_t(B * Hkv * pages_per * page * D)), vpool(kpool.size());
  for (auto& x : kpool) x = nd(rng);
  for (auto& x : vpool) x = nd(rng);
  std::vector<int32_t> pages(size_t(B * Hkv * pages_per));
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = int32_t(i);
  std::shuffle(pages.begin(), pages.end(), rng);
  const auto kb = store(kpool, t), vb = store(vpool, t), qb = store(qf, t);
  const size_t out_bytes = size_t(B * Hq * D) * es, guard = 256;
  DevBuf dk(kb.data(), kb.size()), dv(vb.data(), vb.size()), dq(qb.data(), qb.size());
  DevBuf dpages(pages.data(), pages.size() * 4), dout(out_bytes + 2 * guard);
  dev::fill(dout.p, 0x5a, dout.n);
  std::vector<rlkv_kv_span> hspans(size_t(B * Hkv)), dspans_host(size_t(B * Hkv));
  for (int64_t i = 0; i < B * Hkv; ++i) {
    const size_t base = size_t(i * pages_per * page * D) * es;
    if (i % 2 == 0) {
      hspans[size_t(i)] = rlkv_kv_span{kb.data(), vb.data(), pages.data() + i * pages_per, page, len, nullptr};
      dspans_host[size_t(i)] =
          rlkv_kv_span{dk.p, dv.p, static_cast<int32_t*>(dpages.p) + i * pages_per, page, len, nullptr};
    } else {
      hspans[size_t(i)] = rlkv_kv_span{kb.data() + base, vb.data() + base, nullptr, 0, ring, nullptr};
      dspans_host[size_t(i)] = rlkv_kv_span{dk.bytes() + base, dv.bytes() + base, nullptr, 0, ring, nullptr};
    }
  }
  DevBuf dspans(dspans_host.data(), dspans_host.size() * sizeof(rlkv_kv_span));
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<uint8_t> ref(out_bytes);
  rlkv_decode_args a = rlkv_decode_args_packed(B, Hq, Hkv, D, qb.data(), ref.data(), hspans.data(), scale, t);
  a.q_stride_head = qs;
  a.q_stride_seq = Hq * qs;
  if (rlkv_decode_attention_cpu(&a, 2) != RLKV_STATUS_OK) return 1;
  rlkv_decode_args g = a;
  g.q = dq.p;
  g.out = dout.bytes() + guard;
  g.spans = static_cast<const rlkv_kv_span*>(dspans.p);
  g.max_len = c.bound ? len + c.slack : 0;
  g.variant = c.variant;
  const int64_t ws = dev::workspace_bytes(&g);
  // The workspace also gets sentinels: a split must stay inside its own part.
  DevBuf dws(size_t(ws) + 2 * guard);
  dev::fill(dws.p, 0x5a, dws.n);
  g.workspace = ws > 0 ? dws.bytes() + guard : nullptr;
  g.workspace_bytes = ws;
  const rlkv_status st = dev::decode(&g);
  dev::sync();
  std::vector<uint8_t> got(out_bytes + 2 * guard), wsg(dws.n);
  dev::to_host(got.data(), dout.p, got.size());
  dev::to_host(wsg.data(), dws.p, wsg.size());
  int bad = st != RLKV_STATUS_OK;
  for (size_t i = 0; i < guard; ++i) {
    bad += got[i] != 0x5a || got[guard + out_bytes + i] != 0x5a;
    bad += wsg[i] != 0x5a || wsg[guard + size_t(ws) + i] != 0x5a;
  }
  // Tolerance, relative to 1 + |reference|: both sides accumulate in fp32 in different orders and with
  // different exp implementations (the kernels use exp2 of pre-scaled scores: ~1e-6 relative per term),
  // so f32 outputs of O(1) agree to ~1e-5; 16-bit outputs are rounded to the storage dtype on both
  // sides, and a rounding-boundary case differs by one ulp: 2^-8 (bf16) / 2^-11 (f16) of |value|.
  // The tensor-core path also rounds the probabilities to the storage dtype before P V (as
  // FlashAttention does): measured here at most 2.6e-3 (bf16) and 3.3e-4 (f16), inside the same bounds.
  const double tol = t == RLKV_DTYPE_F32 ? 2e-5 : (t == RLKV_DTYPE_BF16 ? 8e-3 : 1e-3);
  double worst = 0;
  for (int64_t i = 0; i < B * Hq * D; ++i) {
    const float r = load(&ref[size_t(i) * es], t), x = load(&got[guard + size_t(i) * es], t);
    if (!std::isfinite(x)) ++bad;
    worst = std::max(worst, double(std::fabs(x - r)) / (1.0 + std::fabs(r)));
  }
  const bool ok = bad == 0 && worst <= tol;
  std::printf(
      "%s %s dtype %d head_dim %lld group %lld batch %lld len %lld%s%s (workspace %lld B): max rel err %.2e (tol "
      "%.0e)%s\n",
      ok ? "ok  " : "FAIL", variant_name(c, g), int(t), (long long)D, (long long)G, (long long)B, (long long)len,
      c.bound ? (c.slack ? (" max_len +" + std::to_string(c.slack)).c_str() : "") : " max_len unknown",
      c.q_pad ? (" q head stride " + std::to_string(qs)).c_str() : "", (long long)ws, worst, tol,
      st != RLKV_STATUS_OK ? " + bad status" : (bad ? " + sentinel/NaN damage" : ""));
  return ok ? 0 : 1;
}

// kv_write: the same items written on both sides give byte-identical pools.
int run_write_case(rlkv_dtype t, int64_t D, std::mt19937& rng) {
  const size_t es = rlkv_dtype_size(t);
  const int64_t page = 16, pages_n = 8, n = 40;
  std::vector<uint8_t> pool(size_t(pages_n * page * D) * es, 0), src(size_t(n * D) * es);
  for (auto& b : src) b = uint8_t(rng());
  std::vector<int32_t> pages{5, 2, 7, 0};
  DevBuf dpool(pool.data(), pool.size()), dvpool(pool.data(), pool.size()), dsrc(src.data(), src.size());
  DevBuf dpages(pages.data(), pages.size() * 4);
  std::vector<uint8_t> vpool = pool;
  std::vector<rlkv_kv_write_item> hi(static_cast<size_t>(n)), di(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = (i * 7) % (int64_t(pages.size()) * page);
    const size_t at = size_t(i * D) * es;
    hi[size_t(i)] =
        rlkv_kv_write_item{pool.data(), vpool.data(), pages.data(), page, slot, src.data() + at, src.data() + at};
    di[size_t(i)] = rlkv_kv_write_item{dpool.p,           dvpool.p,         static_cast<int32_t*>(dpages.p), page, slot,
                                       dsrc.bytes() + at, dsrc.bytes() + at};
  }
  DevBuf ditems(di.data(), di.size() * sizeof(rlkv_kv_write_item));
  if (rlkv_kv_write_cpu(hi.data(), n, D, t, 1) != RLKV_STATUS_OK) return 1;
  const rlkv_status st = dev::write(static_cast<const rlkv_kv_write_item*>(ditems.p), n, D, t);
  dev::sync();
  std::vector<uint8_t> got(pool.size()), vgot(pool.size());
  dev::to_host(got.data(), dpool.p, got.size());
  dev::to_host(vgot.data(), dvpool.p, vgot.size());
  const bool ok = st == RLKV_STATUS_OK && got == pool && vgot == vpool;
  std::printf("%s kv_write dtype %d head_dim %lld\n", ok ? "ok  " : "FAIL", int(t), (long long)D);
  return ok ? 0 : 1;
}

#ifdef RLKV_OP_TEST_EMU
// Each block's plan as the main kernel computes it (rlkv_cuda::tc_plan_block), written to out[3 b ..]:
// the piece weight, the first span and that span's weight offset.
void plan_probe_kernel(rlkv_decode_args a, int64_t pairs, int64_t grid, int64_t* out) {
  RLKV_DYN_SMEM(int64_t, scratch);
  const int64_t b = blockIdx.x;
  const rlkv_cuda::tc_block_plan bp = rlkv_cuda::tc_plan_block(a, pairs, grid, b, scratch);
  if (threadIdx.x == 0) {
    out[3 * b] = bp.P;
    out[3 * b + 1] = bp.first_pair;
    out[3 * b + 2] = bp.first_vs;
  }
}

// The tensor-core path's plan (kernels/attention_cuda_tc.cuh) for the benchmark's shapes (8 KV heads,
// 4 query heads each, head_dim 128, 132 SMs; a fraction s of the spans compressed to S + W = 80 slots),
// computed by every block as the main kernel does and walked as it walks it: every block agrees on the
// piece weight and starts at the right span and offset; every token of every span read by exactly one
// block; a span read by one block written whole, else each of its blocks writes a partial slot of its
// own, in the order the combine launch reads them, and no two partials share a slot; each span's offset
// recorded by exactly one block; the grid used whole unless the pieces are at their minimum; and every
// block's weight (its tokens plus kTcSpanCost per span it touches) at most the piece weight plus two
// spans' costs (the spans cut at the piece's ends), so that no block waits on another by more than that.
int run_plan_case(int64_t batch, int64_t len, double sparsity) {
  using rlkv_cuda::kTcSpanCost;
  const int64_t Hkv = 8, pairs = batch * Hkv, ring = 80, sms = 132;
  std::vector<rlkv_kv_span> spans(size_t(pairs), rlkv_kv_span{nullptr, nullptr, nullptr, 16, len, nullptr});
  const int64_t compressed = int64_t(sparsity * double(pairs) + 0.5);
  for (int64_t p = 0; p < compressed; ++p) spans[size_t(p * pairs / std::max<int64_t>(1, compressed))].len = ring;
  rlkv_decode_args a =
      rlkv_decode_args_packed(batch, Hkv * 4, Hkv, 128, nullptr, nullptr, spans.data(), 1.f, RLKV_DTYPE_BF16);
  const rlkv_cuda::tc_plan_layout l = rlkv_cuda::tc_layout(a, int(sms));
  const int64_t grid = l.grid;
  std::vector<int64_t> plans(size_t(3 * grid), -1);
  auto* k = &plan_probe_kernel;
  emu::launch(dim3(unsigned(grid)), dim3(rlkv_cuda::kTcThreads), size_t(8 * (rlkv_cuda::kTcWarps + 2)), k, a, pairs,
              grid, plans.data());
  std::vector<int64_t> vstart(size_t(pairs + 1), 0);  // the host's prefix sums of the weights
  for (int64_t p = 0; p < pairs; ++p) vstart[size_t(p + 1)] = vstart[size_t(p)] + spans[size_t(p)].len + kTcSpanCost;
  const int64_t P = plans[0];
  int bad = P < 1;
  std::vector<std::vector<int>> read(static_cast<size_t>(pairs));  // per span and token: readers
  std::vector<std::vector<int64_t>> slots(static_cast<size_t>(pairs));
  std::vector<int> wholes(static_cast<size_t>(pairs), 0), starts(static_cast<size_t>(pairs), 0);
  std::vector<int> slot_used(size_t(l.max_slots()), 0);
  for (int64_t p = 0; p < pairs; ++p) read[size_t(p)].assign(size_t(spans[size_t(p)].len), 0);
  double most = 0, total = 0;
  int64_t used = 0;
  for (int64_t b = 0; b < grid && !bad; ++b) {
    const int64_t first = plans[size_t(3 * b + 1)];
    bad += plans[size_t(3 * b)] != P;
    if (first >= pairs) {  // no piece: the block starts at or past the end of the weights
      bad += first != pairs || b * P < vstart[size_t(pairs)];
      continue;
    }
    ++used;
    int64_t vs = plans[size_t(3 * b + 2)], tokens = 0, touched = 0;
    bad += first < 0 || vs != vstart[size_t(first)] || !(vs <= b * P && b * P < vstart[size_t(first + 1)]);
    for (int64_t p = first; p < pairs && vs < (b + 1) * P && !bad; ++p) {
      const int64_t ve = vs + spans[size_t(p)].len + kTcSpanCost;
      const rlkv_cuda::tc_piece pc = rlkv_cuda::tc_piece_at(P, b, vs, ve);
      starts[size_t(p)] += vs >= b * P;
      vs = ve;
      if (pc.begin < 0 || pc.end > spans[size_t(p)].len || pc.begin > pc.end) {
        ++bad;
        break;
      }
      for (int64_t t = pc.begin; t < pc.end; ++t) ++read[size_t(p)][size_t(t)];
      if (pc.whole) {
        ++wholes[size_t(p)];
      } else {
        slots[size_t(p)].push_back(pc.slot);
        if (pc.slot < 0 || pc.slot >= l.max_slots() || slot_used[size_t(pc.slot)]++ != 0) ++bad;
      }
      tokens += pc.end - pc.begin;
      ++touched;
    }
    const double weight = double(tokens + kTcSpanCost * touched);
    bad += weight > double(P + 2 * kTcSpanCost);
    most = std::max(most, weight);
    total += weight;
  }
  bad += used < grid && P != rlkv_cuda::kTcMinPiece;
  int partials = 0;
  for (int64_t p = 0; p < pairs && !bad; ++p) {
    for (int x : read[size_t(p)]) bad += x != 1;
    bad += starts[size_t(p)] != 1;
    const auto& sl = slots[size_t(p)];
    const int64_t vs = vstart[size_t(p)], first = vs / P, n = (vstart[size_t(p + 1)] - 1) / P - first + 1;
    if (wholes[size_t(p)] == 1) {
      bad += !sl.empty() || n != 1;
    } else {
      bad += wholes[size_t(p)] != 0 || int64_t(sl.size()) != n;
      for (size_t i = 0; i < sl.size(); ++i)
        bad += sl[i] != (i == 0 ? rlkv_cuda::tc_slot(P, first, vs) : 2 * (first + int64_t(i)));
      partials += int(sl.size());
    }
  }
  const bool ok = bad == 0;
  std::printf(
      "%s plan batch %lld len %lld sparsity %.1f: %lld tokens of weight per block, %lld blocks of %lld, %d partial "
      "results, heaviest block %.3fx the mean of the blocks used\n",
      ok ? "ok  " : "FAIL", (long long)batch, (long long)len, sparsity, (long long)P, (long long)used, (long long)grid,
      partials, most / (total / double(std::max<int64_t>(1, used))));
  return ok ? 0 : 1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  // --quick: the cases without the long spans (for runs under compute-sanitizer).
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  if (!dev::available()) {
    std::printf("%s: no CUDA device; skipped\n", dev::kName);
    return 77;
  }
#ifdef RLKV_OP_TEST_EMU
  rlkv_cuda::emu_num_sms() = 132;  // as an H100 / H200, so the split plan is the one a GPU gets
#endif
  std::mt19937 rng(20261129);
  const int64_t S = 16, W = 64;
  std::vector<Case> cases;
  for (rlkv_dtype t : {RLKV_DTYPE_F32, RLKV_DTYPE_F16, RLKV_DTYPE_BF16})
    for (int64_t D : {64, 128})
      for (int64_t G : {1, 4, 7})
        for (int64_t len : {int64_t(1), S + W - 1, S + W, S + W + 1, int64_t(300), int64_t(4097)})
          cases.push_back({t, D, G, len});
  // The other group buckets and head_dim 256 of the split kernel, the generic kernel (head_dim 96,
  // group 9), and launches without a length bound (one block per span, no workspace).
  for (rlkv_dtype t : {RLKV_DTYPE_F32, RLKV_DTYPE_BF16}) {
    cases.push_back({t, 256, 2, 4097});
    cases.push_back({t, 128, 8, 1000});
    cases.push_back({t, 96, 4, 300});
    cases.push_back({t, 64, 9, S + W + 1});
    cases.push_back({t, 128, 4, 4097, false});
    // Loose bounds: the launch is planned for longer spans than the batch has (graph replays).
    cases.push_back({t, 128, 4, 4097, true, 4097});
    cases.push_back({t, 64, 1, 300, true, 5000});
    cases.push_back({t, 128, 7, 1000, true, 37});
  }
  // Many spans: the tensor-core path's plan (full chunks first, tails after) over 32 and 66 spans of
  // which half are short compressed rings, as at high sparsity.
  for (rlkv_dtype t : {RLKV_DTYPE_F16, RLKV_DTYPE_BF16}) {
    Case many{t, 128, 4, 4097};
    many.batch = 16;
    cases.push_back(many);
    Case odd{t, 64, 8, 777};
    odd.batch = 33;
    cases.push_back(odd);
    // Query rows that are not 16-byte aligned (a head stride of D + 3 elements): no vector loads.
    Case padded{t, 128, 4, 300};
    padded.q_pad = 3;
    cases.push_back(padded);
  }
  // Every case again with each score variant of the CUDA-core split kernel (DEFAULT takes the
  // tensor-core path for 16-bit caches of head_dim 64 / 128 and groups up to 8).
  const size_t base_cases = cases.size();
  for (int32_t v : {RLKV_DECODE_VARIANT_LANE, RLKV_DECODE_VARIANT_COOP})
    for (size_t i = 0; i < base_cases; ++i) {
      Case c = cases[i];
      if (v == RLKV_DECODE_VARIANT_LANE && c.t == RLKV_DTYPE_F32) continue;  // DEFAULT is LANE there already
      c.variant = v;
      cases.push_back(c);
    }
  if (quick)
    cases.erase(std::remove_if(cases.begin(), cases.end(), [](const Case& c) { return c.len > 300; }), cases.end());
  int failures = 0, n = 0;
  for (const Case& c : cases) {
    failures += run_case(c, rng);
    ++n;
  }
  for (rlkv_dtype t : {RLKV_DTYPE_F32, RLKV_DTYPE_F16, RLKV_DTYPE_BF16})
    for (int64_t D : {64, 128}) {
      failures += run_write_case(t, D, rng);
      ++n;
    }
#ifdef RLKV_OP_TEST_EMU
  // The benchmark's shapes, then many spans (several per thread of the block's scan, a count that
  // is not a multiple of the block), and a single short sequence (most blocks without a piece).
  const std::vector<std::pair<int64_t, int64_t>> plan_shapes = {{32, 4096},  {32, 32768}, {4, 4096}, {4, 32768},
                                                                {128, 4096}, {33, 4097},  {1, 100}};
  for (const auto& [batch, len] : plan_shapes)
    for (double s : {0.0, 0.5, 0.8}) {
      failures += run_plan_case(batch, len, s);
      ++n;
    }
#endif
  std::printf("%s: %d passed, %d failed\n", dev::kName, n - failures, failures);
  return failures ? 1 : 0;
}
