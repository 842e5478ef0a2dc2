// Collectives on tensors for tensor-parallel model execution, behind one interface so the
// model and the actors never name a transport:
//   - host backend: CPU tensors through comm/collectives.h (MPI under mpirun, identity alone);
//     half-precision tensors are reduced in fp32 and rounded back;
//   - NCCL backend (runtime/tensor_comm_nccl.h, builds with CUDA): CUDA tensors on the current stream.
// All ranks of the group must call the same operations in the same order with the same shapes.
// Thread safety: one thread per communicator (a tensor-parallel model runs one forward at a time).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

namespace rlkv {

class Collectives;

class TensorComm {
 public:
  virtual ~TensorComm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the element-wise sum. `t` must be contiguous.
  virtual void allreduce_sum(at::Tensor& t) = 0;
  // In place: every rank ends with root's values (same shape and dtype everywhere).
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // Concatenation of every rank's `t` (same shape everywhere) along dimension `dim`, in rank order.
  virtual at::Tensor allgather(const at::Tensor& t, int64_t dim) = 0;
};

// For backends: the receive buffer of an allgather of `t` over `size` ranks, [size, ...t.shape].
at::Tensor gather_buffer(const at::Tensor& t, int size);
// For backends: every rank's `t` gathered as [size, ...t.shape] in rank order, turned into their
// concatenation along `dim`.
at::Tensor concat_gathered(const at::Tensor& all, int64_t dim);

// CPU tensors over `group` (size 1: identity).
std::shared_ptr<TensorComm> host_tensor_comm(std::shared_ptr<Collectives> group);

}  // namespace rlkv
