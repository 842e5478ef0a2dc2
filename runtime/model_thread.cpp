#include "runtime/model_thread.h"

#include <ATen/Parallel.h>

#include "runtime/model.h"

#ifdef RLKV_TORCH_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace rlkv {

struct ModelThread::Impl {
#ifdef RLKV_TORCH_CUDA
  explicit Impl(c10::cuda::CUDAStream s) : guard(s) {}
  c10::cuda::CUDAStreamGuard guard;  // restores the thread's previous stream (and device) on destruction
#endif
};

ModelThread::ModelThread(const Model& model, int intra_op_threads) {
  if (intra_op_threads > 0) at::set_num_threads(intra_op_threads);
  const at::Device device = model.device();
#ifdef RLKV_TORCH_CUDA
  if (!device.is_cuda()) return;
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  // The primary context made current in this thread. c10::cuda::set_device alone does not: it skips
  // cudaSetDevice when the thread's device ordinal already equals `index`, and a fresh thread reports
  // 0 with no current context, so driver-level queries from this thread (cuCtxGetDevice, by the
  // libraries LibTorch calls) fail with CUDA_ERROR_INVALID_CONTEXT. cudaSetDevice always binds it.
  c10::cuda::set_device(index);
  C10_CUDA_CHECK(cudaSetDevice(index));
  c10::cuda::getCurrentCUDAStream(index).synchronize();
  impl_ = std::make_unique<Impl>(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
#else
  (void)device;  // no CUDA LibTorch: a model cannot be on a GPU
#endif
}

ModelThread::~ModelThread() = default;

}  // namespace rlkv
