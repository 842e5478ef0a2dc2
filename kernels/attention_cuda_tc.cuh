// The tensor-core decode-attention path (variant RLKV_DECODE_VARIANT_TC, the default for 16-bit caches,
// head_dim 64 / 128 and up to 8 query heads per KV head). Included by attention_cuda_impl.cuh, whose
// helpers (row_of, from_f, kLog2e, ceil_div, num_sms) it uses.
//
// Why it is shaped this way. Decode attention reads each cached K and V row once and does 2 G FLOPs
// per element read, so a kernel is fast when it keeps enough bytes in flight to saturate HBM and
// spends few instructions per byte. Two launches per call:
//   1. main (a fixed grid of SMs x kTcBlocksPerSm blocks of 4 warps). Each block first plans its own
//      work from the spans' actual lengths (no separate planning launch): each span weighs its length
//      plus kTcSpanCost tokens (the fixed work of a span in a block: query rows, pipeline fill,
//      merge); the spans' weights laid end to end are cut into equal pieces, one per block (at least
//      kTcMinPiece each), and a block finds where its piece starts with one prefix sum over the
//      spans' lengths (each thread sums a contiguous run of spans, then a scan across the block). It
//      then reads the tokens of its piece: the end of one span, whole short spans (compressed heads:
//      S + W slots), the start of the next; a long full head is spread over many blocks. No block
//      reads more than its share plus two spans' costs, at any batch and sparsity, and a replayed
//      CUDA graph plans each step from that step's lengths.
//      Per span of its piece, the GQA group's query rows (up to 8, padded to the 16 rows of an
//      m16n8k16 tile) are the A operand of tensor-core MMAs; K and V tiles of 64 tokens stream into
//      shared memory through a kTcStages-deep cp.async pipeline (16-byte copies, XOR-swizzled rows so
//      that ldmatrix reads are free of bank conflicts; page rows found by 32-bit stepping, not a
//      division per row); each warp takes 16 tokens of a tile: S = Q K^T (ldmatrix on K), an online
//      softmax in base 2 on the score fragments, and O += P V with P reused from the score fragments
//      as the next A operand (ldmatrix.trans on V). The warps merge at the span's end; a block
//      holding a whole span writes its output, the others write an unnormalised partial with its
//      running max and sum (possibly empty: a piece can hold only a span's cost) to one of the
//      block's two partial slots (2 b for the span its piece starts in, 2 b + 1 for a span that starts
//      inside the piece and runs past its end). The block where a span starts records the span's
//      weight offset, and block 0 the piece weight, for the second launch.
//   2. combine (one block per span): spans cut over several blocks merge their partials (exact up to
//      rounding); the others return at once.
// Accumulation is fp32; P is rounded to the storage dtype for the P V product (as FlashAttention does).
// Lengths are below 2^31 tokens per span.
#pragma once

