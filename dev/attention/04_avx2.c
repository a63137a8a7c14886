/*
Attention step 4: the tile loops in AVX2/FMA intrinsics.

Step 3's loop nest, each piece of a tile written with 8-float vectors:

    scores   S = scale · Q_i K_jᵀ   blocks of 4 rows x 16 keys = 8 ymm accumulators:
             for d: two loads of Kᵀ[d, c:c+16], 4 broadcasts of Q[r, d], 8 FMAs
             (as the GEMM micro-kernel: the block stays in registers for all D steps, where
             step 3 loaded and stored S[r, c] once per d)
    row_max  m' = max(m, S[r, :n])      8 lanes at a time, one horizontal max per row
    exp_rows P = exp(S - m'), zero past n, l' = sum
             exp() itself vectorised: exp256, a polynomial (below); libm's expf is scalar
    accum    O += P V_j               blocks of 4 rows x 16 of D, masked loads for D % 16

Masking becomes a count, not -inf: row r of the tile sees n = min(cols, i0 + r - j0 + 1) keys,
which is cols everywhere but on the diagonal tile. Kᵀ is zero-padded to a multiple of 16 keys
so the score blocks need no edge case. These are csrc/attention.cpp's AVX2 TileOps; its
AVX-512 ones are the same with 16 lanes (4 rows x 64 keys). Only the tile routines are compiled
for AVX2 (target attribute).

Standalone on purpose: the code this step shares with 03_causal_skip.c is repeated, not included, so each
file reads (and compiles) alone; `diff 03_causal_skip.c 04_avx2.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/attention/04_avx2 4 8 256 32
*/
#include "harness.h"

#define BR 64  // queries per tile
#define BC 64  // keys per tile

static int round16(int n) { return (n + 15) & ~15; }

#if X86
// exp(x), ~1 ulp, for the softmax's arguments x <= 0 (the Cephes expf polynomial):
//   n = round(x log2 e),  r = x - n ln2  (ln2 in two parts so r is exact),  |r| <= ln2/2
//   exp(r) ~ 1 + r + r² P(r) (P of degree 5),   exp(x) = 2^n exp(r),  2^n made of exponent bits
// Below -87.3 (and at -inf) the result is 0.
AVX2 static inline __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 xc = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                         _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_and_ps(y, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
}

AVX2 static inline __m256i tail_mask(int n) {  // lanes 0 .. n-1 set (n clamped to 0..8)
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 0 ? 0 : n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static inline float hsum(__m256 v) {
    float x[8], s = 0.0f;
    _mm256_storeu_ps(x, v);
    for (int i = 0; i < 8; i++) s += x[i];
    return s;
}

AVX2 static inline float hmax(__m256 v) {
    float x[8], m = -INFINITY;
    _mm256_storeu_ps(x, v);
    for (int i = 0; i < 8; i++) m = maxf(m, x[i]);
    return m;
}

// S[r*BC + c] = scale · Σ_d Q[r*ldq + d] Kt[d*ldt + c]  for r < rows, c < ncp (multiple of 16).
// Rows past `rows` in the last block of 4 re-read the last row; their results are dropped.
AVX2 static void scores(const float* Q, int ldq, const float* Kt, int ldt, float* S, int rows,
                        int ncp, int D, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float* q[4];
        for (int r = 0; r < 4; r++) q[r] = Q + imin(r0 + r, rows - 1) * ldq;
        for (int c = 0; c < ncp; c += 16) {
            __m256 acc[4][2];
            for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            for (int d = 0; d < D; d++) {
                const __m256 k0 = _mm256_loadu_ps(Kt + d * ldt + c);
                const __m256 k1 = _mm256_loadu_ps(Kt + d * ldt + c + 8);
                for (int r = 0; r < 4; r++) {
                    const __m256 a = _mm256_broadcast_ss(q[r] + d);
                    acc[r][0] = _mm256_fmadd_ps(a, k0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, k1, acc[r][1]);
                }
            }
            for (int r = 0; r < imin(4, rows - r0); r++) {
                _mm256_storeu_ps(S + (r0 + r) * BC + c, _mm256_mul_ps(acc[r][0], vs));
                _mm256_storeu_ps(S + (r0 + r) * BC + c + 8, _mm256_mul_ps(acc[r][1], vs));
            }
        }
    }
}

// Keys row r may see in this tile (all cols except on the diagonal tile).
static inline int n_valid(int r, int cols, int off) { return imax(0, imin(cols, r + off + 1)); }

// m[r] = max(m[r], S[r, 0:n_valid])
AVX2 static void row_max(const float* S, int rows, int cols, int off, float* m) {
    for (int r = 0; r < rows; r++) {
        const float* s = S + r * BC;
        const int n = n_valid(r, cols, off);
        __m256 mx = _mm256_set1_ps(m[r]);
        int c = 0;
        for (; c + 8 <= n; c += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + c));
        float x = hmax(mx);
        for (; c < n; c++) x = maxf(x, s[c]);
        m[r] = x;
    }
}

