// Row-wise softmax forward/backward and fused softmax + cross-entropy. See pointwise.h.
//
// Every kernel is a loop over rows built from five row primitives, each written three times
// (scalar for float64/ARM/"scalar", AVX-512 and AVX2 for float32):
//   row_max(x)            max_j x_j
//   row_exp_sum(x, m, y)  y_j = exp(x_j - m), returns Σ_j y_j
//   row_scale(y, s)       y_j *= s
//   row_dot(a, b)         Σ_j a_j b_j
//   row_sub_mul(g, y, d)  dx_j = y_j (g_j - d)
// GCC 12 warns about `__m512 __Y = __Y;` inside its own avx512fintrin.h (a known false
// positive); must come before the first #include of <immintrin.h> to take effect.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "cpu/pointwise.h"

#include <type_traits>
#include <vector>

namespace nnlite {

// ------------------------------------------------------------------------------- scalar

template <typename T>
static T row_max_scalar(const T* x, int64_t n) {
    T m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = (x[j] > m || std::isnan(x[j])) ? x[j] : m;  // NaN wins, like np.max
    return m;
}
template <typename T>
static T row_exp_sum_scalar(const T* x, T m, T* y, int64_t n) {
    T s = 0;
    for (int64_t j = 0; j < n; j++) s += (y[j] = std::exp(x[j] - m));
    return s;
}
template <typename T>
static void row_scale_scalar(T* y, T s, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] *= s;
}
template <typename T>
static T row_dot_scalar(const T* a, const T* b, int64_t n) {
    T s = 0;
    for (int64_t j = 0; j < n; j++) s += a[j] * b[j];
    return s;
}
template <typename T>
static void row_sub_mul_scalar(const T* g, const T* y, T d, T* dx, int64_t n) {
    for (int64_t j = 0; j < n; j++) dx[j] = y[j] * (g[j] - d);
}

#if NNLITE_X86
// ------------------------------------------------------------------------------- AVX-512
// Tails use masked loads/stores; masked-off lanes load -inf for max and exp (exp(-inf) = 0
// adds nothing to the sum) and 0 for dot products.

NNLITE_TARGET_AVX512 static float row_max_avx512(const float* x, int64_t n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m = ninf;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + j));
    if (j < n) {
        const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, k, x + j));
    }
    // A NaN may be dropped here (MAXPS returns its second operand), but exp(NaN - m) then
    // makes the whole row NaN, as in the twin.
    return _mm512_reduce_max_ps(m);
}

NNLITE_TARGET_AVX512 static float row_exp_sum_avx512(const float* x, float m, float* y, int64_t n) {
    const __m512 vm = _mm512_set1_ps(m), ninf = _mm512_set1_ps(-INFINITY);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();  // two chains hide add latency
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 e0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        __m512 e1 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm));
        _mm512_storeu_ps(y + j, e0);
        _mm512_storeu_ps(y + j + 16, e1);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
    }
    for (; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, k, x + j), vm));
        _mm512_mask_storeu_ps(y + j, k, e);
        s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

NNLITE_TARGET_AVX512 static void row_scale_avx512(float* y, float s, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), vs));
    if (j < n) {
        const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), vs));
    }
}

NNLITE_TARGET_AVX512 static float row_dot_avx512(const float* a, const float* b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16), s1);
    }
    for (; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + j), _mm512_maskz_loadu_ps(k, b + j), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

NNLITE_TARGET_AVX512 static void row_sub_mul_avx512(const float* g, const float* y, float d,
                                                    float* dx, int64_t n) {
    const __m512 vd = _mm512_set1_ps(d);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dx + j, _mm512_mul_ps(_mm512_loadu_ps(y + j),
                                               _mm512_sub_ps(_mm512_loadu_ps(g + j), vd)));
    if (j < n) {
        const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(dx + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j),
                                                       _mm512_sub_ps(_mm512_maskz_loadu_ps(k, g + j), vd)));
    }
}

// ------------------------------------------------------------------------------- AVX2/FMA
// 8 lanes; tails go through maskload (masked lanes read 0) and a blend to -inf where needed.

NNLITE_TARGET_AVX2 static inline __m256i tail_mask(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

NNLITE_TARGET_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

NNLITE_TARGET_AVX2 static float row_max_avx2(const float* x, int64_t n) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
    if (j < n) {
        const __m256i k = tail_mask(n - j);
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + j, k), _mm256_castsi256_ps(k)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

NNLITE_TARGET_AVX2 static float row_exp_sum_avx2(const float* x, float m, float* y, int64_t n) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 e0 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        __m256 e1 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm));
        _mm256_storeu_ps(y + j, e0);
        _mm256_storeu_ps(y + j + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    for (; j < n; j += 8) {
        const __m256i k = tail_mask(n - j);
        const __m256 kf = _mm256_castsi256_ps(k);
        __m256 v = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x + j, k), kf);
        __m256 e = exp256(_mm256_sub_ps(v, vm));
        _mm256_maskstore_ps(y + j, k, e);
        s0 = _mm256_add_ps(s0, _mm256_and_ps(e, kf));
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

NNLITE_TARGET_AVX2 static void row_scale_avx2(float* y, float s, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), vs));
    if (j < n) {
        const __m256i k = tail_mask(n - j);
        _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_maskload_ps(y + j, k), vs));
    }
}

