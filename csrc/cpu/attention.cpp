/*
Attention: flash-style scaled dot-product attention, forward and backward, on the CPU.

Shapes (B batch, H heads, T sequence length, D head size; B·H merged into BH, C-contiguous):
    q, k, v, out, dout, dq, dk, dv   (BH, T, D)
    lse                              (BH, T)

Forward, for each (b, h):
    S = Q Kᵀ · scale          (T, T)   scale = 1/√D by default
    S[i, j] = -inf for j > i  (causal: query i sees keys 0..i)
    P = softmax(S) per row,   out = P V,   lse[i] = log Σ_j exp(S[i, j])
Backward (dO = dout), with Δ[i] = Σ_d dO[i, d] O[i, d]:
    dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - Δ),  dQ = dS K · scale,  dK = dSᵀ Q · scale
The numpy twins (nnlite/ops/reference.py: attention, attention_backward) build the whole
(B, H, T, T) S and P. That is O(B·H·T²) memory: 1 GiB for B·H = 64 heads at T = 2048 in float32.

The tiling (FlashAttention, Dao et al. 2022; backward as in FlashAttention-2, 2023):
queries go in tiles of BR = 64 rows, keys/values in tiles of BC = 64, and only one S tile
(BR x BC) per thread exists at a time. Forward, one task per (b, h, query tile):

    m = -inf, l = 0, O = 0                           running max, running sum, unnormalised out
    for each key tile j (causal: only up to the diagonal tile; tiles above it are skipped whole)
        S = Q_i K_jᵀ · scale                         BR x BC, masked only in the diagonal tile
        m' = max(m, rowmax S);  P = exp(S - m')
        α = exp(m - m');  l = α l + rowsum P;  O = α O + P V_j;  m = m'
    out_i = O / l,  lse_i = m + log l

Rescaling by α = exp(m - m') keeps every exp() argument ≤ 0 (no overflow), and the result is
exactly softmax(S) V: each tile's contribution gets multiplied by exp(m_tile - m_final) in the end.
Backward, one task per (b, h) (each thread owns that head's dq, dk, dv, so nothing races):

    Δ = rowsum(dO ⊙ O)
    for each key tile j:                             dK_j, dV_j accumulate in place
        for each query tile i (causal: i >= j)
            S = Q_i K_jᵀ · scale;  P = exp(S - lse_i)      P recomputed from the saved lse,
            dV_j += Pᵀ dO_i;  dP = dO_i V_jᵀ               never stored
            dS = P ⊙ (dP - Δ_i) · scale
            dQ_i += dS K_j;  dK_j += dSᵀ Q_i

Memory: per thread a BR x BC tile for S/P and one for dP, Kᵀ (and Vᵀ) of one head (D x T),
and O(T) row statistics, so O(T·D) extra instead of O(T²); nothing of size B·H·T·T ever exists.
The recompute costs one more Q Kᵀ in the backward, which is cheaper than reading a stored P.

Inner loops: four small routines per SIMD path (TileOps), called once per tile:
    scores   C = A Bᵀ·scale  (BR x BC, over D)   Bᵀ is pre-transposed (D x T), so the vectors
             run along keys: C[r, c:c+16] += A[r, d] · Bᵀ[d, c:c+16]  (broadcast-FMA, no
             horizontal sums); tiles of 4 rows x 64 keys = 16 zmm accumulators (AVX-512)
    accum    C += A B over the tile (vectors along D):  P V, Pᵀ dO, dS K, dSᵀ Q;
             A is read with (row, col) strides, so the transposed ones cost nothing
    row_max, exp_rows, ds_rows: the softmax pieces, with the vectorised exp of pointwise.h

Versions (picked per call by nnlite::simd_path(), forced with NNLITE_SIMD or ops.force_simd):
    scalar   plain C++ loops; float64 always runs them (the compiler vectorises them with SSE2)
    avx2     AVX2/FMA float32, 8 lanes; scores 4 rows x 16 keys, accum 4 rows x 16 of D
    avx512   AVX-512 float32, 16 lanes; scores 4 rows x 64 keys, accum 4 rows x 32 of D
             (8 rows x 16 when D <= 16, so there are always 8 independent FMA chains)
Run:  python benchmarks/bench_attention.py   (against torch's scaled_dot_product_attention)
Measured (2 shared Zen 4 cores, 2 threads, float32, causal, fwd+bwd; noisy machine, best of 7):
    (B,H,T,D) = (12,4,64,32): 2.6 ms vs torch 6.1 ms;  (32,8,256,16): 46 ms vs torch 109 ms.
    1 thread, (32,8,256,16) forward: avx512 14.6 ms, avx2 22.5 ms, scalar 83 ms.
Peak RSS growth of one forward at (4,8,T,32): T=1024: 4.2 MiB (= the output) vs the numpy
twin's 385 MiB (3 (B,H,T,T) temporaries); T=256: 1.1 MiB vs 24 MiB.

Threads: OpenMP. Forward over (b, h, query tile), backward over (b, h), both with a dynamic
schedule: causal query tiles near the end of the sequence visit more key tiles (they are handed
out first), and on a shared 2-core machine a stalled thread should not hold up the other.
MXCSR is per thread, so every parallel region opens its own FtzScope.
*/
// GCC 12 warns about `__m512 __Y = __Y;` inside its own avx512fintrin.h (a false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/cpu.h"
#include "cpu/pointwise.h"  // exp512, exp256, NNLITE_TARGET_*