namespace rlkv_cuda {

constexpr int kTcWarps = 4, kTcThreads = 32 * kTcWarps;
constexpr int kTcTile = 64;        // tokens per pipeline stage (16 per warp)
constexpr int kTcStages = 3;       // tiles in flight per block
constexpr int kTcBlocksPerSm = 2;  // blocks per SM (shared memory allows 2 at head_dim 128)
constexpr int kTcSpanCost = 128;   // a span's fixed work in a block, in tokens of reading
constexpr int kTcMinPiece = 256;   // weight per block at least (short calls use fewer blocks)
constexpr int kTcMaxGroup = 8;     // query rows per item (rows 8..15 of the MMA tile stay zero)

// The workspace: a header (the piece weight), each span's weight offset, then the partial results
// (floats, 16-byte aligned), two slots per block.
struct tc_plan_layout {
  int64_t pairs = 0, grid = 0, group = 0, head_dim = 0;
  __host__ __device__ int64_t max_slots() const { return 2 * grid; }
  __host__ __device__ int64_t off_vstart() const { return 32; }  // header: int64 [4]
  __host__ __device__ int64_t off_floats() const { return (off_vstart() + 8 * pairs + 15) / 16 * 16; }
  __host__ __device__ int64_t bytes() const { return off_floats() + 4 * max_slots() * group * (head_dim + 2); }
};

struct tc_plan_view {
  int64_t* header;  // [0] piece weight P (written by block 0 of the main launch)
  int64_t* vstart;  // [pairs] where each span's weight starts (written by the block it starts in)
  float* part_out;  // [max_slots][G][D] unnormalised outputs
  float* part_max;  // [max_slots][G] running max (base-2 exponent domain)
  float* part_sum;  // [max_slots][G]
};

__host__ __device__ __forceinline__ tc_plan_view tc_view(void* ws, const tc_plan_layout& l) {
  unsigned char* b = static_cast<unsigned char*>(ws);
  tc_plan_view v;
  v.header = reinterpret_cast<int64_t*>(b);
  v.vstart = reinterpret_cast<int64_t*>(b + l.off_vstart());
  v.part_out = reinterpret_cast<float*>(b + l.off_floats());
  v.part_max = v.part_out + l.max_slots() * l.group * l.head_dim;
  v.part_sum = v.part_max + l.max_slots() * l.group;
  return v;
}

// Where block `block`'s piece starts: the span holding its first token of weight (pairs: the block has
// no piece) and that span's weight offset, with the piece weight P.
struct tc_block_plan {
  int64_t P, first_pair, first_vs;
};

// The partial slot of span [vs, ve) (weight offsets) in block `block`: 2 block for the span the block's
// piece starts in, 2 block + 1 for a span starting inside the piece.
__host__ __device__ __forceinline__ int64_t tc_slot(int64_t P, int64_t block, int64_t vs) {
  return 2 * block + (vs <= block * P ? 0 : 1);
}

// The part of span [vs, ve) that block `block` reads: tokens [begin, end) (empty when the block holds
// only part of the span's cost), whether the block holds the whole span, and the span's partial slot
// for this block otherwise.
struct tc_piece {
  int64_t begin, end, slot;
  bool whole;
};
__host__ __device__ __forceinline__ tc_piece tc_piece_at(int64_t P, int64_t block, int64_t vs, int64_t ve) {
  const int64_t lo = (block * P > vs ? block * P : vs) - vs, hi = ((block + 1) * P < ve ? (block + 1) * P : ve) - vs;
  tc_piece r;
  r.begin = lo > kTcSpanCost ? lo - kTcSpanCost : 0;
  r.end = hi > kTcSpanCost ? hi - kTcSpanCost : 0;
  r.whole = vs / P == (ve - 1) / P;
  r.slot = tc_slot(P, block, vs);
  return r;
}

// The block's plan, computed by all kTcThreads threads of the block from the spans' lengths; `scratch`
// is shared memory of at least kTcWarps + 2 int64 (free again on return). Each thread sums the weights
// of a contiguous run of spans (independent loads), a scan across the block gives each run's offset,
// and the thread whose run holds the piece's first token walks it to the span.
__device__ __forceinline__ tc_block_plan tc_plan_block(const rlkv_decode_args& a, int64_t pairs, int64_t grid,
                                                       int64_t block, int64_t* scratch) {
  const int t = int(threadIdx.x), lane = t % 32, warp = t / 32;
  const int64_t per = (pairs + kTcThreads - 1) / kTcThreads;
  const int64_t p0 = t * per < pairs ? t * per : pairs, p1 = p0 + per < pairs ? p0 + per : pairs;
  int64_t w = 0;
  for (int64_t p = p0; p < p1; ++p) w += a.spans[p].len + kTcSpanCost;
  int64_t incl = w;  // inclusive prefix over the warp's runs
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int64_t y = __shfl_sync(0xffffffffu, incl, lane >= o ? lane - o : lane);
    if (lane >= o) incl += y;
  }
  if (lane == 31) scratch[warp] = incl;
  if (t == 0) scratch[kTcWarps] = pairs;  // no piece, unless a run holds its start
  __syncthreads();
  int64_t before = 0, V = 0;
#pragma unroll
  for (int i = 0; i < kTcWarps; ++i) {
    before += i < warp ? scratch[i] : 0;
    V += scratch[i];
  }
  const int64_t excl = before + incl - w;
  const int64_t even = (V + grid - 1) / grid;
  tc_block_plan r;
  r.P = even > kTcMinPiece ? even : kTcMinPiece;
  const int64_t lo = block * r.P;
  if (excl <= lo && lo < excl + w) {  // exactly one thread: runs tile [0, V) and lo < V
    int64_t vs = excl, p = p0;
    for (;; ++p) {
      const int64_t we = a.spans[p].len + kTcSpanCost;
      if (lo < vs + we) break;
      vs += we;
    }
    scratch[kTcWarps] = p;
    scratch[kTcWarps + 1] = vs;
  }
  __syncthreads();
  r.first_pair = scratch[kTcWarps];
  r.first_vs = r.first_pair < pairs ? scratch[kTcWarps + 1] : 0;
  __syncthreads();  // the caller may reuse the scratch
  return r;
}

