/*
Attention step 6: the backward, from the saved log-sum-exp (FlashAttention-2, Dao 2023).

Given dO = ∂loss/∂out, for each head (P the softmax of step 0, never stored):

    Δ_i = Σ_d dO[i,d] O[i,d]                  (= Σ_j P[i,j] dP[i,j], from O instead of P)
    for each key tile j:                      dK_j, dV_j accumulate in place
      for each query tile i >= j (causal: the tiles above the diagonal are skipped again)
        S = scale · Q_i K_jᵀ;  P = exp(S - lse_i)       P rebuilt from the forward's lse:
        dV_j += Pᵀ dO_i                                 one exp, no max, no sum
        dP = dO_i V_jᵀ;  dS = scale · P ⊙ (dP - Δ_i)
        dQ_i += dS K_j;  dK_j += dSᵀ Q_i

Five small matrix products per tile pair (the forward has two), all with step 4's routines:
scores() for the two products into a tile (Q Kᵀ and dO Vᵀ, Kᵀ and Vᵀ transposed once per head),
accum() for the three out of one (its strides read Pᵀ and dSᵀ without a transpose). Storing P
in the forward would cost B·H·T² floats; recomputing it costs one Q Kᵀ per tile pair.
Threads: one task per head, dynamic schedule; each task owns its head's dq, dk, dv, so no two
threads ever write the same element. The forward is step 5's, unchanged. As csrc/attention.cpp.

Standalone on purpose: the code this step shares with 05_threads.c is repeated, not included, so each
file reads (and compiles) alone; `diff 05_threads.c 06_backward.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/attention/06_backward 4 8 256 32   (times forward and backward)
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

// dP[r*BC + c] = scale · P[r*BC + c] (dP[r*BC + c] - delta[r])   for c < cols (any; rows are BC)
AVX2 static void ds_rows(const float* P, float* dP, int rows, int cols, const float* delta,
                         float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    for (int r = 0; r < rows; r++) {
        const __m256 dr = _mm256_set1_ps(delta[r]);
        for (int c = 0; c < cols; c += 8) {
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(P + r * BC + c), vs);
            const __m256 g = _mm256_sub_ps(_mm256_loadu_ps(dP + r * BC + c), dr);
            _mm256_storeu_ps(dP + r * BC + c, _mm256_mul_ps(p, g));
        }
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

// One task: query tile [i0, i0 + rows) of one head (Q, K, V, O, L: that head's arrays).
static void forward_tile(const float* Q, const float* K, const float* V, float* O, float* L,
                         int T, int D, int i0, float* Kt, float* S, float* stats) {
    const float scale = 1.0f / sqrtf((float)D);
    const int rows = imin(BR, T - i0), kend = i0 + rows, ldt = round16(kend);
    float *m = stats, *m_new = m + BR, *l = m + 2 * BR, *rowsum = m + 3 * BR;
    for (int d = 0; d < D; d++)  // Kᵀ of the keys this tile sees, zero-padded to ldt
        for (int j = 0; j < ldt; j++) Kt[d * ldt + j] = j < kend ? K[j * D + d] : 0.0f;
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
        L[i0 + r] = m[r] + logf(l[r]);
    }
}

static void attention_forward(const float* q, const float* k, const float* v, float* out,
                              float* lse, int BH, int T, int D) {
    const int nq = (T + BR - 1) / BR;
#pragma omp parallel
    {
        float *Kt = floats((size_t)D * round16(T)), *S = floats(BR * BC), *stats = floats(4 * BR);
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < BH * nq; t++) {
            const int bh = t / nq, i0 = (nq - 1 - t % nq) * BR;  // the biggest tiles first
            const size_t o = (size_t)bh * T * D;
            forward_tile(q + o, k + o, v + o, out + o, lse + bh * T, T, D, i0, Kt, S, stats);
        }
        free(Kt), free(S), free(stats);
    }
}
// One head (Q ... dV: that head's (T, D) arrays, L its lse): dQ, dK, dV written by this task only.
static void backward_head(const float* Q, const float* K, const float* V, const float* O,
                          const float* dO, const float* L, float* dQ, float* dK, float* dV,
                          int T, int D, float* Kt, float* Vt, float* S, float* dP,
                          float* delta) {
    const float scale = 1.0f / sqrtf((float)D);
    const int ldt = round16(T);
    memset(dQ, 0, sizeof(float) * T * D);
    memset(dK, 0, sizeof(float) * T * D);
    memset(dV, 0, sizeof(float) * T * D);
    for (int i = 0; i < T; i++) {  // Δ_i = Σ_d dO[i,d] O[i,d]
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += dO[i * D + d] * O[i * D + d];
        delta[i] = s;
    }
    for (int d = 0; d < D; d++)  // Kᵀ and Vᵀ, zero-padded to ldt
        for (int j = 0; j < ldt; j++) {
            Kt[d * ldt + j] = j < T ? K[j * D + d] : 0.0f;
            Vt[d * ldt + j] = j < T ? V[j * D + d] : 0.0f;
        }
    for (int j0 = 0; j0 < T; j0 += BC) {
        const int cols = imin(BC, T - j0), ncp = round16(cols);
        for (int i0 = j0; i0 < T; i0 += BR) {  // query tiles at or below the diagonal
            const int rows = imin(BR, T - i0), off = i0 - j0;
            scores(Q + i0 * D, D, Kt + j0, ldt, S, rows, ncp, D, scale);     // S
            exp_rows(S, rows, cols, off, L + i0, NULL);                       // P
            accum(S, 1, BC, dO + i0 * D, dV + j0 * D, cols, rows, D);        // dV += Pᵀ dO
            scores(dO + i0 * D, D, Vt + j0, ldt, dP, rows, ncp, D, 1.0f);    // dP = dO Vᵀ
            ds_rows(S, dP, rows, cols, delta + i0, scale);                    // dS · scale
            accum(dP, BC, 1, K + j0 * D, dQ + i0 * D, rows, cols, D);        // dQ += dS K
            accum(dP, 1, BC, Q + i0 * D, dK + j0 * D, cols, rows, D);        // dK += dSᵀ Q
        }
    }
}

static void attention_backward(const float* q, const float* k, const float* v, const float* out,
                               const float* dout, const float* lse, float* dq, float* dk,
                               float* dv, int BH, int T, int D) {
#pragma omp parallel
    {
        float *Kt = floats((size_t)D * round16(T)), *Vt = floats((size_t)D * round16(T));
        float *S = floats(BR * BC), *dP = floats(BR * BC), *delta = floats(T);
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) {
            const size_t o = (size_t)bh * T * D;
            backward_head(q + o, k + o, v + o, out + o, dout + o, lse + bh * T, dq + o, dk + o,
                          dv + o, T, D, Kt, Vt, S, dP, delta);
        }
        free(Kt), free(Vt), free(S), free(dP), free(delta);
    }
}
#endif

int main(int argc, char** argv) {
#if X86
    if (HAS_AVX2())
        return attention_main(argc, argv, __FILE__, attention_forward, attention_backward);
#endif
    return skipped(__FILE__, "this CPU has no AVX2/FMA");
}