namespace nnlite {

constexpr int64_t BR = 64;  // query rows per tile
constexpr int64_t BC = 64;  // keys per tile (== BR, so diagonal tiles line up)
constexpr int64_t kNoMask = std::numeric_limits<int64_t>::max() / 4;

static inline int64_t round16(int64_t n) { return (n + 15) & ~int64_t(15); }

// The per-path inner loops. "valid" columns of tile row r: min(cols, r + off + 1), where
// off = (first query) - (first key) of the tile on the causal diagonal, kNoMask elsewhere.
template <typename T>
struct TileOps {
    // C[r*ldc + c] = scale · Σ_d A[r*lda + d] · Bt[d*ldb + c]   for c < ncp (a multiple of 16)
    void (*scores)(const T* A, int64_t lda, const T* Bt, int64_t ldb, T* C, int64_t ldc,
                   int64_t rows, int64_t ncp, int64_t D, T scale);
    // C[r*ldc + d] += Σ_c A[r*ars + c*acs] · B[c*ldb + d]   for d < D
    void (*accum)(const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                  int64_t ldc, int64_t rows, int64_t inner, int64_t D);
    // m[r] = max(m[r], max over valid c of S[r*ld + c])
    void (*row_max)(const T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off, T* m);
    // S[r*ld + c] = exp(S - sub[r]) for valid c, 0 for the other c < cols; sum[r] = Σ (if sum)
    void (*exp_rows)(T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off, const T* sub,
                     T* sum);
    // dP[r*ld + c] = P · (dP - delta[r]) · scale   for c < cols
    void (*ds_rows)(const T* P, T* dP, int64_t ld, int64_t rows, int64_t cols, const T* delta,
                    T scale);
};

static inline int64_t n_valid(int64_t r, int64_t cols, int64_t off) {
    return std::max<int64_t>(0, std::min(cols, r + off + 1));
}

// ------------------------------------------------------------------------------- scalar

template <typename T>
static void scores_scalar(const T* A, int64_t lda, const T* Bt, int64_t ldb, T* C, int64_t ldc,
                          int64_t rows, int64_t ncp, int64_t D, T scale) {
    for (int64_t r = 0; r < rows; r++) {
        T* c = C + r * ldc;
        for (int64_t j = 0; j < ncp; j++) c[j] = T(0);
        for (int64_t d = 0; d < D; d++) {
            const T a = A[r * lda + d];
            const T* b = Bt + d * ldb;
            for (int64_t j = 0; j < ncp; j++) c[j] += a * b[j];
        }
        for (int64_t j = 0; j < ncp; j++) c[j] *= scale;
    }
}

template <typename T>
static void accum_scalar(const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                         int64_t ldc, int64_t rows, int64_t inner, int64_t D) {
    for (int64_t r = 0; r < rows; r++) {
        T* c = C + r * ldc;
        for (int64_t k = 0; k < inner; k++) {
            const T a = A[r * ars + k * acs];
            const T* b = B + k * ldb;
            for (int64_t d = 0; d < D; d++) c[d] += a * b[d];
        }
    }
}

template <typename T>
static void row_max_scalar(const T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off, T* m) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        T mx = m[r];
        for (int64_t c = 0; c < n; c++) mx = std::max(mx, S[r * ld + c]);
        m[r] = mx;
    }
}

