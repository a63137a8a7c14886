// cuda_compat.h: the one include of every csrc/cuda/*_kernels.cuh and *.cu. Under nvcc it is the
// CUDA runtime; in a plain C++ build with NNLITE_CUDA_SHIM defined it is the shim that runs the
// same kernels on CPU threads (shim/cuda_shim.h, for the tests on machines without a GPU).
#pragma once
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#elif defined(NNLITE_CUDA_SHIM)
#include "shim/cuda_shim.h"
#else
#error "csrc/cuda is compiled by nvcc, or by a C++ compiler with NNLITE_CUDA_SHIM defined"
#endif
#include "launch.h"
