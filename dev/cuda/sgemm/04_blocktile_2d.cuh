// SGEMM step 4: 2-D register blocking (siboehm's kernel 5). C (M,N) = A (M,K) @ B (K,N), row-major
//
//     block: a 128x128 tile of C, K in steps of 8; 256 threads, each an 8x8 tile of results
//     for each k-tile:  As (128x8), Bs (8x128) in shared memory (4 elements of each per thread)
//         for dot < 8:  a[r] = As[trow*8 + r, dot]   (8 shared loads)
//                       b[c] = Bs[dot, tcol*8 + c]   (8 shared loads)
//                       acc[r][c] += a[r] * b[c]     (64 FMAs: an outer product in registers)
//
// What changed from step 3: each thread computes an 8x8 tile instead of an 8x1 column. Per dot
// it loads 16 values from shared memory and does 64 FMAs with them (step 3: 9 loads, 8 FMAs),
// so the FMA units, not shared memory, become the limit. The block tile grows to 128x128 so
// each global element loaded into shared memory is used 128 times.
// Sizes: any M, N, K >= 1 (out-of-range tile elements load as 0; stores are guarded).
#pragma once
#include "cuda_compat.h"

namespace sgemm04 {

constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
constexpr int THREADS = (BM / TM) * (BN / TN);   // 256
static_assert(BM * BK % THREADS == 0 && BK * BN % THREADS == 0, "whole loads per thread");

__global__ void __launch_bounds__(THREADS) sgemm_blocktile_2d(const float* A, const float* B,
                                                              float* C, int M, int N, int K) {
    __shared__ float As[BM * BK];
    __shared__ float Bs[BK * BN];
    const int tid = threadIdx.x;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int trow = tid / (BN / TN), tcol = tid % (BN / TN);   // this thread's 8x8 tile
    // loads: thread tid takes As[arow + s*ASTRIDE, acol] and Bs[brow + s*BSTRIDE, bcol]
    const int arow = tid / BK, acol = tid % BK, brow = tid / BN, bcol = tid % BN;
    constexpr int ASTRIDE = THREADS / BK, BSTRIDE = THREADS / BN;
    float acc[TM][TN] = {{0.0f}};
    float a[TM], b[TN];
    for (int t = 0; t < K; t += BK) {
        for (int r = arow; r < BM; r += ASTRIDE) {
            const int i = row0 + r, k = t + acol;
            As[r * BK + acol] = (i < M && k < K) ? A[(size_t)i * K + k] : 0.0f;
        }
        for (int r = brow; r < BK; r += BSTRIDE) {
            const int k = t + r, j = col0 + bcol;
            Bs[r * BN + bcol] = (k < K && j < N) ? B[(size_t)k * N + j] : 0.0f;
        }
        __syncthreads();
        for (int dot = 0; dot < BK; dot++) {
            for (int r = 0; r < TM; r++) a[r] = As[(trow * TM + r) * BK + dot];
            for (int c = 0; c < TN; c++) b[c] = Bs[dot * BN + tcol * TN + c];
            for (int r = 0; r < TM; r++)
                for (int c = 0; c < TN; c++) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }
    for (int r = 0; r < TM; r++)
        for (int c = 0; c < TN; c++) {
            const int i = row0 + trow * TM + r, j = col0 + tcol * TN + c;
            if (i < M && j < N) C[(size_t)i * N + j] = acc[r][c];
        }
}

inline const char* supports(int, int, int) { return nullptr; }

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    NNL_LAUNCH(grid, THREADS, 0, stream, sgemm_blocktile_2d)(A, B, C, M, N, K);
}

}  // namespace sgemm04