template <typename T>
static void exp_rows_scalar(T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off,
                            const T* sub, T* sum) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        T* s = S + r * ld;
        T acc = T(0);
        for (int64_t c = 0; c < n; c++) acc += (s[c] = std::exp(s[c] - sub[r]));
        for (int64_t c = n; c < cols; c++) s[c] = T(0);
        if (sum) sum[r] = acc;
    }
}

template <typename T>
static void ds_rows_scalar(const T* P, T* dP, int64_t ld, int64_t rows, int64_t cols,
                           const T* delta, T scale) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            dP[r * ld + c] = P[r * ld + c] * (dP[r * ld + c] - delta[r]) * scale;
}

#if NNLITE_X86
// ------------------------------------------------------------------------------- AVX-512

static inline __mmask16 tail_mask16(int64_t n) {  // first min(n, 16) lanes
    return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1);
}

// R rows x NV vectors of 16 keys: acc[r][v] += A[r, d] · Bt[d, 16v : 16v+16]
template <int R, int NV>
NNLITE_TARGET_AVX512 static inline void scores_block512(const float* A, int64_t lda,
                                                        const float* Bt, int64_t ldb, float* C,
                                                        int64_t ldc, int64_t D, __m512 vs) {
    __m512 acc[R][NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d++) {
        __m512 b[NV];
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(Bt + d * ldb + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[r * lda + d]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(C + r * ldc + 16 * v, _mm512_mul_ps(acc[r][v], vs));
}

NNLITE_TARGET_AVX512 static void scores_avx512(const float* A, int64_t lda, const float* Bt,
                                               int64_t ldb, float* C, int64_t ldc, int64_t rows,
                                               int64_t ncp, int64_t D, float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        int64_t c = 0;
        for (; c + 64 <= ncp; c += 64)
            scores_block512<4, 4>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
        for (; c < ncp; c += 16)
            scores_block512<4, 1>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
    }
    for (; r < rows; r++) {
        int64_t c = 0;
        for (; c + 64 <= ncp; c += 64)
            scores_block512<1, 4>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
        for (; c < ncp; c += 16)
            scores_block512<1, 1>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
    }
}

// R rows x NV vectors of 16 along D starting at d0; FULL: all R x 16·NV lanes inside D,
// otherwise lanes past D (dleft) are masked. (GCC keeps acc[][] in registers only with the plain
// loads/stores: with masked ones it writes the accumulators back to the stack every iteration,
// hence the two versions.)
// C[r, d0:] += Σ_k A[r*ars + k*acs] · B[k, d0:]
template <int R, int NV, bool FULL>
NNLITE_TARGET_AVX512 static inline void accum_block512(const float* A, int64_t ars, int64_t acs,
                                                       const float* B, int64_t ldb, float* C,
                                                       int64_t ldc, int64_t inner, int64_t dleft) {
    const __mmask16 m0 = tail_mask16(dleft), m1 = tail_mask16(dleft - 16);
    __m512 acc[R][NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = FULL ? _mm512_loadu_ps(C + r * ldc + 16 * v)
                             : _mm512_maskz_loadu_ps(v ? m1 : m0, C + r * ldc + 16 * v);
    for (int64_t k = 0; k < inner; k++) {
        __m512 b[NV];
        for (int v = 0; v < NV; v++)
            b[v] = FULL ? _mm512_loadu_ps(B + k * ldb + 16 * v)
                        : _mm512_maskz_loadu_ps(v ? m1 : m0, B + k * ldb + 16 * v);
        const float* a = A + k * acs;
        for (int r = 0; r < R; r++) {
            const __m512 ar = _mm512_set1_ps(a[r * ars]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(ar, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            if (FULL) _mm512_storeu_ps(C + r * ldc + 16 * v, acc[r][v]);
            else _mm512_mask_storeu_ps(C + r * ldc + 16 * v, v ? m1 : m0, acc[r][v]);
        }
}

// rows [0, rows) of C in blocks of R, vectors of 16 along D in chunks of NV
template <int R, int NV>
NNLITE_TARGET_AVX512 static inline void accum_rows512(const float* A, int64_t ars, int64_t acs,
                                                      const float* B, int64_t ldb, float* C,
                                                      int64_t ldc, int64_t rows, int64_t inner,
                                                      int64_t D) {
    for (int64_t d0 = 0; d0 < D; d0 += 16 * NV) {
        const bool full = d0 + 16 * NV <= D;
        const float* b = B + d0;
        const int64_t dl = D - d0;
        int64_t r = 0;
        for (; r + R <= rows; r += R) {
            const float* a = A + r * ars;
            float* c = C + r * ldc + d0;
            if (full) accum_block512<R, NV, true>(a, ars, acs, b, ldb, c, ldc, inner, dl);
            else accum_block512<R, NV, false>(a, ars, acs, b, ldb, c, ldc, inner, dl);
        }
        for (; r < rows; r++) {
            const float* a = A + r * ars;
            float* c = C + r * ldc + d0;
            if (full) accum_block512<1, NV, true>(a, ars, acs, b, ldb, c, ldc, inner, dl);
            else accum_block512<1, NV, false>(a, ars, acs, b, ldb, c, ldc, inner, dl);
        }
    }
}

NNLITE_TARGET_AVX512 static void accum_avx512(const float* A, int64_t ars, int64_t acs,
                                              const float* B, int64_t ldb, float* C, int64_t ldc,
                                              int64_t rows, int64_t inner, int64_t D) {
    if (D <= 16)  // one vector per row: 8 rows give 8 independent FMA chains
        accum_rows512<8, 1>(A, ars, acs, B, ldb, C, ldc, rows, inner, D);
    else
        accum_rows512<4, 2>(A, ars, acs, B, ldb, C, ldc, rows, inner, D);
}

NNLITE_TARGET_AVX512 static void row_max_avx512(const float* S, int64_t ld, int64_t rows,
                                                int64_t cols, int64_t off, float* m) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        const float* s = S + r * ld;
        __m512 mx = _mm512_set1_ps(m[r]);
        int64_t c = 0;
        for (; c + 16 <= n; c += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + c));
        if (c < n) mx = _mm512_mask_max_ps(mx, tail_mask16(n - c), mx, _mm512_loadu_ps(s + c));
        m[r] = _mm512_reduce_max_ps(mx);
    }
}

NNLITE_TARGET_AVX512 static void exp_rows_avx512(float* S, int64_t ld, int64_t rows,
                                                 int64_t cols, int64_t off, const float* sub,
                                                 float* sum) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        float* s = S + r * ld;
        const __m512 vm = _mm512_set1_ps(sub[r]);
        __m512 acc = _mm512_setzero_ps();
        int64_t c = 0;
        for (; c + 16 <= n; c += 16) {
            const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + c), vm));
            _mm512_storeu_ps(s + c, e);
            acc = _mm512_add_ps(acc, e);
        }
        if (c < n) {
            const __mmask16 k = tail_mask16(n - c);
            const __m512 e = _mm512_maskz_mov_ps(
                k, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + c), vm)));
            _mm512_storeu_ps(s + c, e);  // zeros past n: inside the BC-wide row
            acc = _mm512_add_ps(acc, e);
            c += 16;
        }
        for (; c < cols; c += 16) _mm512_storeu_ps(s + c, _mm512_setzero_ps());
        if (sum) sum[r] = _mm512_reduce_add_ps(acc);
    }
}

