#include "launch/tp_setup.h"

#include <ATen/Context.h>

#include <cstdio>
#include <cstdlib>

#include "comm/collectives.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "runtime/tensor_comm.h"
#include "runtime/torch_attention.h"
#ifdef RLKV_WITH_NCCL
#include "runtime/tensor_comm_nccl.h"
#endif

namespace rlkv {

namespace {

// "rank R/N: read X MiB from storage, received Y MiB, holds Z MiB of weights (T s)"
std::string load_report(const LoadStats& s, int rank, int size) {
  const double mib = 1024.0 * 1024.0;
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "rank %d/%d: read %.2f MiB of weights from storage, received %.2f MiB, holds %.2f MiB (%.2f s)",
      rank, size, double(s.bytes_read) / mib, double(s.bytes_received) / mib, double(s.weight_bytes) / mib, s.seconds);
  return buf;
}

}  // namespace

at::Device resolve_device(const Config& cfg) {
  const std::string& d = cfg.runtime.device;
  if (d == "cpu") return at::kCPU;
  RLKV_CHECK(cuda_kernels_available(), "runtime.device = ", d,
             ": this build has no GPU path (it needs nvcc at "
             "build time and a CUDA LibTorch, e.g. -DCMAKE_PREFIX_PATH=<site-packages>/torch of a PyTorch wheel)");
  RLKV_CHECK(at::hasCUDA(), "runtime.device = ", d, ": no GPU is visible to this process");
  const int n = int(at::detail::getCUDAHooks().getNumGPUs());
  int index = 0;
  if (d == "cuda") {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = std::getenv("SLURM_LOCALID");
    index = (local ? std::atoi(local) : 0) % n;
  } else {
    index = std::atoi(d.c_str() + 5);
    RLKV_CHECK(index < n, "runtime.device = ", d, ": only ", n, " GPU(s) visible");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

Model load_group_model(const Config& cfg, const std::shared_ptr<Collectives>& group,
                       const std::shared_ptr<Collectives>& node) {
  LoadOptions lo;
  lo.device = resolve_device(cfg);
  const bool parallel = group && group->size() > 1;
  if (parallel && lo.device.is_cuda()) {
#ifdef RLKV_WITH_NCCL
    lo.tp = nccl_tensor_comm(group, lo.device.index());
#else
    throw UserError("a tensor-parallel group on GPUs needs NCCL, which this build does not have");
#endif
  } else if (parallel) {
    lo.tp = host_tensor_comm(group);
  }
  if (cfg.model.load == "broadcast" && node && node->size() > 1) lo.reader_group = host_tensor_comm(node);
  LoadStats st;
  Model m = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), lo, &st);
  if (parallel || lo.reader_group)
    log_info(load_report(st, parallel ? group->rank() : 0, parallel ? group->size() : 1));
  return m;
}

}  // namespace rlkv
