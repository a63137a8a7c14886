// Pointwise, softmax and cross-entropy kernels: declarations and the pieces both .cpp files share
// (vectorised exp, the OpenMP range splitter).
//
// All kernels take C-contiguous arrays (the Python wrapper makes them so), work in the array's
// own dtype (float or double), flush subnormals (FtzScope) and run in parallel only when the
// work is big enough to pay for waking the OpenMP threads.
//
//   bias_act        y = act(x + b)            x, y (rows, F), b (F,) or nullptr (act_forward)
//   act_backward    dx = g · act'(x)          g, x, y, dx (n,)
//   softmax_forward y = softmax(x) per row    x, y (rows, C)
//   softmax_backward dx = y ⊙ (g - Σ g·y)     g, y, dx (rows, C)
//   softmax_xent    Σ_n -log softmax(z_n)[t_n] / N, dz = (softmax(z) - onehot(t)) / N
//
// float32 has AVX-512 and AVX2/FMA paths picked at run time by simd_path(); float64 (and every
// CPU without them) runs the portable scalar loops, which call std::exp / std::tanh.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/cpu.h"

namespace nnlite {

enum class Act : int { None = 0, Relu = 1, LeakyRelu = 2, Tanh = 3, Sigmoid = 4, Gelu = 5 };

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluC = 0.044715;
// Below this many scalar operations a kernel runs on the calling thread: waking the pool costs
// a few microseconds, about what 32k simple float ops take on one core.

template <typename T>
void bias_act(const T* x, const T* b, T* y, int64_t rows, int64_t F, Act act, T alpha);
template <typename T>
void act_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, Act act, T alpha);
template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t C);
template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t C);
template <typename T>
double softmax_xent(const T* z, const int64_t* labels, T* dz, int64_t N, int64_t C);


#if NNLITE_X86

// exp(x) for 8/16 floats, ~1 ulp (Cephes expf polynomial):
//   n = round(x·log2 e),  r = x - n·ln2  (ln2 split in hi + lo so r is exact),  |r| ≤ ln2/2
//   exp(r) ≈ 1 + r + r²·P(r)  (degree-5 P),   exp(x) = 2ⁿ · exp(r)
// The clamps keep n where 2ⁿ can be built; min/max take x as the *second* operand because
// MAXPS/MINPS return the second operand when either is NaN, so NaN goes through as NaN.
#define NNLITE_EXP_CONSTS                                                     \
    const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f,         \
                kLn2Lo = -2.12194440e-4f, kP0 = 1.9875691500e-4f,             \
                kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,               \
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f

// AVX-512: scalef(p, n) = p·2ⁿ handles overflow (→ inf) and underflow (→ 0) itself.
NNLITE_TARGET_AVX512 static inline __m512 exp512(__m512 x) {
    NNLITE_EXP_CONSTS;
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(88.8f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
    __m512 p = _mm512_set1_ps(kP0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// AVX2: 2ⁿ is built from exponent bits, as 2^(n/2)·2^(n - n/2) so n = 128 (x near ln FLT_MAX)
// still fits; beyond the finite range the result is set to inf / 0 explicitly.
NNLITE_TARGET_AVX2 static inline __m256 exp256(__m256 x) {
    NNLITE_EXP_CONSTS;
    const __m256 hi = _mm256_set1_ps(88.7228394f), lo = _mm256_set1_ps(-87.3365479f);
    __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kP0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    return y;
}
#undef NNLITE_EXP_CONSTS
#endif  // NNLITE_X86

}  // namespace nnlite
