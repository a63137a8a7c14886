// gemm_kernels.cuh: GEMM on the GPU, the one kernel behind gemm, gemm_nt and gemm_tn.
//
//     C[M,N] = (accumulate ? C : 0) + op(A)·op(B),   op(X) = X or Xᵀ
//     C[m,n] = (accumulate ? C[m,n] : 0) + Σ_k opA(m,k) · opB(k,n)
//
// All matrices are row-major with leading dimensions lda/ldb/ldc (in elements): A is stored
// M×K (opA(m,k) = A[m·lda + k]) or, transposed, K×M (opA(m,k) = A[k·lda + m]); B is stored K×N
// (opB(k,n) = B[k·ldb + n]) or, transposed, N×K (opB(k,n) = B[n·ldb + k]).
//
// CPU twin: csrc/cpu/gemm.cpp (gemm_strided). numpy twin: nnlite/ops/reference.py: gemm,
// gemm_nt, gemm_tn.
//
// The kernel is the last rung of the classic ladder (siboehm, "How to optimize a CUDA matmul
// kernel for cuBLAS-like performance": shared-memory tiles + 2-D register blocking +
// vectorised loads), written once for float and double and for every transpose case.
//
// Tiling. The grid covers C with BM×BN block tiles; block (bx, by) owns rows
// [bx·BM, bx·BM + BM) and columns [by·BN, by·BN + BN). Its 256 threads form a
// (BM/TM) × (BN/TN) = 16×16 grid; thread (ty, tx) owns the TM×TN register tile
//
//     C[bx·BM + ty·TM + i, by·BN + tx·TN + j],   i < TM, j < TN
//
// (float: 128×128 block tiles, 8×8 per thread, BK = 8: 64 accumulators, about 120 registers
// per thread; double: 64×64, 4×4 per thread, BK = 16: 16 accumulators of two registers each,
// about 70 registers, where 8×8 doubles would need over 128 for the accumulators alone.)
// A warp is two rows of 16 threads (ty, ty + 1): its 32 threads read the same two a-vectors
// (a broadcast) and 16 different b-vectors of Bs per k. The K axis is walked in steps of BK.
// Per step the block stages the two panels it needs in shared memory,
//
//     As[k][m] = opA(bx·BM + m, k0 + k)      (BK × BM)
//     Bs[k][n] = opB(k0 + k, by·BN + n)      (BK × BN)
//
// and each thread does the rank-BK update of its register tile from them:
//
//     for k < BK:  a[i] = As[k][ty·TM + i],  b[j] = Bs[k][tx·TN + j],  acc[i][j] += a[i]·b[j]
//
// so every value it reads from shared memory is used TN (or TM) times from a register: TM+TN
// shared loads per TM·TN fused multiply-adds (16 per 64 for float) instead of 2 per FMA. Two
// barriers per step: one before the reads (the panels are complete), one after (nobody still
// reads them when the next step overwrites them). Not done here, the next rungs of the ladder:
// double buffering the panels (one barrier per step, loads overlapping the FMAs) and warp
// tiling; they need a GPU to be measured (benchmarks/), which this kernel was written without.
//
// Why As is stored k-major (transposed when A is not): for a fixed k, a thread's TM values
// a[i] are then consecutive in shared memory (one or two 16-byte loads instead of TM scalar
// ones), and As and Bs have the same layout, so one loader fills both. The loader reads the
// global matrix along its contiguous axis whatever the transposes (coalesced reads) and
// writes the k-major tile: a plain copy when the matrix is stored k-major (A transposed, B
// not), a transpose on the way into shared memory otherwise (A not transposed, B transposed).
// That is how the three ops share this one kernel.
//
// Edges: any M, N, K. Values of a panel outside the matrix are loaded as 0 (so they add
// nothing), and only the threads' outputs inside C are written. Vectorised 16-byte accesses
// (float4, double2) are used for a group of 16/sizeof(T) consecutive elements only when the
// launcher found the matrix's pointer 16-byte aligned and its leading dimension a multiple of
// the group (p.vec_a / vec_b / vec_c) and the whole group lies inside the matrix; otherwise
// the same elements are read one by one. Both paths sum in the same order, so the result does
// not depend on alignment.
#pragma once
#include "cuda_compat.h"