// S[r, c] = exp(S[r, c] - sub[r]) for c < n_valid, 0 for the rest of the cols; sum[r] = Σ_c
AVX2 static void exp_rows(float* S, int rows, int cols, int off, const float* sub, float* sum) {
    for (int r = 0; r < rows; r++) {
        float* s = S + r * BC;
        const int n = n_valid(r, cols, off);
        const __m256 vm = _mm256_set1_ps(sub[r]);
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < cols; c += 8) {  // rows are BC wide: 8 more floats always fit
            __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + c), vm));
            if (c + 8 > n) e = _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(n - c)));
            _mm256_storeu_ps(s + c, e);
            acc = _mm256_add_ps(acc, e);
        }
        if (sum) sum[r] = hsum(acc);
    }
}

// C[r*D + d] += Σ_c A[r*ars + c*acs] B[c*D + d]   for r < rows, c < inner, d < D
// (P V here: ars = BC, acs = 1; the backward also reads Pᵀ and dSᵀ with ars = 1, acs = BC).
// Blocks of 4 rows x 16 of D; masked loads/stores for the last D % 16.
AVX2 static void accum(const float* A, int ars, int acs, const float* B, float* C, int rows,
                       int inner, int D) {
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float* a[4];
        float* c[4];
        for (int r = 0; r < 4; r++) {
            a[r] = A + imin(r0 + r, rows - 1) * ars;
            c[r] = C + imin(r0 + r, rows - 1) * D;
        }
        for (int d0 = 0; d0 < D; d0 += 16) {
            const __m256i m0 = tail_mask(D - d0), m1 = tail_mask(D - d0 - 8);
            __m256 acc[4][2];
            for (int r = 0; r < 4; r++) {
                acc[r][0] = _mm256_maskload_ps(c[r] + d0, m0);
                acc[r][1] = _mm256_maskload_ps(c[r] + d0 + 8, m1);
            }
            for (int k = 0; k < inner; k++) {
                const __m256 b0 = _mm256_maskload_ps(B + k * D + d0, m0);
                const __m256 b1 = _mm256_maskload_ps(B + k * D + d0 + 8, m1);
                for (int r = 0; r < 4; r++) {
                    const __m256 x = _mm256_broadcast_ss(a[r] + k * acs);
                    acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
                }
            }
            for (int r = 0; r < imin(4, rows - r0); r++) {
                _mm256_maskstore_ps(c[r] + d0, m0, acc[r][0]);
                _mm256_maskstore_ps(c[r] + d0 + 8, m1, acc[r][1]);
            }
        }
    }
}

static void attention_forward(const float* q, const float* k, const float* v, float* out,
                              float* lse, int BH, int T, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    const int ldt = round16(T);
    float *Kt = scratch(0, (size_t)D * ldt), *S = scratch(1, BR * BC);
    float *stats = scratch(2, 4 * BR), *m = stats, *m_new = m + BR, *l = m + 2 * BR;
    float* rowsum = m + 3 * BR;
    for (int bh = 0; bh < BH; bh++) {
        const float *Q = q + bh * T * D, *K = k + bh * T * D, *V = v + bh * T * D;
        float* O = out + bh * T * D;
        for (int d = 0; d < D; d++)  // Kᵀ, zero-padded to ldt keys
            for (int j = 0; j < ldt; j++) Kt[d * ldt + j] = j < T ? K[j * D + d] : 0.0f;
        for (int i0 = 0; i0 < T; i0 += BR) {
            const int rows = imin(BR, T - i0), kend = i0 + rows;
            for (int r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;
            memset(O + i0 * D, 0, sizeof(float) * rows * D);
            for (int j0 = 0; j0 < kend; j0 += BC) {
                const int cols = imin(BC, kend - j0), off = i0 - j0;
                scores(Q + i0 * D, D, Kt + j0, ldt, S, rows, round16(cols), D, scale);
                memcpy(m_new, m, sizeof(float) * rows);
                row_max(S, rows, cols, off, m_new);
                exp_rows(S, rows, cols, off, m_new, rowsum);
                for (int r = 0; r < rows; r++) {  // the online-softmax update, once per tile
                    const float a = expf(m[r] - m_new[r]);
                    l[r] = a * l[r] + rowsum[r], m[r] = m_new[r];
                    for (int d = 0; d < D; d++) O[(i0 + r) * D + d] *= a;
                }
                accum(S, BC, 1, V + j0 * D, O + i0 * D, rows, cols, D);  // O += P V_j
            }
            for (int r = 0; r < rows; r++) {
                for (int d = 0; d < D; d++) O[(i0 + r) * D + d] /= l[r];
                lse[bh * T + i0 + r] = m[r] + logf(l[r]);
            }
        }
    }
}
#endif

int main(int argc, char** argv) {
#if X86
    if (HAS_AVX2()) return attention_main(argc, argv, __FILE__, attention_forward, NULL);
#endif
    return skipped(__FILE__, "this CPU has no AVX2/FMA");
}