NNLITE_TARGET_AVX2 static float row_dot_avx2(const float* a, const float* b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    }
    for (; j < n; j += 8) {
        const __m256i k = tail_mask(n - j);
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + j, k), _mm256_maskload_ps(b + j, k), s0);
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

NNLITE_TARGET_AVX2 static void row_sub_mul_avx2(const float* g, const float* y, float d, float* dx,
                                                int64_t n) {
    const __m256 vd = _mm256_set1_ps(d);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dx + j, _mm256_mul_ps(_mm256_loadu_ps(y + j),
                                               _mm256_sub_ps(_mm256_loadu_ps(g + j), vd)));
    if (j < n) {
        const __m256i k = tail_mask(n - j);
        _mm256_maskstore_ps(dx + j, k, _mm256_mul_ps(_mm256_maskload_ps(y + j, k),
                                                     _mm256_sub_ps(_mm256_maskload_ps(g + j, k), vd)));
    }
}
#endif  // NNLITE_X86

// ------------------------------------------------------------------------------- dispatch

template <typename T>
struct RowOps {
    T (*max)(const T*, int64_t);
    T (*exp_sum)(const T*, T, T*, int64_t);
    void (*scale)(T*, T, int64_t);
    T (*dot)(const T*, const T*, int64_t);
    void (*sub_mul)(const T*, const T*, T, T*, int64_t);
};

template <typename T>
static RowOps<T> row_ops(Simd s) {
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        if (s == Simd::AVX512)
            return {row_max_avx512, row_exp_sum_avx512, row_scale_avx512, row_dot_avx512,
                    row_sub_mul_avx512};
        if (s == Simd::AVX2)
            return {row_max_avx2, row_exp_sum_avx2, row_scale_avx2, row_dot_avx2, row_sub_mul_avx2};
    }
#endif
    (void)s;
    return {row_max_scalar<T>, row_exp_sum_scalar<T>, row_scale_scalar<T>, row_dot_scalar<T>,
            row_sub_mul_scalar<T>};
}

// ------------------------------------------------------------------------------- kernels

// y = softmax(x) per row: y_j = exp(x_j - m) / Σ_k exp(x_k - m), m = max_k x_k (so no exp
// overflows). x, y (rows, C); three passes over a row that stays in L1/L2.
template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t C) {
    FtzScope ftz;
    if (rows == 0 || C == 0) return;
    const RowOps<T> ops = row_ops<T>(simd_path());
    parallel_range(rows, 8 * C, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            const T* xr = x + r * C;
            T* yr = y + r * C;
            const T m = ops.max(xr, C);
            const T s = ops.exp_sum(xr, m, yr, C);
            ops.scale(yr, T(1) / s, C);
        }
    });
}

// dx = y ⊙ (g - Σ_j g_j y_j) per row (the Jacobian-vector product of softmax). (rows, C).
template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t C) {
    FtzScope ftz;
    if (rows == 0 || C == 0) return;
    const RowOps<T> ops = row_ops<T>(simd_path());
    parallel_range(rows, 2 * C, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            const T d = ops.dot(g + r * C, y + r * C, C);
            ops.sub_mul(g + r * C, y + r * C, d, dx + r * C, C);
        }
    });
}

// Fused softmax + cross-entropy, one sweep per row n of z (N, C) with label t = labels[n]:
//   m = max z,  s = Σ exp(z - m),  -log p_t = log s - (z_t - m)       (log-sum-exp, in double)
//   dz = exp(z - m)/(s·N) - onehot(t)/N
// Returns the mean loss; per-row losses are summed in row order, so the result does not depend
// on the thread count. Labels are trusted to lie in [0, C) (the wrapper checks).
template <typename T>
double softmax_xent(const T* z, const int64_t* labels, T* dz, int64_t N, int64_t C) {
    FtzScope ftz;
    if (N == 0 || C == 0) return 0.0;
    const RowOps<T> ops = row_ops<T>(simd_path());
    std::vector<double> row_loss(static_cast<size_t>(N));
    const double invN = 1.0 / static_cast<double>(N);
    parallel_range(N, 8 * C, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            const T* zr = z + r * C;
            T* dr = dz + r * C;
            const int64_t t = labels[r];
            const T m = ops.max(zr, C);
            const T s = ops.exp_sum(zr, m, dr, C);
            row_loss[r] = std::log(static_cast<double>(s)) -
                          (static_cast<double>(zr[t]) - static_cast<double>(m));
            ops.scale(dr, static_cast<T>(invN / static_cast<double>(s)), C);
            dr[t] -= static_cast<T>(invN);
        }
    });
    double loss = 0.0;
    for (int64_t r = 0; r < N; r++) loss += row_loss[r];
    return loss * invN;
}

template void softmax_forward<float>(const float*, float*, int64_t, int64_t);
template void softmax_forward<double>(const double*, double*, int64_t, int64_t);
template void softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t);
template double softmax_xent<float>(const float*, const int64_t*, float*, int64_t, int64_t);
template double softmax_xent<double>(const double*, const int64_t*, double*, int64_t, int64_t);

}  // namespace nnlite
