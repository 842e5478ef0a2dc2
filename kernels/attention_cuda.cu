// The CUDA kernels: everything lives in attention_cuda_impl.cuh, which the op test also compiles for
// the CPU under kernels/simt_emu.h, so the emulated and the real kernels are one source.
#include "kernels/attention_cuda_impl.cuh"
