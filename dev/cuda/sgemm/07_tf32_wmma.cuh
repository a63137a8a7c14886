// SGEMM step 7: TF32 tensor cores (WMMA).  ** LOWER PRECISION **   C (M,N) = A (M,K) @ B (K,N)
//
//   *** Not float32 arithmetic: every factor is rounded to TF32 (float32's 8-bit exponent, a
//   *** 10-bit mantissa: relative error up to 2^-11 per factor) before a multiply; the sums are
//   *** float32. Checked to 1e-3·sqrt(K) (the float32 steps: 1e-4 + 1e-6·K). A different
//   *** number format, not a faster SGEMM: the float32 ladder ends at step 6. (PyTorch calls
//   *** this torch.backends.cuda.matmul.allow_tf32; cuBLAS's FP32 baseline does not use it.)
//
//     block  128x128 of C, K in steps of 16, 256 threads = 8 warps as 2 (rows) x 4 (columns)
//     warp   64x32 of C: 4 x 2 accumulator fragments of 16x16 (wmma m16n16k8, TF32 inputs)
//     for each k-tile:  As (128x16), Bs (16x128) in shared memory (float4 loads, as step 5)
//         for kk in {0, 8}:  a[4] = As[warp rows, kk:kk+8],  b[2] = Bs[kk:kk+8, warp cols]
//                            acc[m][n] = mma(a[m], b[n], acc[m][n])     (8 tensor-core MMAs)
//     store: each fragment through a per-warp 16x16 staging tile in shared memory, then
//            guarded element stores (so edges and unaligned rows of C need no special case)
//
// What changed from step 6: the multiply-adds move from the FP32 units to the tensor cores,
// which do a 16x16x8 product per warp instruction at several times the FP32 FMA rate. The
// tiling around them is step 4/5's; this step is deliberately simple (no double buffering,
// no async copies), so it shows the format's speed, not the best TF32 kernel.
// Sizes: any M; N and K multiples of 4 (float4 loads). nvcc only, sm_80 or newer: the shim
// has no WMMA, so the shim tests leave this step out (tests/test_dev.py says so).
#pragma once
#include "cuda_compat.h"
#if !defined(__CUDACC__)
#error "07_tf32_wmma.cuh needs nvcc (WMMA tensor-core fragments); the shim cannot run it"
#endif
#include <mma.h>

namespace sgemm07 {

namespace wmma = nvcuda::wmma;
constexpr int BM = 128, BN = 128, BK = 16, THREADS = 256;
constexpr int WM = 64, WN = 32;                      // warp tile: 2 x 4 warps
constexpr int FM = WM / 16, FN = WN / 16;            // 4 x 2 fragments per warp
constexpr int LDA = BK + 4, LDB = BN + 4;            // padded rows (multiples of 4 floats)

__device__ __forceinline__ float4 load4(const float* p, bool in) {
    return in ? *reinterpret_cast<const float4*>(p) : make_float4(0.f, 0.f, 0.f, 0.f);
}

__global__ void __launch_bounds__(THREADS) sgemm_tf32_wmma(const float* A, const float* B,
                                                           float* C, int M, int N, int K) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    __align__(32) __shared__ float As[BM * LDA];
    __align__(32) __shared__ float Bs[BK * LDB];
    __align__(32) __shared__ float stage[THREADS / 32][16 * 16];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int wrow = warp / (BN / WN), wcol = warp % (BN / WN);
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[FM][FN];
    for (int m = 0; m < FM; m++)
        for (int n = 0; n < FN; n++) wmma::fill_fragment(acc[m][n], 0.0f);
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[FM];
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b[FN];
    for (int t = 0; t < K; t += BK) {
        for (int f = tid; f < BM * BK / 4; f += THREADS) {   // 2 float4 of A per thread
            const int r = f / (BK / 4), c = f % (BK / 4) * 4, i = row0 + r, k = t + c;
            *reinterpret_cast<float4*>(&As[r * LDA + c]) =
                load4(A + (size_t)i * K + k, i < M && k < K);
        }
        for (int f = tid; f < BK * BN / 4; f += THREADS) {   // 2 float4 of B per thread
            const int r = f / (BN / 4), c = f % (BN / 4) * 4, k = t + r, j = col0 + c;
            *reinterpret_cast<float4*>(&Bs[r * LDB + c]) =
                load4(B + (size_t)k * N + j, k < K && j < N);
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk += 8) {
            for (int m = 0; m < FM; m++) {
                wmma::load_matrix_sync(a[m], &As[(wrow * WM + m * 16) * LDA + kk], LDA);
                for (int e = 0; e < a[m].num_elements; e++)   // round to TF32
                    a[m].x[e] = wmma::__float_to_tf32(a[m].x[e]);
            }
            for (int n = 0; n < FN; n++) {
                wmma::load_matrix_sync(b[n], &Bs[kk * LDB + wcol * WN + n * 16], LDB);
                for (int e = 0; e < b[n].num_elements; e++)
                    b[n].x[e] = wmma::__float_to_tf32(b[n].x[e]);
            }
            for (int m = 0; m < FM; m++)
                for (int n = 0; n < FN; n++) wmma::mma_sync(acc[m][n], a[m], b[n], acc[m][n]);
        }
        __syncthreads();
    }
    for (int m = 0; m < FM; m++)
        for (int n = 0; n < FN; n++) {
            wmma::store_matrix_sync(stage[warp], acc[m][n], 16, wmma::mem_row_major);
            __syncwarp();
            const int i0 = row0 + wrow * WM + m * 16, j0 = col0 + wcol * WN + n * 16;
            for (int e = lane; e < 256; e += 32) {
                const int i = i0 + e / 16, j = j0 + e % 16;
                if (i < M && j < N) C[(size_t)i * N + j] = stage[warp][e];
            }
            __syncwarp();
        }
#endif
}

inline const char* supports(int, int N, int K) {
    return N % 4 || K % 4 ? "N and K must be multiples of 4 (float4 rows)" : nullptr;
}

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    NNL_LAUNCH(grid, THREADS, 0, stream, sgemm_tf32_wmma)(A, B, C, M, N, K);
}

}  // namespace sgemm07
