// Activations: y = act(x + b) forward, dx = g · act'(x) backward. See pointwise.h.
//
// Each activation exists three times, side by side: the scalar formula (float64, ARM, the
// "scalar" path; the numpy twin's math, except gelu and gelu' which use the equivalent
// sigmoid form for accuracy), and 16-lane AVX-512 / 8-lane AVX2 versions for float32. A row function applies one activation to a contiguous run of elements; the kernel
// picks it once (act × SIMD path × bias or not), so there is no switch inside the loops.
// GCC 12 warns about `__m512 __Y = __Y;` inside its own avx512fintrin.h (a known false
// positive); must come before the first #include of <immintrin.h> to take effect.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "cpu/pointwise.h"

#include <type_traits>

namespace nnlite {

// ------------------------------------------------------------------------------- scalar

// act(v): none | relu | leaky_relu | tanh | sigmoid | gelu (tanh approximation, GPT-2):
//   sigmoid(v) = 1/(1+e^-v) for v ≥ 0, e^v/(1+e^v) for v < 0 (e^-|v| never overflows)
//   gelu(v)    = ½·v·(1 + tanh(√(2/π)·(v + c·v³))),  c = 0.044715  (computed as v·sigmoid(2u))
template <typename T, Act A>
static inline T act_scalar(T v, T alpha) {
    if constexpr (A == Act::None) {
        return v;
    } else if constexpr (A == Act::Relu) {
        return v > T(0) ? v : (std::isnan(v) ? v : T(0));  // like np.maximum: NaN stays NaN
    } else if constexpr (A == Act::LeakyRelu) {
        return v > T(0) ? v : v * alpha;
    } else if constexpr (A == Act::Tanh) {
        return std::tanh(v);
    } else if constexpr (A == Act::Sigmoid) {
        T e = std::exp(-std::abs(v));
        return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    } else {
        // ½v(1 + tanh u) = v·sigmoid(2u): no cancellation in 1 + tanh u for v < 0, and
        // e^-2u = inf gives -0 rather than NaN
        T u = T(kSqrt2OverPi) * (v + T(kGeluC) * (v * v * v));
        return v / (T(1) + std::exp(T(-2) * u));
    }
}

// g · act'(x), using the forward output y where that is cheaper:
//   relu: x > 0 · leaky: x > 0 ? 1 : α · tanh: 1 - y² · sigmoid: y(1 - y)
//   gelu: ½(1 + th) + ½x(1 - th²)·√(2/π)(1 + 3c x²),  th = tanh(u), u = √(2/π)(x + c x³)
template <typename T, Act A>
static inline T dact_scalar(T g, T x, T y, T alpha) {
    if constexpr (A == Act::None) {
        return g;
    } else if constexpr (A == Act::Relu) {
        return g * (x > T(0) ? T(1) : T(0));  // g·0, not 0: inf/NaN gradients stay visible
    } else if constexpr (A == Act::LeakyRelu) {
        return g * (x > T(0) ? T(1) : alpha);
    } else if constexpr (A == Act::Tanh) {
        return g * (T(1) - y * y);
    } else if constexpr (A == Act::Sigmoid) {
        return g * y * (T(1) - y);
    } else {
        // with s = sigmoid(2u): ½(1 + th) = s and 1 - th² = 4s(1 - s), which keeps float32
        // accurate where th → ±1 (the twin's form loses ~1e-6 absolute there)
        T u = T(kSqrt2OverPi) * (x + T(kGeluC) * (x * x * x));
        T s = T(1) / (T(1) + std::exp(T(-2) * u));
        T d = s + T(2 * kSqrt2OverPi) * x * (s * (T(1) - s)) * (T(1) + T(3 * kGeluC) * x * x);
        return g * d;
    }
}

template <typename T, Act A, bool B>
static void bias_act_row_scalar(const T* x, const T* b, T* y, int64_t n, T alpha) {
    for (int64_t i = 0; i < n; i++) y[i] = act_scalar<T, A>(B ? x[i] + b[i] : x[i], alpha);
}

template <typename T, Act A>
static void act_backward_row_scalar(const T* g, const T* x, const T* y, T* dx, int64_t n, T alpha) {
    for (int64_t i = 0; i < n; i++) dx[i] = dact_scalar<T, A>(g[i], x[i], y[i], alpha);
}

#if NNLITE_X86
// ------------------------------------------------------------------------------- AVX-512
// Vector forms of the same math, rewritten so nothing overflows to NaN for large |v|:
//   sigmoid(v) = 1/(1 + e^-v)           e^-v = inf → 0, e^-v = 0 → 1
//   tanh(u)    = sign(u)·(1 - 2/(e^2|u| + 1)) for |u| ≥ 0.25, else the Taylor series
//                u - u³/3 + 2u⁵/15 - 17u⁷/315 + 62u⁹/2835 (error < 1e-8 relative there), which
//                avoids the cancellation of 1 - 2/(...) near 0
//   gelu(v)    = v·sigmoid(2u) = v / (1 + e^-2u)   (since ½(1 + tanh u) = sigmoid(2u)); more
//                accurate than ½v(1 + tanh u) for negative v, and e^-2u = inf gives -0, not NaN
//   gelu'(v)   = s + 2v·s(1 - s)·√(2/π)(1 + 3c v²),  s = sigmoid(2u)  (1 - th² = 4s(1 - s))
#define NNLITE_TANH_TAYLOR_CONSTS                                                      \
    const float kT9 = 62.0f / 2835.0f, kT7 = -17.0f / 315.0f, kT5 = 2.0f / 15.0f,     \
                kT3 = -1.0f / 3.0f

NNLITE_TARGET_AVX512 static inline __m512 tanh512(__m512 v) {
    NNLITE_TANH_TAYLOR_CONSTS;
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 a = _mm512_andnot_ps(sign, v);
    __m512 w = _mm512_mul_ps(v, v);
    __m512 p = _mm512_fmadd_ps(w, _mm512_set1_ps(kT9), _mm512_set1_ps(kT7));
    p = _mm512_fmadd_ps(p, w, _mm512_set1_ps(kT5));
    p = _mm512_fmadd_ps(p, w, _mm512_set1_ps(kT3));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, w), v, v);
    __m512 e = exp512(_mm512_add_ps(a, a));
    __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    big = _mm512_or_ps(big, _mm512_and_ps(v, sign));
    __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(is_small, big, small);
}

