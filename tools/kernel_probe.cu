// The dynamic shared memory each CUDA kernel is launched with, computed by the launchers' own
// expressions (kernels/attention_cuda_impl.cuh, kernels/attention_cuda_tc.cuh,
// kernels/layer_ops_cuda_impl.cuh), for tools/kernel_report.py's occupancy calculation. Host code
// only: it runs on a machine without a GPU. One line per kernel and shape: "<kernel> <template
// arguments, comma-separated, * for any> <bytes> <shape>", the shape saying which call the bytes are
// for when they depend on the call. The two kernel sources cannot share a translation unit (each
// defines its own helpers), so this is built twice: as it is for the attention kernels, with
// RLKV_PROBE_LAYER_OPS for the layer kernels.
#include <cstdio>

#ifdef RLKV_PROBE_LAYER_OPS
#include "kernels/layer_ops_cuda_impl.cuh"

int main() {
  using namespace rlkv_cuda;
  std::printf("add_rms_norm_kernel * %zu any\n", kRedSmemBytes);
  std::printf("qkv_rope_kernel * %zu any\n", kRedSmemBytes);
  std::printf("silu_mul_kernel * 0 any\n");
  return 0;
}
#else
#include "kernels/attention_cuda_impl.cuh"

namespace {

constexpr int kSms = 132;  // H100 / H200 SXM: the tensor-core path's grid and combine workspace

rlkv_decode_args args(int groups, int head_dim) {
  rlkv_decode_args a{};
  a.num_seqs = 32;
  a.num_kv_heads = 8;
  a.num_q_heads = 8 * groups;
  a.head_dim = head_dim;
  a.max_len = 0;
  return a;
}

}  // namespace

int main() {
  using namespace rlkv_cuda;
  std::printf("decode_tc_kernel *,64 %d any\n", tc_smem<64>::kBytes);
  std::printf("decode_tc_kernel *,128 %d any\n", tc_smem<128>::kBytes);
  // The combine kernel's weights grow with the grid (SMs x blocks per SM) and the group.
  std::printf("tc_combine_kernel * %zu group_8_on_%d_sms\n", tc_combine_smem(tc_layout(args(8, 128), kSms)), kSms);
  for (int d : {64, 128, 256})
    for (int g : {1, 2, 4, 8})
      std::printf("decode_split_kernel *,%d,%d,* %zu any\n", d, g, plan(args(g, d), kSms).smem);
  std::printf("decode_generic_kernel * %zu group_4_head_dim_96\n", plan(args(4, 96), kSms).smem);
  std::printf("combine_splits_kernel * 0 any\n");
  std::printf("kv_write_kernel * 0 any\n");
  return 0;
}
#endif
