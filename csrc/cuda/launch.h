// launch.h: how a launcher (csrc/cuda/*.cu) starts a kernel, the same text for nvcc and the shim.
//
//   NNL_LAUNCH(grid, block, smem_bytes, stream, kernel<float, 64>)(a, b, n);
//
// is `kernel<float, 64><<<grid, block, smem_bytes, stream>>>(a, b, n)` under nvcc and a run on
// CPU threads under the shim. (The kernel comes last so that template arguments with commas
// need no parentheses.) Inside a kernel, NNL_DYNAMIC_SHARED(float, tile) declares `float* tile`
// pointing at the launch's dynamic shared memory.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace nnl::cuda {
using Stream = void*;   // a cudaStream_t; plain C++ headers (csrc/cuda/*.h) need no CUDA types

inline unsigned blocks_for(int64_t n, int64_t per_block) {
    return unsigned((n + per_block - 1) / per_block);
}
}  // namespace nnl::cuda

#if defined(__CUDACC__)
#define NNL_LAUNCH(grid, block, smem, stream, ...) \
    __VA_ARGS__<<<(grid), (block), (smem), static_cast<cudaStream_t>(stream)>>>
#define NNL_DYNAMIC_SHARED(type, name)                                 \
    extern __shared__ __align__(16) unsigned char nnl_dynamic_smem_[]; \
    type* name = reinterpret_cast<type*>(nnl_dynamic_smem_)
#else
#define NNL_LAUNCH(grid, block, smem, stream, ...) \
    nnl_shim::launcher(&__VA_ARGS__, dim3(grid), dim3(block), size_t(smem))
#define NNL_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(nnl_shim::dynamic_shared())
#endif
