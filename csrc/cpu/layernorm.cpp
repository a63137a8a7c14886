// LayerNorm over the last axis, forward and backward (llm.c's layernorm_forward/backward).
//
//   forward   μ = mean(x),  σ² = mean((x - μ)²),  rstd = 1/√(σ² + ε)
//             y = (x - μ)·rstd·γ + β                 caches μ, rstd (rows,), not x̂
//   backward  x̂ = (x - μ)·rstd,  dx̂ = g ⊙ γ           (recomputed from the cache)
//             dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂ ⊙ x̂))
//             dγ = Σ_rows g ⊙ x̂,  dβ = Σ_rows g
//
// Each row is read twice in the forward (two-pass variance: no cancellation) and twice in the
// backward (sums, then dx), from L1. dγ/dβ: every thread sums its own rows into a private
// (2, C) buffer; the buffers are then added in thread order, so results are deterministic.
//
// Row kernels exist three times: scalar (float64, ARM, forced "scalar"), AVX-512 and AVX2/FMA
// (float32). Arithmetic order follows the numpy twin: (x - μ)·rstd·γ + β.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/nn.h"

namespace nnlite {

// ------------------------------------------------------------------------------- scalar

template <typename T>
static void ln_fwd_row_scalar(const T* x, const T* ga, const T* be, T* y, T* mean, T* rstd,
                              int64_t C, T eps) {
    T s = 0;
    for (int64_t j = 0; j < C; j++) s += x[j];
    const T m = s / T(C);
    T ss = 0;
    for (int64_t j = 0; j < C; j++) ss += (x[j] - m) * (x[j] - m);
    const T r = T(1) / std::sqrt(ss / T(C) + eps);
    for (int64_t j = 0; j < C; j++) y[j] = (x[j] - m) * r * ga[j] + be[j];
    *mean = m;
    *rstd = r;
}

template <typename T>
static void ln_bwd_row_scalar(const T* g, const T* x, const T* ga, T m, T r, T* dx, T* dgam,
                              T* dbet, int64_t C) {
    T s1 = 0, s2 = 0;
    for (int64_t j = 0; j < C; j++) {
        const T xh = (x[j] - m) * r, dxh = g[j] * ga[j];
        s1 += dxh;
        s2 += dxh * xh;
        dgam[j] += g[j] * xh;
        dbet[j] += g[j];
    }
    s1 /= T(C);
    s2 /= T(C);
    for (int64_t j = 0; j < C; j++) {
        const T xh = (x[j] - m) * r, dxh = g[j] * ga[j];
        dx[j] = r * (dxh - s1 - xh * s2);
    }
}

#if NNLITE_X86
// ------------------------------------------------------------------------------- AVX-512
// Tails: masked loads give 0 in the unused lanes; maskz_sub keeps them 0 after "- μ".

NNLITE_TARGET_AVX512 static inline __mmask16 mask16(int64_t r) {
    return r >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << r) - 1);
}

NNLITE_TARGET_AVX512 static void ln_fwd_row_avx512(const float* x, const float* ga,
                                                   const float* be, float* y, float* mean,
                                                   float* rstd, int64_t C, float eps) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= C; j += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + j));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + j + 16));
    }
    for (; j < C; j += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(mask16(C - j), x + j));
    const float m = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / float(C);
    const __m512 vm = _mm512_set1_ps(m);
    s0 = _mm512_setzero_ps();
    s1 = _mm512_setzero_ps();
    for (j = 0; j + 32 <= C; j += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; j < C; j += 16) {
        const __mmask16 k = mask16(C - j);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + j), vm);
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    const float r = 1.0f / std::sqrt(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / float(C) + eps);
    const __m512 vr = _mm512_set1_ps(r);
    for (j = 0; j < C; j += 16) {
        const __mmask16 k = mask16(C - j);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm), vr);
        __m512 yv = _mm512_add_ps(_mm512_mul_ps(xh, _mm512_maskz_loadu_ps(k, ga + j)),
                                  _mm512_maskz_loadu_ps(k, be + j));
        _mm512_mask_storeu_ps(y + j, k, yv);
    }
    *mean = m;
    *rstd = r;
}