// Shared memory of the main kernel: the query rows, then the pipeline's K and V tiles (reused for the
// warps' merge at the end of each item, in the last stage's buffer).
template <int D>
struct tc_smem {
  static constexpr int kRowBytes = 2 * D;  // a 16-bit row of head_dim elements
  static constexpr int kQ = kTcMaxGroup * kRowBytes;
  static constexpr int kTileBytes = kTcTile * kRowBytes;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kMergeBytes = kTcWarps * kTcMaxGroup * (D + 2) * 4;
  static constexpr int kPipeBytes = kTcStages * kStageBytes;
  static constexpr int kBytes = kQ + kPipeBytes;
  // The merge at a span's end uses the last stage's buffer, while the next span's first tiles are
  // already in flight into the other stages.
  static constexpr int kMergeOffset = (kTcStages - 1) * kStageBytes;
  static_assert(kStageBytes >= kMergeBytes, "the merge fits in one stage's buffer");
};

// Byte offset of 16-byte chunk `ch` of row `row` in a swizzled tile of D-element 16-bit rows: the
// chunks of row r are permuted by r mod 8, so 8 consecutive rows read at one logical chunk (an
// ldmatrix) fall in 8 different bank groups.
template <int D>
__device__ __forceinline__ int swz(int row, int ch) {
  return row * 2 * D + ((ch ^ (row & 7)) << 4);
}