// Unroll a loop with a compile-time trip count, so that the register tile acc[TM][TN] is
// indexed by constants and stays in registers (nvcc's `#pragma unroll`; GCC's spelling under
// the shim, where it is only a hint).
#ifndef NNL_UNROLL
#if defined(__CUDACC__)
#define NNL_UNROLL _Pragma("unroll")
#else
#define NNL_UNROLL _Pragma("GCC unroll 16")
#endif
#endif

namespace nnl::cuda::kernels {

// Block and thread tiles per dtype (see above); kGemmThreads = (BM/TM)·(BN/TN) = 256 for both.
// Static shared memory 2·BK·BM·sizeof(T): 8 KiB (float), 16 KiB (double).
template <typename T> struct GemmTile;
template <> struct GemmTile<float> {
    static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
};
template <> struct GemmTile<double> {
    static constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
};
constexpr int kGemmThreads = 256;

// The launch's arguments, by value (see gemm.h for their meaning).
template <typename T>
struct GemmParams {
    const T* A;
    const T* B;
    T* C;
    long long M, N, K, lda, ldb, ldc;
    bool trans_a, trans_b, accumulate;
    bool vec_a, vec_b, vec_c;   // 16-byte accesses allowed: aligned, ld % (16/sizeof T) == 0
};

// 16 bytes (a float4 or a double2) to or from a short array, in one instruction; p must be
// 16-byte aligned.
__device__ __forceinline__ void load16(const float* p, float (&v)[4]) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void load16(const double* p, double (&v)[2]) {
    const double2 q = *reinterpret_cast<const double2*>(p);
    v[0] = q.x; v[1] = q.y;
}
__device__ __forceinline__ void store16(float* p, const float (&v)[4]) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store16(double* p, const double (&v)[2]) {
    *reinterpret_cast<double2*>(p) = make_double2(v[0], v[1]);
}

// Stage one BK-wide panel of op(X) in shared memory, k-major:
//
//     tile[k][r] = op(X)(r0 + r, k0 + k)  for r < ROWS, k < BK;  0 outside R × K
//
// where X is stored either r-major (element (r, k) at X[r·ld + k]: A, or B transposed) or
// k-major (element (r, k) at X[k·ld + r]: A transposed, or B). The panel is cut into groups
// of V = 16/sizeof(T) elements consecutive in memory; thread t loads groups t, t + 256, ...,
// so neighbouring threads read neighbouring addresses (coalesced).
template <typename T, int ROWS, int BK>
__device__ __forceinline__ void load_panel(T (&tile)[BK][ROWS], const T* X, long long ld,
                                           bool r_major, bool vec, long long r0, long long k0,
                                           long long R, long long K) {
    constexpr int V = 16 / sizeof(T);
    constexpr int GROUPS = ROWS * BK / V;
    static_assert(GROUPS % kGemmThreads == 0, "a panel must split evenly over the threads");
    for (int g = threadIdx.x; g < GROUPS; g += kGemmThreads) {
        T v[V];
        if (r_major) {
            // row r of X, elements k .. k+V-1 (contiguous along k); transposed into the tile
            const int r = g / (BK / V), k = (g % (BK / V)) * V;
            const long long gr = r0 + r, gk = k0 + k;
            const T* src = X + gr * ld + gk;
            if (vec && gr < R && gk + V <= K) {
                load16(src, v);
            } else {
                NNL_UNROLL
                for (int e = 0; e < V; e++) v[e] = (gr < R && gk + e < K) ? src[e] : T(0);
            }
            NNL_UNROLL
            for (int e = 0; e < V; e++) tile[k + e][r] = v[e];
        } else {
            // row k of X, elements r .. r+V-1 (contiguous along r); copied as they are
            const int k = g / (ROWS / V), r = (g % (ROWS / V)) * V;
            const long long gr = r0 + r, gk = k0 + k;
            const T* src = X + gk * ld + gr;
            if (vec && gk < K && gr + V <= R) {
                load16(src, v);
            } else {
                NNL_UNROLL
                for (int e = 0; e < V; e++) v[e] = (gk < K && gr + e < R) ? src[e] : T(0);
            }
            NNL_UNROLL
            for (int e = 0; e < V; e++) tile[k][r + e] = v[e];
        }
    }
}

// C = (accumulate ? C : 0) + op(A)·op(B): one block per BM×BN tile of C,
// grid (⌈M/BM⌉, ⌈N/BN⌉).
template <typename T>
__global__ void __launch_bounds__(kGemmThreads) gemm_tiled(GemmParams<T> p) {
    using Tile = GemmTile<T>;
    constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
    constexpr int V = 16 / sizeof(T);
    static_assert((BM / TM) * (BN / TN) == kGemmThreads, "one thread per TM×TN tile");
    static_assert(TN % V == 0 && BK % V == 0 && BM % V == 0 && BN % V == 0, "whole 16-byte groups");

    __align__(16) __shared__ T As[BK][BM];   // As[k][m] = opA(m0 + m, k0 + k)
    __align__(16) __shared__ T Bs[BK][BN];   // Bs[k][n] = opB(k0 + k, n0 + n)

    const long long m0 = (long long)blockIdx.x * BM, n0 = (long long)blockIdx.y * BN;
    const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);