NNLITE_TARGET_AVX512 static void ln_bwd_row_avx512(const float* g, const float* x,
                                                   const float* ga, float m, float r, float* dx,
                                                   float* dgam, float* dbet, int64_t C) {
    const __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r);
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
    for (int64_t j = 0; j < C; j += 16) {
        const __mmask16 k = mask16(C - j);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + j);
        const __m512 xh = _mm512_maskz_mul_ps(k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm), vr);
        const __m512 dxh = _mm512_mul_ps(gv, _mm512_maskz_loadu_ps(k, ga + j));
        s1 = _mm512_add_ps(s1, dxh);
        s2 = _mm512_fmadd_ps(dxh, xh, s2);
        _mm512_mask_storeu_ps(dgam + j, k, _mm512_fmadd_ps(gv, xh, _mm512_maskz_loadu_ps(k, dgam + j)));
        _mm512_mask_storeu_ps(dbet + j, k, _mm512_add_ps(gv, _mm512_maskz_loadu_ps(k, dbet + j)));
    }
    const __m512 a = _mm512_set1_ps(_mm512_reduce_add_ps(s1) / float(C));
    const __m512 b = _mm512_set1_ps(_mm512_reduce_add_ps(s2) / float(C));
    for (int64_t j = 0; j < C; j += 16) {
        const __mmask16 k = mask16(C - j);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm), vr);
        const __m512 dxh = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + j), _mm512_maskz_loadu_ps(k, ga + j));
        const __m512 d = _mm512_fnmadd_ps(xh, b, _mm512_sub_ps(dxh, a));   // dx̂ - a - x̂·b
        _mm512_mask_storeu_ps(dx + j, k, _mm512_mul_ps(vr, d));
    }
}

// ------------------------------------------------------------------------------- AVX2/FMA
// 8 lanes; the tail (< 8 elements) runs the scalar code on the same partial sums.

NNLITE_TARGET_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

NNLITE_TARGET_AVX2 static void ln_fwd_row_avx2(const float* x, const float* ga, const float* be,
                                               float* y, float* mean, float* rstd, int64_t C,
                                               float eps) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= C; j += 16) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + j));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + j + 8));
    }
    for (; j + 8 <= C; j += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + j));
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; j < C; j++) s += x[j];
    const float m = s / float(C);
    const __m256 vm = _mm256_set1_ps(m);
    s0 = _mm256_setzero_ps();
    s1 = _mm256_setzero_ps();
    for (j = 0; j + 16 <= C; j += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm);
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; j + 8 <= C; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float ss = hsum8(_mm256_add_ps(s0, s1));
    for (; j < C; j++) ss += (x[j] - m) * (x[j] - m);
    const float r = 1.0f / std::sqrt(ss / float(C) + eps);
    const __m256 vr = _mm256_set1_ps(r);
    for (j = 0; j + 8 <= C; j += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
        _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_mul_ps(xh, _mm256_loadu_ps(ga + j)),
                                              _mm256_loadu_ps(be + j)));
    }
    for (; j < C; j++) y[j] = (x[j] - m) * r * ga[j] + be[j];
    *mean = m;
    *rstd = r;
}

NNLITE_TARGET_AVX2 static void ln_bwd_row_avx2(const float* g, const float* x, const float* ga,
                                               float m, float r, float* dx, float* dgam,
                                               float* dbet, int64_t C) {
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
    __m256 v1 = _mm256_setzero_ps(), v2 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= C; j += 8) {
        const __m256 gv = _mm256_loadu_ps(g + j);
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
        const __m256 dxh = _mm256_mul_ps(gv, _mm256_loadu_ps(ga + j));
        v1 = _mm256_add_ps(v1, dxh);
        v2 = _mm256_fmadd_ps(dxh, xh, v2);
        _mm256_storeu_ps(dgam + j, _mm256_fmadd_ps(gv, xh, _mm256_loadu_ps(dgam + j)));
        _mm256_storeu_ps(dbet + j, _mm256_add_ps(gv, _mm256_loadu_ps(dbet + j)));
    }
    float s1 = hsum8(v1), s2 = hsum8(v2);
    for (int64_t i = j; i < C; i++) {
        const float xh = (x[i] - m) * r, dxh = g[i] * ga[i];
        s1 += dxh;
        s2 += dxh * xh;
        dgam[i] += g[i] * xh;
        dbet[i] += g[i];
    }
    s1 /= float(C);
    s2 /= float(C);
    const __m256 a = _mm256_set1_ps(s1), b = _mm256_set1_ps(s2);
    for (j = 0; j + 8 <= C; j += 8) {
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
        const __m256 dxh = _mm256_mul_ps(_mm256_loadu_ps(g + j), _mm256_loadu_ps(ga + j));
        const __m256 d = _mm256_fnmadd_ps(xh, b, _mm256_sub_ps(dxh, a));
        _mm256_storeu_ps(dx + j, _mm256_mul_ps(vr, d));
    }
    for (; j < C; j++) {
        const float xh = (x[j] - m) * r, dxh = g[j] * ga[j];
        dx[j] = r * (dxh - s1 - xh * s2);
    }
}
#endif  // NNLITE_X86

