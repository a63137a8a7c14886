// Register transposes of small blocks, shared by the kernels that lay an operand out along the
// other axis: the GEMM's packing of row-major panels (cpu/gemm.cpp) and attention's Kᵀ, Vᵀ
// (cpu/attention.cpp). A scalar transpose costs a load and a store per element; these move a
// whole 8 x 8 (f32) or 4 x 4 (f64) block in 8 (4) loads, a shuffle network and 8 (4) stores.
// AVX2 code, used by both the AVX2 and the AVX-512 paths: a register transpose is a shuffle
// network per width, not a simd::Vec op. Callers check the CPU (simd_path()) before calling.
#pragma once

#include <cstdint>

#include "common/cpu.h"

namespace nnlite {
#if NNLITE_X86

// r[k] := column k of the 8 x 8 block whose rows were r[0..7]: the shuffle network.
NNLITE_TARGET_AVX2 static inline void transpose8x8(__m256 r[8]) {
    __m256 t[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
    }
    __m256 u[8];
    u[0] = _mm256_shuffle_ps(t[0], t[2], 0x44);
    u[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
    u[2] = _mm256_shuffle_ps(t[1], t[3], 0x44);
    u[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
    u[4] = _mm256_shuffle_ps(t[4], t[6], 0x44);
    u[5] = _mm256_shuffle_ps(t[4], t[6], 0xEE);
    u[6] = _mm256_shuffle_ps(t[5], t[7], 0x44);
    u[7] = _mm256_shuffle_ps(t[5], t[7], 0xEE);
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

// dst[k*NW + j] = src[j*vs + k] for an 8 x 8 block: rows j of src become columns.
NNLITE_TARGET_AVX2 static inline void transpose_block(const float* src, int64_t vs, float* dst,
                                                      int64_t NW) {
    __m256 r[8];
    for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(src + j * vs);
    transpose8x8(r);
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + k * NW, r[k]);
}

// The same for a 4 x 4 block of doubles.
NNLITE_TARGET_AVX2 static inline void transpose_block(const double* src, int64_t vs, double* dst,
                                                      int64_t NW) {
    __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + vs);
    __m256d r2 = _mm256_loadu_pd(src + 2 * vs), r3 = _mm256_loadu_pd(src + 3 * vs);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + NW, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * NW, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * NW, _mm256_permute2f128_pd(t1, t3, 0x31));
}

// dst[k*NW + j] = src[j*vs + k] for j < rows, k < cols, both multiples of the block (8 f32,
// 4 f64): the loop is compiled for AVX2 too, so the blocks inline (called one by one from a
// function without the target, each is a call).
template <typename T>
NNLITE_TARGET_AVX2 static void transpose_blocks(const T* src, int64_t vs, int64_t rows,
                                                int64_t cols, T* dst, int64_t NW) {
    constexpr int64_t B = 32 / sizeof(T);
    for (int64_t j0 = 0; j0 < rows; j0 += B)
        for (int64_t k0 = 0; k0 < cols; k0 += B)
            transpose_block(src + j0 * vs + k0, vs, dst + k0 * NW + j0, NW);
}
#endif  // NNLITE_X86
}  // namespace nnlite