// Issues the cp.async of one K / V tile (tokens t0 .. t0 + kTcTile - 1 of the span; those at or past
// `end` are zero-filled and never read from memory). Thread i copies 16-byte chunk i % kChunks of rows
// i / kChunks + k kStep: its first row's page comes from one 32-bit division, the others by stepping,
// and the page-table reads of all its rows are independent (issued together, before the copies).
template <int D>
__device__ __forceinline__ void tc_load_tile(unsigned char* stage, const rlkv_kv_span& sp, int64_t t0, int64_t end) {
  constexpr int kChunks = D / 8;               // 16-byte chunks per row
  constexpr int kStep = kTcThreads / kChunks;  // rows between one thread's copies
  static_assert(kTcThreads % kChunks == 0 && kTcTile % kStep == 0, "the tile's chunks split evenly");
  const unsigned char* kb = static_cast<const unsigned char*>(sp.k);
  const unsigned char* vb = static_cast<const unsigned char*>(sp.v);
  unsigned char* ks = stage;
  unsigned char* vs = stage + tc_smem<D>::kTileBytes;
  const int ch = int(threadIdx.x) % kChunks, row0 = int(threadIdx.x) / kChunks;
  const uint32_t left = end > t0 ? uint32_t(end - t0) : 0u;  // valid rows of this tile (from row 0)
  uint32_t slot = uint32_t(t0) + uint32_t(row0), page = 0, in_page = slot;
  const uint32_t ps = sp.pages != nullptr ? uint32_t(sp.page_size) : 0u;
  if (ps != 0) {
    page = slot / ps;
    in_page = slot - page * ps;
  }
  uint32_t rows[kTcTile / kStep];
#pragma unroll
  for (int k = 0; k < kTcTile / kStep; ++k) {
    const bool valid = uint32_t(row0 + k * kStep) < left;
    rows[k] = ps == 0 ? slot : (valid ? uint32_t(sp.pages[page]) * ps + in_page : 0u);
    slot += kStep;
    if (ps != 0) {
      in_page += kStep;
      while (in_page >= ps) {
        in_page -= ps;
        ++page;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kTcTile / kStep; ++k) {
    const int row = row0 + k * kStep;
    const bool valid = uint32_t(row) < left;
    const size_t off = valid ? (size_t(rows[k]) * D + size_t(ch) * 8) * 2 : 0;
    cp_async16(ks + swz<D>(row, ch), kb + off, valid);
    cp_async16(vs + swz<D>(row, ch), vb + off, valid);
  }
}

// Per-warp state of one item: the running max and (lane-partial) sum of query row `gid`, and the
// output fragments (rows gid and gid + 8 of the MMA tile; rows >= 8 are padding and stay zero).
template <int D>
struct tc_warp_state {
  float m, l;
  float o[D / 8][4];
};

// One warp's 16 tokens of a tile: scores, online softmax, P V.
template <typename T, int D>
__device__ __forceinline__ void tc_compute_tile(const unsigned char* stage, const uint32_t (&qa)[D / 16][2],
                                                tc_warp_state<D>& st, int64_t t0, int64_t end, float scale_log2) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, tig = lane % 4;
  const unsigned char* ks = stage;
  const unsigned char* vs = stage + tc_smem<D>::kTileBytes;
  // S = Q K^T over the warp's two blocks of 8 tokens.
  float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
  const int krow = 16 * warp + (lane % 8) + 8 * (lane / 16);
#pragma unroll
  for (int k = 0; k < D / 16; ++k) {
    uint32_t r[4];
    ldmatrix_x4(r, ks + swz<D>(krow, 2 * k + (lane / 8) % 2));
    const uint32_t a[4] = {qa[k][0], 0u, qa[k][1], 0u};
    const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
    mma_16816<T>(s[0], a, b0);
    mma_16816<T>(s[1], a, b1);
  }
  // Online softmax of row gid over these 16 tokens (each quad of lanes holds one row).
  float x[2][2], mx = -INFINITY;
#pragma unroll
  for (int nb = 0; nb < 2; ++nb)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t tok = t0 + 16 * warp + 8 * nb + 2 * tig + j;
      x[nb][j] = tok < end ? s[nb][j] * scale_log2 : -INFINITY;
      mx = fmaxf(mx, x[nb][j]);
    }
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(st.m, mx);
  const float m_use = m_new == -INFINITY ? 0.f : m_new;  // no valid token yet: keep everything at 0
  const float corr = exp2f(st.m - m_use);
  float p[2][2], psum = 0.f;
#pragma unroll
  for (int nb = 0; nb < 2; ++nb)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      p[nb][j] = exp2f(x[nb][j] - m_use);
      psum += p[nb][j];
    }
  st.l = st.l * corr + psum;
  st.m = m_new;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    st.o[n][0] *= corr;
    st.o[n][1] *= corr;
  }
  // O += P V: the score fragments of the two token blocks are the A operand (rows gid; k = tokens).
  const uint32_t pa[4] = {pack2<T>(p[0][0], p[0][1]), 0u, pack2<T>(p[1][0], p[1][1]), 0u};
  const int vrow = 16 * warp + (lane % 8) + 8 * ((lane / 8) % 2);
#pragma unroll
  for (int j = 0; j < D / 16; ++j) {
    uint32_t r[4];
    ldmatrix_x4_trans(r, vs + swz<D>(vrow, 2 * j + lane / 16));
    const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
    mma_16816<T>(st.o[2 * j], pa, b0);
    mma_16816<T>(st.o[2 * j + 1], pa, b1);
  }
}

