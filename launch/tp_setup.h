// Loading the model for one tensor-parallel actor group: the group's ranks share the
// model Megatron-style over the tensor collectives; with model.load = broadcast, one rank per node
// (of `node`, the ranks on this node that load this model) reads the files and broadcasts them.
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"

namespace rlkv {

class Collectives;
struct Config;

// The device of runtime.device: cpu, cuda:N, or cuda = the GPU of this rank's local rank (modulo the
// visible GPUs). UserError when the build has no CUDA path or no GPU is visible.
at::Device resolve_device(const Config& cfg);

// `group` null or size 1: the whole model. On runtime.device, with the NCCL backend for a group on
// GPUs and MPI on CPUs. Logs one line per rank with the bytes it read.
Model load_group_model(const Config& cfg, const std::shared_ptr<Collectives>& group,
                       const std::shared_ptr<Collectives>& node);

}  // namespace rlkv