// e^(-2u) for gelu: -2u = -2√(2/π)·v·(1 + c v²)
NNLITE_TARGET_AVX512 static inline __m512 gelu_exp512(__m512 v) {
    __m512 t = _mm512_fmadd_ps(_mm512_mul_ps(v, v), _mm512_set1_ps(float(kGeluC)),
                               _mm512_set1_ps(1.0f));
    return exp512(_mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(float(-2 * kSqrt2OverPi))));
}

template <Act A>
NNLITE_TARGET_AVX512 static inline __m512 act512(__m512 v, __m512 alpha) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    if constexpr (A == Act::None) {
        return v;
    } else if constexpr (A == Act::Relu) {
        return _mm512_max_ps(zero, v);  // v second: MAXPS returns it when NaN
    } else if constexpr (A == Act::LeakyRelu) {
        __mmask16 pos = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
        return _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, alpha), v);
    } else if constexpr (A == Act::Tanh) {
        return tanh512(v);
    } else if constexpr (A == Act::Sigmoid) {
        return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(zero, v))));
    } else {
        return _mm512_div_ps(v, _mm512_add_ps(one, gelu_exp512(v)));
    }
}

template <Act A>
NNLITE_TARGET_AVX512 static inline __m512 dact512(__m512 g, __m512 x, __m512 y, __m512 alpha) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    if constexpr (A == Act::None) {
        return g;
    } else if constexpr (A == Act::Relu) {
        __mmask16 pos = _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ);
        return _mm512_mul_ps(g, _mm512_maskz_mov_ps(pos, one));
    } else if constexpr (A == Act::LeakyRelu) {
        __mmask16 pos = _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ);
        return _mm512_mul_ps(g, _mm512_mask_blend_ps(pos, alpha, one));
    } else if constexpr (A == Act::Tanh) {
        return _mm512_mul_ps(g, _mm512_fnmadd_ps(y, y, one));
    } else if constexpr (A == Act::Sigmoid) {
        return _mm512_mul_ps(_mm512_mul_ps(g, y), _mm512_sub_ps(one, y));
    } else {
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, gelu_exp512(x)));
        __m512 poly = _mm512_fmadd_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(float(3 * kGeluC)), one);
        __m512 t = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(float(2 * kSqrt2OverPi))),
                                 _mm512_mul_ps(s, _mm512_sub_ps(one, s)));
        return _mm512_mul_ps(g, _mm512_fmadd_ps(t, poly, s));
    }
}

template <Act A, bool B>
NNLITE_TARGET_AVX512 static void bias_act_row_avx512(const float* x, const float* b, float* y,
                                                     int64_t n, float alpha) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        if constexpr (B) v = _mm512_add_ps(v, _mm512_loadu_ps(b + i));
        _mm512_storeu_ps(y + i, act512<A>(v, va));
    }
    if (i < n) {  // masked tail: lanes past n are neither read nor written
        const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        if constexpr (B) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
        _mm512_mask_storeu_ps(y + i, k, act512<A>(v, va));
    }
}

