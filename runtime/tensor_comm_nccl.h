// The NCCL backend of runtime/tensor_comm.h: collectives on CUDA tensors of one device per rank.
// The communicator is set up from `group` (MPI under mpirun): rank 0 makes the NCCL unique id and
// broadcasts it, then every rank calls ncclCommInitRank on `device`. Operations run on the current
// CUDA stream of the LibTorch build (the legacy default stream when LibTorch has no CUDA, where no
// CUDA tensor can exist and every operation refuses). Built only when CUDA and NCCL are found.
#pragma once

#include <memory>

#include "runtime/tensor_comm.h"

namespace rlkv {

std::shared_ptr<TensorComm> nccl_tensor_comm(std::shared_ptr<Collectives> group, int device);

}  // namespace rlkv