// The query rows of the item's group into shared memory (rows >= G zero), then this warp's A
// fragments: for each 16-dim step k, the b32 registers a0 (dims 16k + 2 tig) and a2 (dims + 8) of row gid.
template <typename T, int D>
__device__ __forceinline__ void tc_load_q(const rlkv_decode_args& a, int64_t s, int64_t h, int64_t G, unsigned char* qs,
                                          uint32_t (&qa)[D / 16][2]) {
  const T* qb = static_cast<const T*>(a.q);
  for (int i = threadIdx.x; i < kTcMaxGroup * D / 8; i += kTcThreads) {
    const int row = i / (D / 8), ch = i % (D / 8);
    uint16_t e[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (row < G) {
      const T* src = qb + s * a.q_stride_seq + (h * G + row) * a.q_stride_head + ch * 8;
      if ((reinterpret_cast<uintptr_t>(src) & 15u) == 0) {  // one 16-byte load (packed rows: always)
        const uint4 x = *reinterpret_cast<const uint4*>(src);
        memcpy(e, &x, 16);
      } else {
        for (int j = 0; j < 8; ++j) e[j] = reinterpret_cast<const uint16_t*>(src)[j];
      }
    }
    memcpy(qs + swz<D>(row, ch), e, 16);
  }
  __syncthreads();
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kp = 0; kp < D / 32; ++kp) {
    uint32_t r[4];
    ldmatrix_x4(r, qs + swz<D>(lane % 8, 4 * kp + lane / 8));
    qa[2 * kp][0] = r[0];
    qa[2 * kp][1] = r[1];
    qa[2 * kp + 1][0] = r[2];
    qa[2 * kp + 1][1] = r[3];
  }
}

// The warps' states merged in shared memory (`merge`: the last stage's buffer, drained), then the
// item's output: final (normalised, the storage dtype) when it covers its whole span, else a partial.
template <typename T, int D>
__device__ __forceinline__ void tc_finish_item(const rlkv_decode_args& a, const tc_plan_view& v, tc_warp_state<D>& st,
                                               unsigned char* merge, int64_t pair, int64_t slot, bool whole,
                                               int64_t G) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  st.l += __shfl_xor_sync(0xffffffffu, st.l, 1);
  st.l += __shfl_xor_sync(0xffffffffu, st.l, 2);
  float* wm = reinterpret_cast<float*>(merge);  // [kTcWarps][8]
  float* wl = wm + kTcWarps * kTcMaxGroup;      // [kTcWarps][8]
  float* wo = wl + kTcWarps * kTcMaxGroup;      // [kTcWarps][8][D]
  if (gid < G) {
    if (tig == 0) {
      wm[warp * kTcMaxGroup + gid] = st.m;
      wl[warp * kTcMaxGroup + gid] = st.l;
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      wo[(warp * kTcMaxGroup + gid) * D + 8 * n + 2 * tig] = st.o[n][0];
      wo[(warp * kTcMaxGroup + gid) * D + 8 * n + 2 * tig + 1] = st.o[n][1];
    }
  }
  __syncthreads();
  const int64_t Hkv = a.num_kv_heads, s = pair / Hkv, h = pair % Hkv;
  T* ob = static_cast<T*>(a.out);
  for (int i = threadIdx.x; i < G * D; i += kTcThreads) {
    const int g = i / D, d = i % D;
    const softmax_partial r =
        merge_partials(wm + g, wl + g, wo + g * D + d, kTcWarps, kTcMaxGroup, int64_t(kTcMaxGroup) * D);
    if (whole) {
      ob[s * a.out_stride_seq + (h * G + g) * a.out_stride_head + d] = from_f<T>(r.o / r.l);
    } else {
      v.part_out[(slot * G + g) * D + d] = r.o;
      if (d == 0) {
        v.part_max[slot * G + g] = r.m;
        v.part_sum[slot * G + g] = r.l;
      }
    }
  }
  __syncthreads();  // the next item overwrites the merge area
}

