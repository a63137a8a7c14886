// selftest.cu: launcher for selftest_kernels.cuh.
#include "selftest.h"

#include "selftest_kernels.cuh"

namespace nnl::cuda {

void selftest_block_sum(const float* x, int64_t n, float* out, int threads, int fault,
                        Stream stream) {
    if (threads < 32 || threads > 1024 || threads % 32)
        throw std::invalid_argument("selftest_block_sum: threads must be a multiple of 32 in 32..1024");
    if (n <= 0) return;
    NNL_LAUNCH(blocks_for(n, threads), threads, threads * sizeof(float), stream,
               kernels::selftest_block_sum)(x, (long long)n, out, fault);
}

}  // namespace nnl::cuda