    T acc[TM][TN];
    NNL_UNROLL
    for (int i = 0; i < TM; i++)
        NNL_UNROLL
        for (int j = 0; j < TN; j++) acc[i][j] = T(0);

    for (long long k0 = 0; k0 < p.K; k0 += BK) {
        // A is r-major (rows m, contiguous k) unless transposed; B is r-major (rows n,
        // contiguous k) only when transposed.
        load_panel<T, BM, BK>(As, p.A, p.lda, !p.trans_a, p.vec_a, m0, k0, p.M, p.K);
        load_panel<T, BN, BK>(Bs, p.B, p.ldb, p.trans_b, p.vec_b, n0, k0, p.N, p.K);
        __syncthreads();   // the panels are complete before anyone reads them
        NNL_UNROLL
        for (int k = 0; k < BK; k++) {
            T a[TM], b[TN];
            NNL_UNROLL
            for (int i = 0; i < TM; i++) a[i] = As[k][ty * TM + i];
            NNL_UNROLL
            for (int j = 0; j < TN; j++) b[j] = Bs[k][tx * TN + j];
            NNL_UNROLL
            for (int i = 0; i < TM; i++)
                NNL_UNROLL
                for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();   // everyone is done with the panels before the next step overwrites them
    }

    // Write the register tile: row m0 + ty·TM + i, columns n0 + tx·TN + j, in 16-byte groups
    // where allowed, else element by element inside C. Without accumulate C is never read
    // (it may hold anything, NaN included).
    NNL_UNROLL
    for (int i = 0; i < TM; i++) {
        const long long gm = m0 + ty * TM + i;
        if (gm >= p.M) continue;
        NNL_UNROLL
        for (int j = 0; j < TN; j += V) {
            const long long gn = n0 + tx * TN + j;
            T* c = p.C + gm * p.ldc + gn;
            if (p.vec_c && gn + V <= p.N) {
                T v[V];
                NNL_UNROLL
                for (int e = 0; e < V; e++) v[e] = acc[i][j + e];
                if (p.accumulate) {
                    T old[V];
                    load16(c, old);
                    NNL_UNROLL
                    for (int e = 0; e < V; e++) v[e] += old[e];
                }
                store16(c, v);
            } else {
                NNL_UNROLL
                for (int e = 0; e < V; e++)
                    if (gn + e < p.N) c[e] = p.accumulate ? c[e] + acc[i][j + e] : acc[i][j + e];
            }
        }
    }
}

}  // namespace nnl::cuda::kernels