NNLITE_TARGET_AVX512 static void ds_rows_avx512(const float* P, float* dP, int64_t ld,
                                                int64_t rows, int64_t cols, const float* delta,
                                                float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t r = 0; r < rows; r++) {
        const __m512 dr = _mm512_set1_ps(delta[r]);
        for (int64_t c = 0; c < cols; c += 16) {  // rows are BC wide: no tail needed
            const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(P + r * ld + c), vs);
            _mm512_storeu_ps(dP + r * ld + c,
                             _mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(dP + r * ld + c), dr)));
        }
    }
}

// ------------------------------------------------------------------------------- AVX2/FMA

NNLITE_TARGET_AVX2 static inline __m256i tail_mask8(int64_t n) {  // first min(n, 8) lanes
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t k = std::min<int64_t>(std::max<int64_t>(n, 0), 8);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(k)), idx);
}

NNLITE_TARGET_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

NNLITE_TARGET_AVX2 static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

template <int R>
NNLITE_TARGET_AVX2 static inline void scores_block256(const float* A, int64_t lda, const float* Bt,
                                                      int64_t ldb, float* C, int64_t ldc,
                                                      int64_t D, __m256 vs) {
    __m256 acc[R][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d++) {
        const __m256 b0 = _mm256_loadu_ps(Bt + d * ldb), b1 = _mm256_loadu_ps(Bt + d * ldb + 8);
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + r * lda + d);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(C + r * ldc, _mm256_mul_ps(acc[r][0], vs));
        _mm256_storeu_ps(C + r * ldc + 8, _mm256_mul_ps(acc[r][1], vs));
    }
}

