// SGEMM step 5: vectorised loads (siboehm's kernel 6).   C (M,N) = A (M,K) @ B (K,N), row-major
//
//     global -> shared: one float4 (128-bit) load per thread of A's 128x8 tile and of B's 8x128
//                       tile; A's tile is stored transposed, As[k][m], as it is written
//     shared -> registers: a[0..7] = As[dot][trow*8 .. +8],  b[0..7] = Bs[dot][tcol*8 .. +8]
//                       (each 2 float4 loads), then the same 8x8 outer product as step 4
//     registers -> C:   float4 stores
//
// What changed from step 4: the same tiling, with 4 times fewer (and wider) memory
// instructions. Step 4's loads were 32-bit: 4 instructions per thread per tile, each warp-wide
// access a separate transaction. A float4 load moves 16 bytes per thread in one instruction
// (LDG.128). Storing A's tile transposed makes a thread's 8 values of A contiguous in shared
// memory, so they too are read with 128-bit loads (LDS.128) instead of 8 strided 32-bit ones.
// Sizes: any M; N and K multiples of 4 (a row then starts 16-byte aligned and a float4 lies
// wholly inside or wholly outside the matrix, so the guards stay per float4).
#pragma once
#include "cuda_compat.h"

namespace sgemm05 {

constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
constexpr int THREADS = (BM / TM) * (BN / TN);   // 256
static_assert(BM * BK / 4 == THREADS && BK * BN / 4 == THREADS, "one float4 of each per thread");

__device__ __forceinline__ float4 load4(const float* p, bool in) {
    return in ? *reinterpret_cast<const float4*>(p) : make_float4(0.f, 0.f, 0.f, 0.f);
}

__global__ void __launch_bounds__(THREADS) sgemm_vectorized(const float* A, const float* B,
                                                            float* C, int M, int N, int K) {
    __align__(16) __shared__ float As[BK * BM];   // transposed: As[k * BM + m]
    __align__(16) __shared__ float Bs[BK * BN];   // Bs[k * BN + n]
    const int tid = threadIdx.x;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int trow = tid / (BN / TN), tcol = tid % (BN / TN);
    const int arow = tid / (BK / 4), acol = tid % (BK / 4) * 4;   // A[row0+arow, t+acol .. +4]
    const int brow = tid / (BN / 4), bcol = tid % (BN / 4) * 4;   // B[t+brow, col0+bcol .. +4]
    float acc[TM][TN] = {{0.0f}};
    float a[TM], b[TN];
    for (int t = 0; t < K; t += BK) {
        const int ai = row0 + arow, ak = t + acol;
        const float4 va = load4(A + (size_t)ai * K + ak, ai < M && ak < K);
        As[(acol + 0) * BM + arow] = va.x;
        As[(acol + 1) * BM + arow] = va.y;
        As[(acol + 2) * BM + arow] = va.z;
        As[(acol + 3) * BM + arow] = va.w;
        const int bk = t + brow, bj = col0 + bcol;
        *reinterpret_cast<float4*>(&Bs[brow * BN + bcol]) =
            load4(B + (size_t)bk * N + bj, bk < K && bj < N);
        __syncthreads();
        for (int dot = 0; dot < BK; dot++) {
            for (int r = 0; r < TM; r += 4) {
                const float4 v = *reinterpret_cast<const float4*>(&As[dot * BM + trow * TM + r]);
                a[r] = v.x, a[r + 1] = v.y, a[r + 2] = v.z, a[r + 3] = v.w;
            }
            for (int c = 0; c < TN; c += 4) {
                const float4 v = *reinterpret_cast<const float4*>(&Bs[dot * BN + tcol * TN + c]);
                b[c] = v.x, b[c + 1] = v.y, b[c + 2] = v.z, b[c + 3] = v.w;
            }
            for (int r = 0; r < TM; r++)
                for (int c = 0; c < TN; c++) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }
    for (int r = 0; r < TM; r++) {
        const int i = row0 + trow * TM + r;
        for (int c = 0; c < TN; c += 4) {
            const int j = col0 + tcol * TN + c;
            if (i < M && j < N)
                *reinterpret_cast<float4*>(&C[(size_t)i * N + j]) =
                    make_float4(acc[r][c], acc[r][c + 1], acc[r][c + 2], acc[r][c + 3]);
        }
    }
}

inline const char* supports(int, int N, int K) {
    return N % 4 || K % 4 ? "N and K must be multiples of 4 (float4 rows)" : nullptr;
}

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    NNL_LAUNCH(grid, THREADS, 0, stream, sgemm_vectorized)(A, B, C, M, N, K);
}

}  // namespace sgemm05