// Programmatic dependent launch (sm_90 and later): the combine launch may start while the main launch
// runs (its blocks are scheduled once every main block has started, hiding the launch gap), and each
// of its threads first waits until the main launch has completed and its writes are visible. Elsewhere
// (older GPUs, the emulator) the launches simply run one after the other.
__device__ __forceinline__ void tc_allow_combine() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void tc_wait_for_main() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// One piece of the plan per block: the block plans it, then reads the spans its weight touches, each
// through the pipeline.
template <typename T, int D>
__global__ void __launch_bounds__(kTcThreads, kTcBlocksPerSm)
    decode_tc_kernel(rlkv_decode_args a, void* ws, tc_plan_layout l) {
  const tc_plan_view v = tc_view(ws, l);
  const int64_t block = blockIdx.x;
  const int64_t Hkv = a.num_kv_heads, G = a.num_q_heads / Hkv;
  const float scale_log2 = a.scale * kLog2e;
  RLKV_DYN_SMEM(unsigned char, smem);
  unsigned char* qs = smem;
  unsigned char* pipe = smem + tc_smem<D>::kQ;
  tc_allow_combine();
  const tc_block_plan bp = tc_plan_block(a, l.pairs, l.grid, block, reinterpret_cast<int64_t*>(pipe));
  const int64_t P = bp.P, lo = block * P, hi = lo + P;
  if (block == 0 && threadIdx.x == 0) v.header[0] = P;
  // The span the loop works on (pair, its weight offset vs, its piece pc); its first kTcStages - 1
  // tiles are issued one span ahead: the next span's before this span's merge, output and the next
  // query rows, so that those steps overlap the next span's first memory trip. One commit group per
  // tile, empty groups past the end keep the count uniform.
  auto issue_first_tiles = [&](int64_t pair_, int64_t vs_, tc_piece& pc_) {
    const bool any = pair_ < l.pairs && vs_ < hi;
    if (any) pc_ = tc_piece_at(P, block, vs_, vs_ + a.spans[pair_].len + kTcSpanCost);
    const int64_t tiles_ = any ? (pc_.end - pc_.begin + kTcTile - 1) / kTcTile : 0;
#pragma unroll
    for (int i = 0; i < kTcStages - 1; ++i) {
      if (i < tiles_)
        tc_load_tile<D>(pipe + i * tc_smem<D>::kStageBytes, a.spans[pair_], pc_.begin + i * kTcTile, pc_.end);
      cp_async_commit();
    }
  };
  int64_t pair = bp.first_pair, vs = bp.first_vs;
  tc_piece pc{0, 0, 0, false};
  issue_first_tiles(pair, vs, pc);
  for (; pair < l.pairs && vs < hi; ++pair) {
    const rlkv_kv_span sp = a.spans[pair];
    const int64_t ve = vs + sp.len + kTcSpanCost;
    if (threadIdx.x == 0 && vs >= lo) v.vstart[pair] = vs;  // the span starts in this block's piece
    const tc_piece cur = pc;
    const int64_t begin = cur.begin, end = cur.end;
    const int64_t tiles = (end - begin + kTcTile - 1) / kTcTile;
    uint32_t qa[D / 16][2];
    tc_load_q<T, D>(a, pair / Hkv, pair % Hkv, G, qs, qa);
    tc_warp_state<D> st;
    st.m = -INFINITY;
    st.l = 0.f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.f;
    for (int64_t i = 0; i < tiles; ++i) {
      cp_async_wait<kTcStages - 2>();
      __syncthreads();  // tile i has landed for every thread; tile i - 1's buffer is free
      const int64_t next = i + kTcStages - 1;
      if (next < tiles)
        tc_load_tile<D>(pipe + (next % kTcStages) * tc_smem<D>::kStageBytes, sp, begin + next * kTcTile, end);
      cp_async_commit();
      tc_compute_tile<T, D>(pipe + (i % kTcStages) * tc_smem<D>::kStageBytes, qa, st, begin + i * kTcTile, end,
                            scale_log2);
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done with the tiles: the buffers are free
    vs = ve;
    issue_first_tiles(pair + 1, vs, pc);  // into stages 0 .. kTcStages - 2; the merge uses the last
    tc_finish_item<T, D>(a, v, st, pipe + tc_smem<D>::kMergeOffset, pair, cur.slot, cur.whole, G);
  }
}

// One block per span: merges the partials of the spans cut over several blocks. A span can have
// hundreds of partials (a long full head among compressed ones), so nothing walks them one load at
// a time: the maxima and sums are reduced by the warps in parallel, and each thread then accumulates
// its output elements (at most kTcCombineVecs runs of 4, read as 16-byte loads) over the partials with
// independent loads, eight partials at a time.
constexpr int kTcCombineVecs = kTcMaxGroup * 128 / 4 / kTcThreads;
inline size_t tc_combine_smem(const tc_plan_layout& l) {
  return size_t(4 * (l.grid + 1) * l.group + 4 * l.group);  // weights [pieces][G], then 1 / sum [G]
}
template <typename T>
__global__ void __launch_bounds__(kTcThreads) tc_combine_kernel(rlkv_decode_args a, const void* ws, tc_plan_layout l) {
  tc_wait_for_main();
  const tc_plan_view v = tc_view(const_cast<void*>(ws), l);
  const int64_t pair = blockIdx.x;
  const int64_t P = v.header[0], vs = v.vstart[pair], ve = vs + a.spans[pair].len + kTcSpanCost;
  const int64_t first = vs / P, n = (ve - 1) / P - first + 1;
  if (n <= 1) return;  // written by the main kernel
  // The span's partials: slot tc_slot(first) of block `first`, then slot 2 k of each later block k.
  const int64_t slot0 = tc_slot(P, first, vs);
  const int64_t Hkv = a.num_kv_heads, G = a.num_q_heads / Hkv, D = a.head_dim, s = pair / Hkv, h = pair % Hkv;
  RLKV_DYN_SMEM(float, wt);  // [n][G]: exp2(m - max) of each partial, then [G]: 1 / sum
  float* inv = wt + n * G;
  auto slot_of = [&](int64_t j) { return j == 0 ? slot0 : 2 * (first + j); };
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int64_t g = warp; g < G; g += kTcWarps) {
    float mx = -INFINITY;
    for (int64_t j = lane; j < n; j += 32) mx = fmaxf(mx, v.part_max[slot_of(j) * G + g]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int64_t j = lane; j < n; j += 32) {
      const int64_t sl = slot_of(j);
      const float mj = v.part_max[sl * G + g];
      const float f = mj == -INFINITY ? 0.f : exp2f(mj - mx);  // an empty partial weighs nothing
      wt[j * G + g] = f;
      sum += v.part_sum[sl * G + g] * f;
    }
    sum = warp_sum(sum);
    if (lane == 0) inv[g] = 1.f / sum;
  }
  __syncthreads();
  // Runs of 4 elements of the [G][D] output (D is a multiple of 4, so a run lies in one query row; the
  // partials are 16-byte aligned).
  const int64_t vecs = G * D / 4;
  const float4* po = reinterpret_cast<const float4*>(v.part_out);
  float4 acc[kTcCombineVecs];
#pragma unroll
  for (int e = 0; e < kTcCombineVecs; ++e) acc[e] = float4{0.f, 0.f, 0.f, 0.f};
#pragma unroll 8
  for (int64_t j = 0; j < n; ++j) {
    const int64_t base = slot_of(j) * vecs;
#pragma unroll
    for (int e = 0; e < kTcCombineVecs; ++e) {
      const int64_t i = threadIdx.x + int64_t(e) * kTcThreads;
      if (i < vecs) {
        const float4 x = po[base + i];
        const float w = wt[j * G + 4 * i / D];
        acc[e].x += x.x * w;
        acc[e].y += x.y * w;
        acc[e].z += x.z * w;
        acc[e].w += x.w * w;
      }
    }
  }
  T* ob = static_cast<T*>(a.out);
#pragma unroll
  for (int e = 0; e < kTcCombineVecs; ++e) {
    const int64_t i = threadIdx.x + int64_t(e) * kTcThreads;
    if (i < vecs) {
      const int64_t g = 4 * i / D, d = 4 * i % D;
      const float r = inv[g];
      T* o = ob + s * a.out_stride_seq + (h * G + g) * a.out_stride_head + d;
      o[0] = from_f<T>(acc[e].x * r);
      o[1] = from_f<T>(acc[e].y * r);
      o[2] = from_f<T>(acc[e].z * r);
      o[3] = from_f<T>(acc[e].w * r);
    }
  }
}