NNLITE_TARGET_AVX2 static void scores_avx2(const float* A, int64_t lda, const float* Bt,
                                           int64_t ldb, float* C, int64_t ldc, int64_t rows,
                                           int64_t ncp, int64_t D, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4)
        for (int64_t c = 0; c < ncp; c += 16)
            scores_block256<4>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
    for (; r < rows; r++)
        for (int64_t c = 0; c < ncp; c += 16)
            scores_block256<1>(A + r * lda, lda, Bt + c, ldb, C + r * ldc + c, ldc, D, vs);
}

template <int R>
NNLITE_TARGET_AVX2 static inline void accum_block256(const float* A, int64_t ars, int64_t acs,
                                                     const float* B, int64_t ldb, float* C,
                                                     int64_t ldc, int64_t inner, int64_t dleft) {
    const __m256i m0 = tail_mask8(dleft), m1 = tail_mask8(dleft - 8);
    __m256 acc[R][2];
    for (int r = 0; r < R; r++) {
        acc[r][0] = _mm256_maskload_ps(C + r * ldc, m0);
        acc[r][1] = _mm256_maskload_ps(C + r * ldc + 8, m1);
    }
    for (int64_t k = 0; k < inner; k++) {
        const __m256 b0 = _mm256_maskload_ps(B + k * ldb, m0);
        const __m256 b1 = _mm256_maskload_ps(B + k * ldb + 8, m1);
        const float* a = A + k * acs;
        for (int r = 0; r < R; r++) {
            const __m256 ar = _mm256_broadcast_ss(a + r * ars);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm256_maskstore_ps(C + r * ldc, m0, acc[r][0]);
        _mm256_maskstore_ps(C + r * ldc + 8, m1, acc[r][1]);
    }
}

NNLITE_TARGET_AVX2 static void accum_avx2(const float* A, int64_t ars, int64_t acs,
                                          const float* B, int64_t ldb, float* C, int64_t ldc,
                                          int64_t rows, int64_t inner, int64_t D) {
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
        int64_t r = 0;
        for (; r + 4 <= rows; r += 4)
            accum_block256<4>(A + r * ars, ars, acs, B + d0, ldb, C + r * ldc + d0, ldc, inner,
                              D - d0);
        for (; r < rows; r++)
            accum_block256<1>(A + r * ars, ars, acs, B + d0, ldb, C + r * ldc + d0, ldc, inner,
                              D - d0);
    }
}

