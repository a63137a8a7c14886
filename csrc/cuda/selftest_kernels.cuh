// selftest_kernels.cuh: one kernel that uses every feature the other kernels rely on — static
// and dynamic shared memory, __syncthreads, warp shuffles, a ballot, atomics — so that a GPU
// (nnlite.ops.cuda_device.selftest) and the shim (tests/test_cuda_shim.py) can check the
// execution model itself before any real kernel is trusted.
//
//   out[0] += sum_i x[i]            (block sums in shared memory, then one atomicAdd per block)
//   out[1] += number of x[i] > 0    (warp ballots, popcount, atomicAdd)
//
// CPU twin: none needed (numpy: x.sum(), (x > 0).sum()).
#pragma once
#include "cuda_compat.h"

namespace nnl::cuda::kernels {

// Sum of a block's values: each warp reduces with shuffles, warp 0 reduces the warps' sums.
// `fault` breaks the kernel on purpose, for the shim's own tests (tests/test_cuda_shim.py);
// never set it otherwise:
//   1: leave out the __syncthreads between the two stages — a race on `warp_sums` that the
//      ThreadSanitizer build must report;
//   2: thread 0 waits at __syncthreads while the rest of its warp waits at __syncwarp — a
//      deadlock that the shim's watchdog must turn into a failure.
__global__ void selftest_block_sum(const float* x, long long n, float* out, int fault) {
    __shared__ float warp_sums[32];
    NNL_DYNAMIC_SHARED(float, staged);          // blockDim.x floats: the block's inputs
    const int t = threadIdx.x, lane = t % 32, warp = t / 32;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    staged[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    // read a neighbour's staged value: only correct if every thread has written its own
    float v = staged[(t + 1) % blockDim.x];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0) warp_sums[warp] = v;
    if (fault == 2) {
        if (t == 0) __syncthreads(); else __syncwarp();
    }
    if (fault != 1) __syncthreads();
    if (warp == 0) {
        const int warps = (blockDim.x + 31) / 32;
        float s = lane < warps ? warp_sums[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
        if (lane == 0) atomicAdd(out, s);
    }
    const unsigned positive = __ballot_sync(0xffffffffu, i < n && x[i] > 0.0f);
    if (lane == 0) atomicAdd(out + 1, float(__popc(positive)));
}

}  // namespace nnl::cuda::kernels