// ---- host side ----------------------------------------------------------------------------------

inline bool tc_applies(const rlkv_decode_args& a) {
  const int64_t G = a.num_q_heads / a.num_kv_heads;
  const bool sixteen_bit = a.dtype == RLKV_DTYPE_BF16 || a.dtype == RLKV_DTYPE_F16;
  const bool asked = a.variant == RLKV_DECODE_VARIANT_DEFAULT || a.variant == RLKV_DECODE_VARIANT_TC;
  return asked && sixteen_bit && (a.head_dim == 64 || a.head_dim == 128) && G <= kTcMaxGroup;
}

inline int64_t tc_grid(int sms) { return int64_t(sms) * kTcBlocksPerSm; }

#ifndef RLKV_SIMT_EMU
// Whether the current device takes programmatic dependent launches (compute capability 9.0 and
// later) and the driver captures them into CUDA graphs (12.3 and later), read once per device so that
// launches inside a capture make no queries. Threads may ask at once: every one stores the same value.
inline bool tc_dependent_launch() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};  // 0 unknown, 1 no, 2 yes
  int dev = 0, major = 0, driver = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  const bool cacheable = dev >= 0 && dev < kMaxDevices;
  if (cacheable) {
    const int known = cached[dev].load(std::memory_order_relaxed);
    if (known != 0) return known == 2;
  }
  const bool yes = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                   major >= 9 && cudaDriverGetVersion(&driver) == cudaSuccess && driver >= 12030;
  if (cacheable) cached[dev].store(yes ? 2 : 1, std::memory_order_relaxed);
  return yes;
}
#endif

