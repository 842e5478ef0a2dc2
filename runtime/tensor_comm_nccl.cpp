#include "runtime/tensor_comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include "comm/collectives.h"
#include "core/error.h"

#ifdef RLKV_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace rlkv {
namespace {

void nccl_check(ncclResult_t r, const char* what) {
  RLKV_CHECK(r == ncclSuccess, "NCCL ", what, " failed: ", ncclGetErrorString(r));
}

void cuda_check(cudaError_t e, const char* what) {
  RLKV_CHECK(e == cudaSuccess, "CUDA ", what, " failed: ", cudaGetErrorString(e));
}

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    case at::kDouble:
      return ncclFloat64;
    default:
      throw UserError(str_cat("NCCL collectives: unsupported dtype ", at::toString(t)));
  }
}

cudaStream_t current_stream(int device) {
#ifdef RLKV_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  (void)device;
  return nullptr;  // the legacy default stream
#endif
}

class NcclTensorComm : public TensorComm {
 public:
  NcclTensorComm(std::shared_ptr<Collectives> group, int device) : group_(std::move(group)), device_(device) {
    int count = 0;
    cuda_check(cudaGetDeviceCount(&count), "device count");
    RLKV_CHECK(device >= 0 && device < count, "NCCL: CUDA device ", device, " does not exist (", count, " visible)");
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (group_->rank() == 0) nccl_check(ncclGetUniqueId(&id), "get unique id");
    group_->broadcast(&id, sizeof id, 0);
    cuda_check(cudaSetDevice(device_), "set device");
    nccl_check(ncclCommInitRank(&comm_, group_->size(), id, group_->rank()), "comm init");
  }
  ~NcclTensorComm() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  int rank() const override { return group_->rank(); }
  int size() const override { return group_->size(); }

  void allreduce_sum(at::Tensor& t) override {
    check(t, "allreduce");
    nccl_check(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.scalar_type()), ncclSum, comm_,
                             current_stream(device_)),
               "allreduce");
  }

  void broadcast(at::Tensor& t, int root) override {
    if (t.device().is_cpu()) {  // small host values (sampled tokens): through the device
      at::Tensor d = t.to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_)));
      broadcast(d, root);
      t.copy_(d.cpu());
      return;
    }
    check(t, "broadcast");
    nccl_check(ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.scalar_type()), root, comm_,
                             current_stream(device_)),
               "broadcast");
  }

  at::Tensor allgather(const at::Tensor& t, int64_t dim) override {
    at::Tensor c = t.contiguous();
    check(c, "allgather");
    at::Tensor all = gather_buffer(c, size());
    nccl_check(ncclAllGather(c.data_ptr(), all.data_ptr(), size_t(c.numel()), nccl_type(c.scalar_type()), comm_,
                             current_stream(device_)),
               "allgather");
    return concat_gathered(all, dim);
  }

 private:
  void check(const at::Tensor& t, const char* op) const {
    RLKV_CHECK(t.device().is_cuda() && t.device().index() == device_, "NCCL ", op, " needs tensors on cuda:", device_,
               ", got one on ", t.device().str());
    RLKV_ASSERT(t.is_contiguous(), "NCCL ", op, ": tensor must be contiguous");
  }
  std::shared_ptr<Collectives> group_;
  int device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::shared_ptr<TensorComm> nccl_tensor_comm(std::shared_ptr<Collectives> group, int device) {
  RLKV_CHECK(group != nullptr, "NCCL communicator needs a process group");
  return std::make_shared<NcclTensorComm>(std::move(group), device);
}

}  // namespace rlkv