template <Act A>
NNLITE_TARGET_AVX512 static void act_backward_row_avx512(const float* g, const float* x,
                                                         const float* y, float* dx, int64_t n,
                                                         float alpha) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dx + i, dact512<A>(_mm512_loadu_ps(g + i), _mm512_loadu_ps(x + i),
                                            _mm512_loadu_ps(y + i), va));
    if (i < n) {
        const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dx + i, k,
                              dact512<A>(_mm512_maskz_loadu_ps(k, g + i),
                                         _mm512_maskz_loadu_ps(k, x + i),
                                         _mm512_maskz_loadu_ps(k, y + i), va));
    }
}

// ------------------------------------------------------------------------------- AVX2/FMA
// The AVX-512 code with 8 lanes; masks are integer vectors, blends are blendv.

NNLITE_TARGET_AVX2 static inline __m256 tanh256(__m256 v) {
    NNLITE_TANH_TAYLOR_CONSTS;
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, v);
    __m256 w = _mm256_mul_ps(v, v);
    __m256 p = _mm256_fmadd_ps(w, _mm256_set1_ps(kT9), _mm256_set1_ps(kT7));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(kT5));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(kT3));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, w), v, v);
    __m256 e = exp256(_mm256_add_ps(a, a));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    big = _mm256_or_ps(big, _mm256_and_ps(v, sign));
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ));
}
#undef NNLITE_TANH_TAYLOR_CONSTS

NNLITE_TARGET_AVX2 static inline __m256 gelu_exp256(__m256 v) {
    __m256 t = _mm256_fmadd_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(float(kGeluC)),
                               _mm256_set1_ps(1.0f));
    return exp256(_mm256_mul_ps(_mm256_mul_ps(v, t), _mm256_set1_ps(float(-2 * kSqrt2OverPi))));
}

template <Act A>
NNLITE_TARGET_AVX2 static inline __m256 act256(__m256 v, __m256 alpha) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    if constexpr (A == Act::None) {
        return v;
    } else if constexpr (A == Act::Relu) {
        return _mm256_max_ps(zero, v);
    } else if constexpr (A == Act::LeakyRelu) {
        return _mm256_blendv_ps(_mm256_mul_ps(v, alpha), v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ));
    } else if constexpr (A == Act::Tanh) {
        return tanh256(v);
    } else if constexpr (A == Act::Sigmoid) {
        return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, v))));
    } else {
        return _mm256_div_ps(v, _mm256_add_ps(one, gelu_exp256(v)));
    }
}

template <Act A>
NNLITE_TARGET_AVX2 static inline __m256 dact256(__m256 g, __m256 x, __m256 y, __m256 alpha) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    if constexpr (A == Act::None) {
        return g;
    } else if constexpr (A == Act::Relu) {
        return _mm256_mul_ps(g, _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one));
    } else if constexpr (A == Act::LeakyRelu) {
        return _mm256_mul_ps(g, _mm256_blendv_ps(alpha, one, _mm256_cmp_ps(x, zero, _CMP_GT_OQ)));
    } else if constexpr (A == Act::Tanh) {
        return _mm256_mul_ps(g, _mm256_fnmadd_ps(y, y, one));
    } else if constexpr (A == Act::Sigmoid) {
        return _mm256_mul_ps(_mm256_mul_ps(g, y), _mm256_sub_ps(one, y));
    } else {
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, gelu_exp256(x)));
        __m256 poly = _mm256_fmadd_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(float(3 * kGeluC)), one);
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(float(2 * kSqrt2OverPi))),
                                 _mm256_mul_ps(s, _mm256_sub_ps(one, s)));
        return _mm256_mul_ps(g, _mm256_fmadd_ps(t, poly, s));
    }
}

// lanes [0, r) set: the mask for maskload/maskstore (masked lanes read as 0, are not written)
NNLITE_TARGET_AVX2 static inline __m256i tail_mask256(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <Act A, bool B>
NNLITE_TARGET_AVX2 static void bias_act_row_avx2(const float* x, const float* b, float* y,
                                                 int64_t n, float alpha) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if constexpr (B) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, act256<A>(v, va));
    }
    if (i < n) {
        const __m256i k = tail_mask256(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k);
        if constexpr (B) v = _mm256_add_ps(v, _mm256_maskload_ps(b + i, k));
        _mm256_maskstore_ps(y + i, k, act256<A>(v, va));
    }
}

template <Act A>
NNLITE_TARGET_AVX2 static void act_backward_row_avx2(const float* g, const float* x,
                                                     const float* y, float* dx, int64_t n,
                                                     float alpha) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, dact256<A>(_mm256_loadu_ps(g + i), _mm256_loadu_ps(x + i),
                                            _mm256_loadu_ps(y + i), va));
    if (i < n) {
        const __m256i k = tail_mask256(n - i);
        _mm256_maskstore_ps(dx + i, k,
                            dact256<A>(_mm256_maskload_ps(g + i, k), _mm256_maskload_ps(x + i, k),
                                       _mm256_maskload_ps(y + i, k), va));
    }
}
#endif  // NNLITE_X86

