// A small SIMT emulator that runs the CUDA kernels of this directory on the CPU, unchanged, so that
// their indexing, split-K bookkeeping and online-softmax logic are tested on machines without a GPU
// (this project's CI has none). It is test support, not a backend: blocks run one after another, and
// each CUDA thread of a block is a fiber (its own stack, switched by a few instructions of assembly)
// scheduled round-robin in the calling thread.
//
// What it models: threadIdx / blockIdx / blockDim / gridDim, dynamic shared memory (filled with NaN
// bytes, so reading shared memory before writing it shows up), __syncthreads() (a block barrier that
// exited threads no longer count for, as on sm_70+), warp shuffles and __syncwarp() (per-warp
// barriers with an exchange buffer), asynchronous copies whose destination is NaN from the issue
// until the wait covering their group (async_copy / async_commit / async_wait), and a warp all-gather (warp_allgather)
// on which kernels/cuda_mma.cuh builds its emulation of ldmatrix and mma.sync. A barrier that can never complete
// (threads of one block or warp waiting at different barriers, i.e. divergent __syncthreads / shuffles) aborts the
// emulation with a message instead of hanging. What it does not model: memory ordering between blocks, timing, the
// memory hierarchy, alignment faults (a misaligned vector load works here and faults on a GPU), register /
// shared-memory limits.
//
// Include it instead of the CUDA runtime, before the kernel source, in one host-compiled translation
// unit per program (it defines the switch routine; x86-64 only: System V assembly). Not thread safe:
// one launch at a time per process.
#pragma once

#define RLKV_SIMT_EMU 1

#if !defined(__x86_64__)
#error "simt_emu.h: the fiber switch is written for x86-64"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#ifdef __global__
#undef __global__
#endif
#ifdef __device__
#undef __device__
#endif
#ifdef __host__
#undef __host__
#endif
#ifdef __forceinline__
#undef __forceinline__
#endif
#ifdef __launch_bounds__
#undef __launch_bounds__
#endif
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

extern "C" void rlkv_emu_switch(void** save_sp, void* load_sp);

namespace emu {

struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t generation = 0;
};

// One pending asynchronous copy (cp.async): `bytes` from src to dst at the wait that completes it, or
// zeros when `zero`.
struct AsyncCopy {
  void* dst;
  const void* src;
  size_t bytes;
  bool zero;
};

struct Fiber {
  void* sp = nullptr;
  uint3 tid{};
  const Barrier* waiting_on = nullptr;
  uint64_t waiting_gen = 0;
  bool done = false;
  // This thread's asynchronous copies: committed groups, oldest first, then the open group (last).
  std::vector<std::vector<AsyncCopy>> async_groups{1};
};

constexpr size_t kGatherBytes = 64;  // the most one lane contributes to a warp_allgather

struct Block {
  uint3 idx{};
  Barrier block_bar;
  std::vector<Barrier> warp_bars;
  std::vector<uint64_t> exchange;     // [threads]: one shuffle value per thread
  std::vector<unsigned char> gather;  // [threads * kGatherBytes]: warp_allgather contributions
  std::vector<unsigned char> smem;
  std::vector<Fiber> fibers;
  size_t current = 0;
  void* scheduler_sp = nullptr;
  std::function<void()> body;
};

inline Block*& block() {
  static Block* b = nullptr;
  return b;
}
inline dim3& grid_dim() {
  static dim3 d;
  return d;
}
inline dim3& block_dim() {
  static dim3 d;
  return d;
}

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "simt_emu: %s\n", what);
  std::abort();
}

inline Fiber& self() { return block()->fibers[block()->current]; }
inline unsigned linear_tid() {
  const uint3 t = self().tid;
  return t.x + block_dim().x * (t.y + block_dim().y * t.z);
}

inline void yield() { rlkv_emu_switch(&self().sp, block()->scheduler_sp); }

