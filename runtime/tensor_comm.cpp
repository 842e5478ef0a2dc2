#include "runtime/tensor_comm.h"

#include "comm/collectives.h"
#include "core/error.h"

namespace rlkv {
namespace {

class HostTensorComm : public TensorComm {
 public:
  explicit HostTensorComm(std::shared_ptr<Collectives> group) : group_(std::move(group)) {}
  int rank() const override { return group_ ? group_->rank() : 0; }
  int size() const override { return group_ ? group_->size() : 1; }

  void allreduce_sum(at::Tensor& t) override {
    if (size() == 1) return;
    check_host(t, "allreduce");
    if (t.scalar_type() == at::kFloat) {
      group_->allreduce_sum(t.data_ptr<float>(), size_t(t.numel()));
      return;
    }
    at::Tensor f = t.to(at::kFloat).contiguous();
    group_->allreduce_sum(f.data_ptr<float>(), size_t(f.numel()));
    t.copy_(f);
  }

  void broadcast(at::Tensor& t, int root) override {
    if (size() == 1) return;
    check_host(t, "broadcast");
    group_->broadcast(t.data_ptr(), size_t(t.nbytes()), root);
  }

  at::Tensor allgather(const at::Tensor& t, int64_t dim) override {
    if (size() == 1) return t;
    at::Tensor c = t.contiguous();
    check_host(c, "allgather");
    at::Tensor all = gather_buffer(c, size());
    group_->allgather(c.data_ptr(), size_t(c.nbytes()), all.data_ptr());
    return concat_gathered(all, dim);
  }

 private:
  static void check_host(const at::Tensor& t, const char* op) {
    RLKV_CHECK(t.device().is_cpu(), "tensor ", op, " over MPI needs CPU tensors, got one on ", t.device().str(),
               " (GPU tensor-parallel groups use the NCCL backend)");
    RLKV_ASSERT(t.is_contiguous(), "tensor ", op, ": tensor must be contiguous");
  }
  std::shared_ptr<Collectives> group_;
};

}  // namespace

at::Tensor gather_buffer(const at::Tensor& t, int size) {
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  shape.insert(shape.begin(), size);
  return at::empty(shape, t.options());
}

at::Tensor concat_gathered(const at::Tensor& all, int64_t dim) {
  if (dim < 0) dim += all.dim() - 1;
  if (dim == 0) return all.flatten(0, 1);  // already in place
  return at::cat(all.unbind(0), dim);
}

std::shared_ptr<TensorComm> host_tensor_comm(std::shared_ptr<Collectives> group) {
  return std::make_shared<HostTensorComm>(std::move(group));
}

}  // namespace rlkv