// ------------------------------------------------------------------------------- dispatch

template <typename T>
using ActRowFn = void (*)(const T*, const T*, T*, int64_t, T);
template <typename T>
using DActRowFn = void (*)(const T*, const T*, const T*, T*, int64_t, T);

template <typename T, Act A, bool B>
static ActRowFn<T> pick_act_row(Simd s) {
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        if (s == Simd::AVX512) return bias_act_row_avx512<A, B>;
        if (s == Simd::AVX2) return bias_act_row_avx2<A, B>;
    }
#endif
    (void)s;
    return bias_act_row_scalar<T, A, B>;
}

template <typename T, Act A>
static DActRowFn<T> pick_dact_row(Simd s) {
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        if (s == Simd::AVX512) return act_backward_row_avx512<A>;
        if (s == Simd::AVX2) return act_backward_row_avx2<A>;
    }
#endif
    (void)s;
    return act_backward_row_scalar<T, A>;
}

template <typename T, bool B>
static ActRowFn<T> act_row_for(Act a, Simd s) {
    switch (a) {
        case Act::Relu: return pick_act_row<T, Act::Relu, B>(s);
        case Act::LeakyRelu: return pick_act_row<T, Act::LeakyRelu, B>(s);
        case Act::Tanh: return pick_act_row<T, Act::Tanh, B>(s);
        case Act::Sigmoid: return pick_act_row<T, Act::Sigmoid, B>(s);
        case Act::Gelu: return pick_act_row<T, Act::Gelu, B>(s);
        default: return pick_act_row<T, Act::None, B>(s);
    }
}

template <typename T>
static DActRowFn<T> dact_row_for(Act a, Simd s) {
    switch (a) {
        case Act::Relu: return pick_dact_row<T, Act::Relu>(s);
        case Act::LeakyRelu: return pick_dact_row<T, Act::LeakyRelu>(s);
        case Act::Tanh: return pick_dact_row<T, Act::Tanh>(s);
        case Act::Sigmoid: return pick_dact_row<T, Act::Sigmoid>(s);
        case Act::Gelu: return pick_dact_row<T, Act::Gelu>(s);
        default: return pick_dact_row<T, Act::None>(s);
    }
}

// exp-based activations cost ~10x a load-add-store; weigh them so small tanh/gelu calls can
// still go parallel
static int64_t act_cost(Act a) { return a >= Act::Tanh ? 8 : 1; }

// ------------------------------------------------------------------------------- kernels

// y = act(x + b): x, y (rows, F) row-major, b (F,) or nullptr (no bias: act_forward).
// y may be x (in place): every element is read before it is written, by the same lane.
// The flat range [0, rows·F) is split across threads; each piece walks its row segments so
// b stays aligned with the column (this also parallelises a single long row).
template <typename T>
void bias_act(const T* x, const T* b, T* y, int64_t rows, int64_t F, Act act, T alpha) {
    FtzScope ftz;
    const int64_t n = rows * F;
    if (n == 0) return;
    const Simd s = simd_path();
    if (!b) {
        ActRowFn<T> fn = act_row_for<T, false>(act, s);
        parallel_range(n, act_cost(act),
                       [&](int64_t lo, int64_t hi) { fn(x + lo, nullptr, y + lo, hi - lo, alpha); });
        return;
    }
    ActRowFn<T> fn = act_row_for<T, true>(act, s);
    parallel_range(n, act_cost(act), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi;) {
            const int64_t col = p % F, len = std::min(F - col, hi - p);
            fn(x + p, b + col, y + p, len, alpha);
            p += len;
        }
    });
}

// dx = g · act'(x) (with y = act(x) where cheaper); all (n,) flat.
template <typename T>
void act_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, Act act, T alpha) {
    FtzScope ftz;
    if (n == 0) return;
    DActRowFn<T> fn = dact_row_for<T>(act, simd_path());
    parallel_range(n, act_cost(act), [&](int64_t lo, int64_t hi) {
        fn(g + lo, x + lo, y + lo, dx + lo, hi - lo, alpha);
    });
}

template void bias_act<float>(const float*, const float*, float*, int64_t, int64_t, Act, float);
template void bias_act<double>(const double*, const double*, double*, int64_t, int64_t, Act,
                               double);
template void act_backward<float>(const float*, const float*, const float*, float*, int64_t, Act,
                                  float);
template void act_backward<double>(const double*, const double*, const double*, double*, int64_t,
                                   Act, double);

}  // namespace nnlite