// Arrives at `b`; the last arrival opens the next generation, the others wait for it.
inline void arrive_and_wait(Barrier& b) {
  const uint64_t gen = b.generation;
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    ++b.generation;
    return;
  }
  self().waiting_on = &b;
  self().waiting_gen = gen;
  yield();
}

// A thread that exits no longer counts for its block's and warp's barriers.
inline void drop(Barrier& b) {
  --b.expected;
  if (b.arrived > 0 && b.arrived == b.expected) {
    b.arrived = 0;
    ++b.generation;
  }
}

inline void entry() {
  block()->body();
  Fiber& f = self();
  f.done = true;
  drop(block()->block_bar);
  drop(block()->warp_bars[linear_tid() / 32]);
  rlkv_emu_switch(&f.sp, block()->scheduler_sp);
  fail("a finished fiber was resumed");
}

// Runs `kernel(args...)` over the grid, one block at a time.
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 threads, size_t smem_bytes, Kernel kernel, Args... args) {
  constexpr size_t kStack = 64 * 1024;
  const unsigned n = threads.x * threads.y * threads.z;
  if (n == 0 || n > 1024) fail("bad block size");
  grid_dim() = grid;
  block_dim() = threads;
  std::vector<std::vector<unsigned char>> stacks(n, std::vector<unsigned char>(kStack));
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block b;
        b.idx = uint3{bx, by, bz};
        b.block_bar.expected = int(n);
        b.warp_bars.resize((n + 31) / 32);
        for (unsigned w = 0; w < b.warp_bars.size(); ++w) b.warp_bars[w].expected = int(std::min(32u, n - 32 * w));
        b.exchange.assign(n, 0);
        b.gather.assign(size_t(n) * kGatherBytes, 0);
        b.smem.assign(smem_bytes, 0xff);  // NaN floats: uninitialised reads show
        b.body = [&] { kernel(args...); };
        b.fibers.resize(n);
        for (unsigned t = 0; t < n; ++t) {
          Fiber& f = b.fibers[t];
          f.tid = uint3{t % threads.x, (t / threads.x) % threads.y, t / (threads.x * threads.y)};
          // Initial frame for rlkv_emu_switch: six callee-saved registers, then `ret` into entry()
          // with the stack aligned as after a call.
          uintptr_t top = (reinterpret_cast<uintptr_t>(stacks[t].data()) + kStack) & ~uintptr_t(15);
          void** sp = reinterpret_cast<void**>(top);
          *--sp = nullptr;                              // entry()'s return address (never used)
          *--sp = reinterpret_cast<void*>(&entry);      // popped by ret
          for (int r = 0; r < 6; ++r) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
          f.sp = sp;
        }
        block() = &b;
        size_t live = n;
        while (live > 0) {
          bool progressed = false;
          for (size_t t = 0; t < n; ++t) {
            Fiber& f = b.fibers[t];
            if (f.done) continue;
            if (f.waiting_on != nullptr && f.waiting_on->generation == f.waiting_gen) continue;
            f.waiting_on = nullptr;
            b.current = t;
            rlkv_emu_switch(&b.scheduler_sp, f.sp);
            progressed = true;
            if (f.done) --live;
          }
          if (!progressed)
            fail(
                "deadlock: threads of a block wait at barriers that cannot complete "
                "(divergent __syncthreads or warp shuffle)");
        }
        block() = nullptr;
      }
}