NNLITE_TARGET_AVX2 static void row_max_avx2(const float* S, int64_t ld, int64_t rows,
                                            int64_t cols, int64_t off, float* m) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        const float* s = S + r * ld;
        __m256 mx = _mm256_set1_ps(m[r]);
        int64_t c = 0;
        for (; c + 8 <= n; c += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + c));
        float x = hmax256(mx);
        for (; c < n; c++) x = std::max(x, s[c]);
        m[r] = x;
    }
}

NNLITE_TARGET_AVX2 static void exp_rows_avx2(float* S, int64_t ld, int64_t rows, int64_t cols,
                                             int64_t off, const float* sub, float* sum) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = n_valid(r, cols, off);
        float* s = S + r * ld;
        const __m256 vm = _mm256_set1_ps(sub[r]);
        __m256 acc = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 8 <= n; c += 8) {
            const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + c), vm));
            _mm256_storeu_ps(s + c, e);
            acc = _mm256_add_ps(acc, e);
        }
        if (c < n) {
            const __m256 k = _mm256_castsi256_ps(tail_mask8(n - c));
            const __m256 e = _mm256_and_ps(k, exp256(_mm256_sub_ps(_mm256_loadu_ps(s + c), vm)));
            _mm256_storeu_ps(s + c, e);  // zeros past n: inside the BC-wide row
            acc = _mm256_add_ps(acc, e);
            c += 8;
        }
        for (; c < cols; c += 8) _mm256_storeu_ps(s + c, _mm256_setzero_ps());
        if (sum) sum[r] = hsum256(acc);
    }
}

NNLITE_TARGET_AVX2 static void ds_rows_avx2(const float* P, float* dP, int64_t ld, int64_t rows,
                                            int64_t cols, const float* delta, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    for (int64_t r = 0; r < rows; r++) {
        const __m256 dr = _mm256_set1_ps(delta[r]);
        for (int64_t c = 0; c < cols; c += 8) {
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(P + r * ld + c), vs);
            _mm256_storeu_ps(dP + r * ld + c,
                             _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(dP + r * ld + c), dr)));
        }
    }
}
#endif  // NNLITE_X86

template <typename T>
static TileOps<T> scalar_ops() {
    return {scores_scalar<T>, accum_scalar<T>, row_max_scalar<T>, exp_rows_scalar<T>,
            ds_rows_scalar<T>};
}

template <typename T>
static TileOps<T> pick_ops() { return scalar_ops<T>(); }

template <>
TileOps<float> pick_ops<float>() {
#if NNLITE_X86
    switch (simd_path()) {
        case Simd::AVX512:
            return {scores_avx512, accum_avx512, row_max_avx512, exp_rows_avx512, ds_rows_avx512};
        case Simd::AVX2:
            return {scores_avx2, accum_avx2, row_max_avx2, exp_rows_avx2, ds_rows_avx2};
        default:
            break;
    }
#endif
    return scalar_ops<float>();
}

// Kᵀ of rows [0, n) of one head: Kt[d*ldt + j] = K[j*D + d], zero in columns [n, round16(n)).
template <typename T>
static void transpose_rows(const T* K, int64_t n, int64_t D, T* Kt, int64_t ldt) {
    const int64_t np = round16(n);
    for (int64_t d = 0; d < D; d++) {
        T* kt = Kt + d * ldt;
        for (int64_t j = 0; j < n; j++) kt[j] = K[j * D + d];
        for (int64_t j = n; j < np; j++) kt[j] = T(0);
    }
}

