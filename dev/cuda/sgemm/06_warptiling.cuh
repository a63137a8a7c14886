// SGEMM step 6: warp tiling (siboehm's kernel 10).       C (M,N) = A (M,K) @ B (K,N), row-major
//
//     block  128x128 of C, K in steps of 16, 128 threads = 4 warps as 2x2
//     warp    64x64 of the block tile, walked as WNITER = 4 sub-tiles of 64x16
//     thread  in each sub-tile an 8x4 tile: 8 rows x (4 sub-tiles x 4 cols) = 128 results
//
//     for each k-tile (As transposed, Bs; float4 loads as step 5):
//         for dot < 16:  a[8]     = As[dot][warp rows of this thread]        (2 LDS.128)
//                        b[4 x 4] = Bs[dot][the 4 sub-tiles' 4 columns]      (4 LDS.128)
//                        acc[8][16] += a ⊗ b                                 (128 FMAs)
//
// What changed from step 5: a level of tiling between the block and the thread. The 32 lanes
// of a warp now cover one compact 64x16 region per sub-tile instead of lanes scattered over
// the whole block tile, so a warp's shared-memory reads of a[] hit 8 distinct rows (broadcast
// within the 4 lanes of a row) and its reads of b[] 16 contiguous columns: fewer bank
// conflicts, and each value read by a warp feeds more FMAs (128 per 12 loads per thread,
// step 5: 64 per 4). Half the threads per block (128) with twice the work each, and BK = 16
// halves the __syncthreads per FMA. On a GPU this is the step that approaches cuBLAS.
// Sizes: any M; N and K multiples of 4 (as step 5).
#pragma once
#include "cuda_compat.h"

namespace sgemm06 {

constexpr int BM = 128, BN = 128, BK = 16;
constexpr int WM = 64, WN = 64, WNITER = 4;            // warp tile, sub-tiles along N
constexpr int TM = 8, TN = 4;                           // a thread's tile in each sub-tile
constexpr int THREADS = (BM / WM) * (BN / WN) * 32;     // 128
constexpr int WMITER = (WM * WN) / (32 * TM * TN * WNITER);   // 1
constexpr int WSUBM = WM / WMITER, WSUBN = WN / WNITER;       // 64 x 16
static_assert(WMITER >= 1 && (WSUBM / TM) * (WSUBN / TN) == 32, "a sub-tile is one warp's lanes");
static_assert(BM * BK % (4 * THREADS) == 0 && BK * BN % (4 * THREADS) == 0, "whole float4 loads");

__device__ __forceinline__ float4 load4(const float* p, bool in) {
    return in ? *reinterpret_cast<const float4*>(p) : make_float4(0.f, 0.f, 0.f, 0.f);
}

__global__ void __launch_bounds__(THREADS) sgemm_warptiling(const float* A, const float* B,
                                                            float* C, int M, int N, int K) {
    __align__(16) __shared__ float As[BK * BM];   // transposed: As[k * BM + m]
    __align__(16) __shared__ float Bs[BK * BN];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int wrow = warp / (BN / WN), wcol = warp % (BN / WN);          // the warp's 64x64
    const int lrow = lane / (WSUBN / TN), lcol = lane % (WSUBN / TN);    // the lane's 8x4
    // loads: float4 number tid + s*THREADS of each tile
    const int arow = tid / (BK / 4), acol = tid % (BK / 4) * 4;
    const int brow = tid / (BN / 4), bcol = tid % (BN / 4) * 4;
    constexpr int ASTRIDE = THREADS * 4 / BK, BSTRIDE = THREADS * 4 / BN;   // 32 rows, 4 rows
    float acc[WMITER * TM][WNITER * TN] = {{0.0f}};
    float a[WMITER * TM], b[WNITER * TN];
    for (int t = 0; t < K; t += BK) {
        for (int r = arow; r < BM; r += ASTRIDE) {
            const int i = row0 + r, k = t + acol;
            const float4 v = load4(A + (size_t)i * K + k, i < M && k < K);
            As[(acol + 0) * BM + r] = v.x;
            As[(acol + 1) * BM + r] = v.y;
            As[(acol + 2) * BM + r] = v.z;
            As[(acol + 3) * BM + r] = v.w;
        }
        for (int r = brow; r < BK; r += BSTRIDE) {
            const int k = t + r, j = col0 + bcol;
            *reinterpret_cast<float4*>(&Bs[r * BN + bcol]) =
                load4(B + (size_t)k * N + j, k < K && j < N);
        }
        __syncthreads();
        for (int dot = 0; dot < BK; dot++) {
            for (int wm = 0; wm < WMITER; wm++)
                for (int r = 0; r < TM; r += 4) {
                    const float4 v = *reinterpret_cast<const float4*>(
                        &As[dot * BM + wrow * WM + wm * WSUBM + lrow * TM + r]);
                    float* dst = a + wm * TM + r;
                    dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
                }
            for (int wn = 0; wn < WNITER; wn++) {
                const float4 v = *reinterpret_cast<const float4*>(
                    &Bs[dot * BN + wcol * WN + wn * WSUBN + lcol * TN]);
                float* dst = b + wn * TN;
                dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
            }
            for (int r = 0; r < WMITER * TM; r++)
                for (int c = 0; c < WNITER * TN; c++) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();
    }
    for (int wm = 0; wm < WMITER; wm++)
        for (int r = 0; r < TM; r++) {
            const int i = row0 + wrow * WM + wm * WSUBM + lrow * TM + r;
            for (int wn = 0; wn < WNITER; wn++) {
                const int j = col0 + wcol * WN + wn * WSUBN + lcol * TN;
                const float* v = &acc[wm * TM + r][wn * TN];
                if (i < M && j < N)   // TN = 4 and N % 4 == 0: the float4 is wholly inside
                    *reinterpret_cast<float4*>(&C[(size_t)i * N + j]) =
                        make_float4(v[0], v[1], v[2], v[3]);
            }
        }
}

inline const char* supports(int, int N, int K) {
    return N % 4 || K % 4 ? "N and K must be multiples of 4 (float4 rows)" : nullptr;
}

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    NNL_LAUNCH(grid, THREADS, 0, stream, sgemm_warptiling)(A, B, C, M, N, K);
}

}  // namespace sgemm06
