// The NCCL backend of the tensor collectives (runtime/tensor_comm_nccl.h) on a GPU: a communicator
// of the ranks of this job (one rank when run alone) on device local_rank % devices; allreduce,
// broadcast and allgather of CUDA tensors against values computed on the host, then the toy model's
// dense logits through a tensor-parallel group on NCCL against the whole model on the CPU.
// Exits 77 (skipped) where LibTorch has no CUDA or no GPU is visible.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <cstdio>
#include <cstdlib>

#include "comm/collectives.h"
#include "runtime/model.h"
#include "runtime/tensor_comm_nccl.h"

using namespace rlkv;

namespace {
int failures = 0;
void check(bool ok, const char* what, double value = 0) {
  std::printf("%s: %s (%g)\n", ok ? "ok" : "FAIL", what, value);
  if (!ok) ++failures;
}
}  // namespace

int main(int argc, char** argv) try {
  if (!at::hasCUDA()) {
    std::printf("op_test_nccl: LibTorch without CUDA or no GPU: skipped\n");
    return 77;
  }
  MpiSession mpi(&argc, &argv);
  std::shared_ptr<Collectives> world =
      mpi.active() ? std::shared_ptr<Collectives>(mpi_world()) : std::shared_ptr<Collectives>(local_collectives());
  const int n = world->size(), r = world->rank();
  const char* lr = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const int device = (lr ? std::atoi(lr) : 0) % int(at::detail::getCUDAHooks().getNumGPUs());
  auto comm = nccl_tensor_comm(world, device);
  const auto dev = at::TensorOptions().device(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device)));

  for (at::ScalarType t : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // Small integers: every partial sum is exact in bf16 (up to 256) for up to 16 ranks, so the
    // result must equal the exact sum whatever order NCCL adds in.
    at::Tensor x = (at::arange(1000, at::kFloat).remainder(8) + r).to(t).to(dev.dtype(t));
    comm->allreduce_sum(x);
    at::Tensor want = at::arange(1000, at::kFloat).remainder(8) * n + n * (n - 1) / 2.0;
    const double e = (x.cpu().to(at::kFloat) - want).abs().max().item<double>();
    check(e == 0, (std::string("allreduce_sum ") + dtype_name(t)).c_str(), e);
  }
  at::Tensor b = at::full({257}, double(r + 1), dev.dtype(at::kFloat));
  comm->broadcast(b, 0);
  check(b.cpu().eq(1.0).all().item<bool>(), "broadcast from rank 0");
  at::Tensor host = at::full({3}, r + 5, at::TensorOptions().dtype(at::kInt));
  comm->broadcast(host, 0);
  check(host.eq(5).all().item<bool>(), "broadcast of a host tensor through the device");
  at::Tensor g = comm->allgather(at::full({2, 3}, double(r), dev.dtype(at::kFloat)), 1);
  bool ok = g.size(1) == 3 * n;
  for (int k = 0; k < n && ok; ++k) ok = g.cpu().narrow(1, 3 * k, 3).eq(double(k)).all().item<bool>();
  check(ok, "allgather along dim 1");

  const std::string dir = std::string(RLKV_SOURCE_DIR) + "/models/toy-reasoner";
  const Model whole = Model::load(dir, at::kFloat);
  LoadOptions lo;
  lo.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
  lo.tp = comm;
  const Model tp = Model::load(dir, at::kFloat, lo);
  at::Tensor tokens = at::randint(19, {2, 17}, at::TensorOptions().dtype(at::kLong));
  comm->broadcast(tokens, 0);
  const at::Tensor a = whole.logits(whole.forward_dense(tokens));
  const at::Tensor c = tp.logits(tp.forward_dense(tokens.to(lo.device))).cpu();
  const double e = (a - c).abs().max().item<double>() / std::max(1.0, a.abs().max().item<double>());
  check(e <= 1e-4, "toy model dense logits, NCCL group vs whole model on the CPU", e);
  std::vector<double> f = {double(failures)};
  world->allreduce_sum(f);
  return f[0] > 0 ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "op_test_nccl: %s\n", e.what());
  return 1;
}