#ifdef NNLITE_OPENMP
// Enough work to wake the OpenMP team? (about 2·T²·D FMAs per head; ~30 µs of work)
static bool go_parallel(int64_t BH, int64_t T_, int64_t D) {
    return num_threads() > 1 && double(BH) * double(T_) * double(T_) * double(D) > 2e5;
}
#endif

// ------------------------------------------------------------------------------- forward

// One task: query tile [i0, i0 + rows) of one head. out == nullptr: only m, l (for lse).
template <typename T>
static void forward_tile(const TileOps<T>& ops, const T* q, const T* k, const T* v, T* out,
                         T* lse, int64_t T_, int64_t D, int64_t i0, bool causal, T scale, T* S,
                         T* Kt, int64_t ldt, T* m, T* mnew, T* l, T* rowsum) {
    const int64_t rows = std::min(BR, T_ - i0);
    const int64_t kend = causal ? i0 + rows : T_;  // keys any row of this tile can see
    transpose_rows(k, kend, D, Kt, ldt);
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -std::numeric_limits<T>::infinity();
        l[r] = T(0);
    }
    if (out) std::fill(out + i0 * D, out + (i0 + rows) * D, T(0));
    for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        const int64_t cols = std::min(BC, kend - j0);
        const int64_t off = (causal && j0 + cols > i0) ? i0 - j0 : kNoMask;  // diagonal tile
        ops.scores(q + i0 * D, D, Kt + j0, ldt, S, BC, rows, round16(cols), D, scale);
        std::copy(m, m + rows, mnew);
        ops.row_max(S, BC, rows, cols, off, mnew);
        ops.exp_rows(S, BC, rows, cols, off, mnew, rowsum);
        for (int64_t r = 0; r < rows; r++) {
            const T alpha = std::exp(m[r] - mnew[r]);  // 0 on the first tile (m = -inf)
            l[r] = l[r] * alpha + rowsum[r];
            m[r] = mnew[r];
            if (out && alpha != T(1)) {
                T* o = out + (i0 + r) * D;
                for (int64_t d = 0; d < D; d++) o[d] *= alpha;
            }
        }
        if (out) ops.accum(S, BC, 1, v + j0 * D, D, out + i0 * D, D, rows, cols, D);
    }
    for (int64_t r = 0; r < rows; r++) {
        lse[i0 + r] = m[r] + std::log(l[r]);
        if (out) {
            const T inv = T(1) / l[r];
            T* o = out + (i0 + r) * D;
            for (int64_t d = 0; d < D; d++) o[d] *= inv;
        }
    }
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t BH,
                       int64_t T_, int64_t D, bool causal, T scale) {
    FtzScope ftz;
    const TileOps<T> ops = pick_ops<T>();
    const int64_t nq = (T_ + BR - 1) / BR, ntask = BH * nq;
    const int64_t ldt = round16(T_);
#ifdef NNLITE_OPENMP
#pragma omp parallel if (go_parallel(BH, T_, D))
#endif
    {
        FtzScope ftz_thread;
        std::vector<T> S(BR * BC), Kt(D * ldt), stats(4 * BR);
        T *m = stats.data(), *mnew = m + BR, *l = m + 2 * BR, *rowsum = m + 3 * BR;
#ifdef NNLITE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t t = 0; t < ntask; t++) {
            // causal: the last query tiles are the most work, so hand them out first
            const int64_t bh = t / nq, qt = causal ? nq - 1 - t % nq : t % nq;
            const int64_t o = bh * T_ * D;
            forward_tile(ops, q + o, k + o, v + o, out ? out + o : nullptr, lse + bh * T_, T_, D,
                         qt * BR, causal, scale, S.data(), Kt.data(), ldt, m, mnew, l, rowsum);
        }
    }
}

// ------------------------------------------------------------------------------- backward

