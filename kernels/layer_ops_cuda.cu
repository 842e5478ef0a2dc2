// The fused layer kernels: the source is layer_ops_cuda_impl.cuh, which the op test also compiles
// for the CPU under kernels/simt_emu.h.
#include "kernels/layer_ops_cuda_impl.cuh"