// Asynchronous copies as the PTX ISA defines them: a copy lands at some point between its issue and
// the wait that covers its group, so its destination is undefined in between. Here the destination
// turns to NaN bytes at the issue and the data lands exactly at the wait (the latest moment): a kernel
// that reads the destination before waiting for the copy's group (or another thread's copy before that
// thread's wait and a barrier) reads NaN, and one that still uses the destination for something else
// while the copy is in flight (a scratch area, a tile not yet consumed) finds it overwritten; either
// way its results show it, and a write into the destination in between aborts the emulation at the
// wait (on a GPU the copy could land before or after that write).
inline void async_copy(void* dst, const void* src, size_t bytes, bool zero) {
  std::memset(dst, 0xff, bytes);
  self().async_groups.back().push_back(AsyncCopy{dst, src, bytes, zero});
}
inline void async_commit() { self().async_groups.emplace_back(); }
inline void async_wait(int pending) {  // completes all but the newest `pending` committed groups
  auto& g = self().async_groups;
  const int committed = int(g.size()) - 1;
  const int done = committed - pending;
  if (done <= 0) return;
  for (int i = 0; i < done; ++i)
    for (const AsyncCopy& c : g[size_t(i)]) {
      const auto* d = static_cast<const unsigned char*>(c.dst);
      for (size_t k = 0; k < c.bytes; ++k)
        if (d[k] != 0xff) fail("shared memory written while an asynchronous copy into it was in flight");
      if (c.zero)
        std::memset(c.dst, 0, c.bytes);
      else
        std::memcpy(c.dst, c.src, c.bytes);
    }
  g.erase(g.begin(), g.begin() + done);
}

template <class T>
T* dynamic_smem() {
  return reinterpret_cast<T*>(block()->smem.data());
}

template <class T>
T exchange(T v, unsigned src_lane_of_me(unsigned lane, int arg), int arg) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  const unsigned t = linear_tid(), warp = t / 32, lane = t % 32;
  Block& b = *block();
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  b.exchange[t] = bits;
  arrive_and_wait(b.warp_bars[warp]);
  const unsigned src = src_lane_of_me(lane, arg);
  const uint64_t got = b.exchange[warp * 32 + (src & 31)];
  arrive_and_wait(b.warp_bars[warp]);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

// Every lane of the calling (full) warp contributes `bytes` (<= kGatherBytes) from `mine`; `all`
// receives the 32 contributions in lane order. Warp-collective, like a shuffle.
inline void warp_allgather(const void* mine, size_t bytes, void* all) {
  if (bytes > kGatherBytes) fail("warp_allgather: too many bytes per lane");
  const unsigned t = linear_tid(), warp = t / 32;
  Block& b = *block();
  if (b.warp_bars[warp].expected != 32) fail("warp_allgather needs a full warp");
  std::memcpy(&b.gather[size_t(t) * kGatherBytes], mine, bytes);
  arrive_and_wait(b.warp_bars[warp]);
  for (unsigned l = 0; l < 32; ++l)
    std::memcpy(static_cast<unsigned char*>(all) + l * bytes, &b.gather[size_t(warp * 32 + l) * kGatherBytes], bytes);
  arrive_and_wait(b.warp_bars[warp]);
}

struct ThreadIdx {
  operator uint3() const { return self().tid; }
};

}  // namespace emu

// The context switch: saves the callee-saved registers of the running context on its stack, stores its
// stack pointer in *save_sp, then restores the context whose stack pointer is load_sp.
asm(R"(
.text
.globl rlkv_emu_switch
.type rlkv_emu_switch,@function
rlkv_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size rlkv_emu_switch, .-rlkv_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

#define threadIdx (emu::self().tid)
#define blockIdx (emu::block()->idx)
#define blockDim (emu::block_dim())
#define gridDim (emu::grid_dim())

inline void __syncthreads() { emu::arrive_and_wait(emu::block()->block_bar); }
inline void __syncwarp(unsigned = 0xffffffffu) {
  emu::arrive_and_wait(emu::block()->warp_bars[emu::linear_tid() / 32]);
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  return emu::exchange<T>(
      v, [](unsigned lane, int m) { return lane ^ unsigned(m); }, lane_mask);
}
template <class T>
T __shfl_sync(unsigned, T v, int src_lane) {
  return emu::exchange<T>(
      v, [](unsigned, int s) { return unsigned(s); }, src_lane);
}
inline float __expf(float x) { return std::exp(x); }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
// Rounded fp32 arithmetic that must not be contracted into a fused multiply-add (the volatile store
// keeps the host compiler from fusing, as __fmul_rn / __fadd_rn keep nvcc from it).
inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
inline float __fadd_rn(float a, float b) {
  volatile float r = a + b;
  return r;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