// One head: dq, dk, dv (T, D) are written (zeroed first, then accumulated) by this thread only.
template <typename T>
static void backward_head(const TileOps<T>& ops, const T* q, const T* k, const T* v,
                          const T* out, const T* dout, const T* lse, T* dq, T* dk, T* dv,
                          int64_t T_, int64_t D, bool causal, T scale, T* S, T* dP, T* Kt,
                          T* Vt, int64_t ldt, T* delta) {
    std::fill(dq, dq + T_ * D, T(0));
    std::fill(dk, dk + T_ * D, T(0));
    std::fill(dv, dv + T_ * D, T(0));
    for (int64_t i = 0; i < T_; i++) {  // Δ_i = Σ_d dO[i, d] O[i, d]
        T s = T(0);
        for (int64_t d = 0; d < D; d++) s += dout[i * D + d] * out[i * D + d];
        delta[i] = s;
    }
    transpose_rows(k, T_, D, Kt, ldt);
    transpose_rows(v, T_, D, Vt, ldt);
    for (int64_t j0 = 0; j0 < T_; j0 += BC) {
        const int64_t cols = std::min(BC, T_ - j0), ncp = round16(cols);
        for (int64_t i0 = causal ? j0 : 0; i0 < T_; i0 += BR) {
            const int64_t rows = std::min(BR, T_ - i0);
            const int64_t off = (causal && i0 < j0 + cols) ? i0 - j0 : kNoMask;
            ops.scores(q + i0 * D, D, Kt + j0, ldt, S, BC, rows, ncp, D, scale);
            ops.exp_rows(S, BC, rows, cols, off, lse + i0, nullptr);        // P
            ops.accum(S, 1, BC, dout + i0 * D, D, dv + j0 * D, D, cols, rows, D);  // dV += Pᵀ dO
            ops.scores(dout + i0 * D, D, Vt + j0, ldt, dP, BC, rows, ncp, D, T(1));  // dP = dO Vᵀ
            ops.ds_rows(S, dP, BC, rows, cols, delta + i0, scale);          // dS·scale
            ops.accum(dP, BC, 1, k + j0 * D, D, dq + i0 * D, D, rows, cols, D);   // dQ += dS K
            ops.accum(dP, 1, BC, q + i0 * D, D, dk + j0 * D, D, cols, rows, D);   // dK += dSᵀ Q
        }
    }
}

template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* dout,
                        const T* lse, T* dq, T* dk, T* dv, int64_t BH, int64_t T_, int64_t D,
                        bool causal, T scale) {
    FtzScope ftz;
    const TileOps<T> ops = pick_ops<T>();
    const int64_t ldt = round16(T_);
#ifdef NNLITE_OPENMP
#pragma omp parallel if (go_parallel(BH, T_, D))
#endif
    {
        FtzScope ftz_thread;
        std::vector<T> S(BR * BC), dP(BR * BC), Kt(D * ldt), Vt(D * ldt), delta(T_);
#ifdef NNLITE_OPENMP
#pragma omp for schedule(dynamic, 1)  // equal heads, but a shared machine may stall a thread
#endif
        for (int64_t bh = 0; bh < BH; bh++) {
            const int64_t o = bh * T_ * D;
            backward_head(ops, q + o, k + o, v + o, out + o, dout + o, lse + bh * T_, dq + o,
                          dk + o, dv + o, T_, D, causal, scale, S.data(), dP.data(), Kt.data(),
                          Vt.data(), ldt, delta.data());
        }
    }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*,
                                       int64_t, int64_t, int64_t, bool, float);
template void attention_forward<double>(const double*, const double*, const double*, double*,
                                        double*, int64_t, int64_t, int64_t, bool, double);
template void attention_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, float*,
                                        int64_t, int64_t, int64_t, bool, float);
template void attention_backward<double>(const double*, const double*, const double*,
                                         const double*, const double*, const double*, double*,
                                         double*, double*, int64_t, int64_t, int64_t, bool, double);

}  // namespace nnlite