inline tc_plan_layout tc_layout(const rlkv_decode_args& a, int sms) {
  tc_plan_layout l;
  l.pairs = a.num_seqs * a.num_kv_heads;
  l.grid = tc_grid(sms);
  l.group = a.num_q_heads / a.num_kv_heads;
  l.head_dim = a.head_dim;
  return l;
}

template <typename T, int D>
rlkv_status tc_launch_d(const rlkv_decode_args& a, const tc_plan_layout& l, cudaStream_t st) {
  auto* main_k = &decode_tc_kernel<T, D>;
  const size_t smem = size_t(tc_smem<D>::kBytes);
#ifndef RLKV_SIMT_EMU
  if (cudaFuncSetAttribute(main_k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess)
    return RLKV_STATUS_DEVICE_ERROR;
#endif
  RLKV_LAUNCH(main_k, dim3(unsigned(l.grid)), dim3(kTcThreads), smem, st, a, a.workspace, l);
  if (!RLKV_LAUNCH_OK()) return RLKV_STATUS_DEVICE_ERROR;
  auto* comb_k = &tc_combine_kernel<T>;
#ifdef RLKV_SIMT_EMU
  RLKV_LAUNCH(comb_k, dim3(unsigned(l.pairs)), dim3(kTcThreads), tc_combine_smem(l), st, a,
              static_cast<const void*>(a.workspace), l);
  return RLKV_LAUNCH_OK() ? RLKV_STATUS_OK : RLKV_STATUS_DEVICE_ERROR;
#else
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(l.pairs));
  cfg.blockDim = dim3(kTcThreads);
  cfg.dynamicSmemBytes = tc_combine_smem(l);
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = tc_dependent_launch() ? 1 : 0;
  const void* ws = a.workspace;
  return cudaLaunchKernelEx(&cfg, comb_k, a, ws, l) == cudaSuccess ? RLKV_STATUS_OK : RLKV_STATUS_DEVICE_ERROR;
#endif
}

template <typename T>
rlkv_status tc_launch(const rlkv_decode_args& a, int sms, cudaStream_t st) {
  const tc_plan_layout l = tc_layout(a, sms);
  return a.head_dim == 64 ? tc_launch_d<T, 64>(a, l, st) : tc_launch_d<T, 128>(a, l, st);
}

}  // namespace rlkv_cuda