// ------------------------------------------------------------------------------- drivers

template <typename T>
using LnFwdRow = void (*)(const T*, const T*, const T*, T*, T*, T*, int64_t, T);
template <typename T>
using LnBwdRow = void (*)(const T*, const T*, const T*, T, T, T*, T*, T*, int64_t);

template <typename T>
static LnFwdRow<T> pick_fwd() {
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        switch (simd_path()) {
            case Simd::AVX512: return ln_fwd_row_avx512;
            case Simd::AVX2: return ln_fwd_row_avx2;
            default: break;
        }
    }
#endif
    return ln_fwd_row_scalar<T>;
}

template <typename T>
static LnBwdRow<T> pick_bwd() {
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        switch (simd_path()) {
            case Simd::AVX512: return ln_bwd_row_avx512;
            case Simd::AVX2: return ln_bwd_row_avx2;
            default: break;
        }
    }
#endif
    return ln_bwd_row_scalar<T>;
}

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t C, double eps) {
    FtzScope ftz;
    const LnFwdRow<T> row = pick_fwd<T>();
    const T e = T(eps);
    parallel_range(rows, 4 * C, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; i++)
            row(x + i * C, gamma, beta, y + i * C, mean + i, rstd + i, C, e);
    });
}

template <typename T>
void layernorm_backward(const T* g, const T* x, const T* gamma, const T* mean, const T* rstd,
                        T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t C) {
    FtzScope ftz;
    const LnBwdRow<T> row = pick_bwd<T>();
    int nt = 1;
#ifdef NNLITE_OPENMP
    const bool par = rows > 1 && rows * C * 8 > kOmpMinWork && num_threads() > 1;
    if (par) nt = num_threads();
#endif
    // part[t] = (dγ, dβ) partial sums of thread t: 2·C each
    std::vector<T> part(size_t(nt) * 2 * C, T(0));
    auto run = [&](int t, int64_t lo, int64_t hi) {
        T* dg = part.data() + size_t(t) * 2 * C;
        for (int64_t i = lo; i < hi; i++)
            row(g + i * C, x + i * C, gamma, mean[i], rstd[i], dx + i * C, dg, dg + C, C);
    };
#ifdef NNLITE_OPENMP
    if (par) {
#pragma omp parallel num_threads(nt)
        {
            FtzScope ftz_thread;
            const int64_t n = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t lo = rows * t / n, hi = rows * (t + 1) / n;
            if (lo < hi) run(int(t), lo, hi);
        }
    } else
#endif
        run(0, 0, rows);
    for (int64_t j = 0; j < C; j++) {
        T sg = 0, sb = 0;
        for (int t = 0; t < nt; t++) {
            sg += part[size_t(t) * 2 * C + j];
            sb += part[size_t(t) * 2 * C + C + j];
        }
        dgamma[j] = sg;
        dbeta[j] = sb;
    }
}

template void layernorm_forward<float>(const float*, const float*, const float*, float*, float*,
                                       float*, int64_t, int64_t, double);
template void layernorm_forward<double>(const double*, const double*, const double*, double*,
                                        double*, double*, int64_t, int64_t, double);
template void layernorm_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, int64_t, int64_t);
template void layernorm_backward<double>(const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t);

}  // namespace nnlite
