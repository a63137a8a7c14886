// selftest.h: the launcher of selftest_kernels.cuh (plain C++; see csrc/cuda/README.md).
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;
// out[0] += sum(x), out[1] += count(x > 0); `threads` a multiple of 32, at most 1024
void selftest_block_sum(const float* x, int64_t n, float* out, int threads, int fault,
                        Stream stream);
}  // namespace nnl::cuda
