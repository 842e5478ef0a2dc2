// A CUDA stream of the calling thread's own. Actor threads that share a
// GPU in one process (placement.actors > 1) would otherwise all queue their work on the device's
// default stream: their decode steps would run one after another, and each thread's host copy (the
// sampled tokens, every step) would wait for the other threads' queued work too. With one stream per
// thread their steps overlap on the GPU.
// A no-op on the CPU; tests/op_test_runtime_cuda.cpp runs generators on threads of their own under
// it on a GPU and compares them with the CPU.
// Thread safety: one object per thread, created and destroyed on that thread (it sets and restores
// the thread's current stream).
#pragma once
#include <memory>

namespace rlkv {

class Model;

class ThreadStream {
 public:
  // With `model` on a CUDA device: waits for the work already queued on the device's current stream
  // (the weights being loaded, on the default stream), then makes a pool stream this thread's current
  // stream until destruction. Elsewhere: nothing. (Takes the model, not a device, so that its users
  // need no LibTorch header.)
  explicit ThreadStream(const Model& model);
  ~ThreadStream();
  ThreadStream(const ThreadStream&) = delete;
  ThreadStream& operator=(const ThreadStream&) = delete;
  bool active() const { return impl_ != nullptr; }  // a stream of its own was set

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlkv
