// What a thread that runs a model sets up for itself, for as long as it runs it (RAII).
//
// - Its intra-op thread count. ATen's OpenMP pools are per calling thread: a thread that runs
//   parallel ATen work starts a pool of its own, sized by that thread's setting (a new thread starts
//   from the process default, all cores, unless told otherwise). Actor threads that share a machine
//   each get their share of the cores here, so N actor threads never start N pools of every core.
// - On a CUDA device: the device is bound to the thread (its primary context made current, so
//   libraries that query the driver's current context from this thread find one), the work already
//   queued on the device's current stream (the weights being loaded, on the default stream) is
//   waited for, and a pool stream becomes the thread's current stream. Actor threads that share a
//   GPU would otherwise all queue on the default stream: their decode steps would run one after
//   another, and each thread's host copy (the sampled tokens, every step) would wait for the other
//   threads' queued work too.
// Elsewhere (a CPU model) only the thread count is set. tests/op_test_runtime_cuda.cpp runs many
// generator threads under it on a GPU (one after another and several at once) against the CPU.
// Thread safety: one object per thread, created and destroyed on that thread (it sets and restores
// the thread's current stream).
#pragma once
#include <memory>

namespace rlkv {

class Model;

class ModelThread {
 public:
  // `intra_op_threads` > 0 sets this thread's ATen / OpenMP thread count; 0 leaves it as it is.
  // (Takes the model, not a device, so that its users need no LibTorch header.)
  explicit ModelThread(const Model& model, int intra_op_threads = 0);
  ~ModelThread();
  ModelThread(const ModelThread&) = delete;
  ModelThread& operator=(const ModelThread&) = delete;
  bool own_stream() const { return impl_ != nullptr; }  // a CUDA stream of its own was set

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlkv
