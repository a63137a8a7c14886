// SGEMM step 3: 1-D register blocking (siboehm's kernel 4). C (M,N) = A (M,K) @ B (K,N), row-major
//
//     block: a 64x64 tile of C, K in steps of 8; 512 threads, each a column of TM = 8 results
//     for each k-tile:  As (64x8), Bs (8x64) in shared memory
//         for dot < 8:  b = Bs[dot, col]                       one shared load ...
//                       acc[r] += As[row*8 + r, dot] * b       ... reused for 8 FMAs
//
// What changed from step 2: each thread computes 8 elements of C (a column of a 8x1 tile)
// instead of 1, keeping them in registers (acc[8]). The value of B it needs is the same for the
// 8 rows, so it is loaded from shared memory once and used 8 times: ~9 shared loads per 8 FMAs
// instead of 16. Fewer threads (512 per 4096 results) do more work each: arithmetic intensity
// per thread goes up, and shared-memory bandwidth stops being the only limit.
// Sizes: any M, N, K >= 1 (out-of-range tile elements load as 0; stores are guarded).
#pragma once
#include "cuda_compat.h"

namespace sgemm03 {

constexpr int BM = 64, BN = 64, BK = 8, TM = 8;
constexpr int THREADS = BM * BN / TM;   // 512
static_assert(THREADS == BM * BK && THREADS == BK * BN, "one element of As and of Bs per thread");

__global__ void __launch_bounds__(THREADS) sgemm_blocktile_1d(const float* A, const float* B,
                                                              float* C, int M, int N, int K) {
    __shared__ float As[BM * BK];
    __shared__ float Bs[BK * BN];
    const int tid = threadIdx.x;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int trow = tid / BN, tcol = tid % BN;          // this thread: rows trow*TM + r, col tcol
    const int arow = tid / BK, acol = tid % BK;          // the element of As it loads
    const int brow = tid / BN, bcol = tid % BN;          // the element of Bs it loads
    float acc[TM] = {0.0f};
    for (int t = 0; t < K; t += BK) {
        const int ai = row0 + arow, ak = t + acol, bk = t + brow, bj = col0 + bcol;
        As[arow * BK + acol] = (ai < M && ak < K) ? A[(size_t)ai * K + ak] : 0.0f;
        Bs[brow * BN + bcol] = (bk < K && bj < N) ? B[(size_t)bk * N + bj] : 0.0f;
        __syncthreads();
        for (int dot = 0; dot < BK; dot++) {
            const float b = Bs[dot * BN + tcol];
            for (int r = 0; r < TM; r++) acc[r] += As[(trow * TM + r) * BK + dot] * b;
        }
        __syncthreads();
    }
    const int j = col0 + tcol;
    for (int r = 0; r < TM; r++) {
        const int i = row0 + trow * TM + r;
        if (i < M && j < N) C[(size_t)i * N + j] = acc[r];
    }
}

inline const char* supports(int, int, int) { return nullptr; }

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    NNL_LAUNCH(grid, THREADS, 0, stream, sgemm_blocktile_1d)(A, B, C, M, N, K);
}

}  // namespace sgemm03
