// The SIMD toolbox every kernel family shares: one vector type per (element type, ISA), so a
// kernel is written once over `V` and compiled once per instruction set.
//
//   Vec<T, Isa>   T = float | double,  Isa = Scalar | Avx2 | Avx512
//     reg, W                      the register type and its lane count (Scalar: T, 1)
//     zero() set1(x) bcast(p)     0 · x in every lane · *p in every lane
//     load(p) store(p, v)         W lanes, unaligned
//     loadn(p, n) storen(p, v, n) the first min(n, W) lanes (n may be <= 0); lanes past them
//                                 read as 0 and are not written: the tail of every row
//     add sub mul div min max     lane-wise; min/max return the *second* operand when either
//                                 is NaN (MINPS/MAXPS), so `max(zero(), x)` keeps NaN
//     sqrt(a)                     lane-wise, correctly rounded (as div): same bits on every path
//     fmadd(a, b, c) = a·b + c    fnmadd(a, b, c) = c - a·b
//     abs(a)  neg(a)  copysign(mag, sgn)
//     gt(a, b) lt(a, b) -> mask   select(m, if_true, if_false)
//     lanes_below(n) -> mask      lane i < n (n may be <= 0 or > W): the tail of a row
//     hsum(v) hmax(v) -> T        horizontal sum / max of the W lanes
//     exp(v)                      float: Cephes expf, ~1 ulp, inf/0 beyond the range, NaN
//                                 stays NaN; double: std::exp per lane (float64 is the
//                                 accuracy path, not the fast one)
//
// How a kernel file uses it (see cpu/pointwise.cpp): the kernels live in a `.inc` file written
// over `V = simd::Vec<T, Isa>` for an ISA tag named `Isa`, including nothing itself; the `.cpp`
// has it compiled once per ISA, each copy in its own namespace (scalar::, avx2::, avx512::)
// and target region, and picks one at run time:
//
//     #define NNLITE_KERNELS "cpu/foo.inc"
//     #include "common/foreach_isa.h"          // scalar::foo, avx2::foo, avx512::foo
//     ... NNLITE_PICK(foo<T>)(args...);        // the one for simd_path()
//
// Why the re-include: GCC gives a function the target of the region it is *defined* in, and a
// template instantiated for AVX-512 must itself be compiled for AVX-512 so the intrinsics
// inline into it. No -march flag is used anywhere: one build runs on any x86-64 (or ARM) CPU.
#pragma once

// The one compiler pragma block. GCC 12 warns about `__m512 __Y = __Y;` inside its own
// avx512fintrin.h (a known false positive), and about the ABI of vector arguments of functions
// that never cross a translation unit. Must come before the first #include of <immintrin.h>.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/cpu.h"

// Target regions: every function defined between BEGIN and END is compiled for that ISA.
#if NNLITE_X86 && defined(__clang__)
#define NNLITE_TARGET_BEGIN_AVX2 \
    _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define NNLITE_TARGET_BEGIN_AVX512                                                            \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512dq,avx512bw,fma\"))), apply_to = function)")
#define NNLITE_TARGET_END _Pragma("clang attribute pop")
#elif NNLITE_X86 && defined(__GNUC__)
#define NNLITE_TARGET_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define NNLITE_TARGET_BEGIN_AVX512 \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512vl,avx512dq,avx512bw,fma\")")
#define NNLITE_TARGET_END _Pragma("GCC pop_options")
#else  // MSVC compiles every intrinsic without a target; non-x86 has no such regions
#define NNLITE_TARGET_BEGIN_AVX2
#define NNLITE_TARGET_BEGIN_AVX512
#define NNLITE_TARGET_END
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NNLITE_INLINE inline __attribute__((always_inline))
#else
#define NNLITE_INLINE __forceinline
#endif

namespace nnlite {
namespace simd {

struct Scalar {};
struct Avx2 {};
struct Avx512 {};

template <typename T, typename Isa>
struct Vec;

// Cephes expf constants: n = round(x·log2 e), r = x - n·ln2 (ln2 split in hi + lo so r is
// exact), exp(r) ≈ 1 + r + r²·P(r) with P of degree 5, exp(x) = 2ⁿ·exp(r).
struct ExpF {
    static constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f,
                           kLn2Lo = -2.12194440e-4f;
    static constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f,
                           kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                           kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
};

// ----------------------------------------------------------------------------- portable
// One lane: the definition every vector path must reproduce; also the ARM / float64 path.
template <typename T>
struct Vec<T, Scalar> {
    using reg = T;
    using mask = bool;
    static constexpr int W = 1;
    static NNLITE_INLINE reg zero() { return T(0); }
    static NNLITE_INLINE reg set1(T x) { return x; }
    static NNLITE_INLINE reg bcast(const T* p) { return *p; }
    static NNLITE_INLINE reg load(const T* p) { return *p; }
    static NNLITE_INLINE void store(T* p, reg v) { *p = v; }
    static NNLITE_INLINE reg loadn(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
    static NNLITE_INLINE void storen(T* p, reg v, int64_t n) { if (n > 0) *p = v; }
    static NNLITE_INLINE reg add(reg a, reg b) { return a + b; }
    static NNLITE_INLINE reg sub(reg a, reg b) { return a - b; }
    static NNLITE_INLINE reg mul(reg a, reg b) { return a * b; }
    static NNLITE_INLINE reg div(reg a, reg b) { return a / b; }
    static NNLITE_INLINE reg sqrt(reg a) { return std::sqrt(a); }
    static NNLITE_INLINE reg min(reg a, reg b) { return a < b ? a : b; }  // NaN -> b, as MINPS
    static NNLITE_INLINE reg max(reg a, reg b) { return a > b ? a : b; }  // NaN -> b, as MAXPS
    static NNLITE_INLINE reg fmadd(reg a, reg b, reg c) { return a * b + c; }
    static NNLITE_INLINE reg fnmadd(reg a, reg b, reg c) { return c - a * b; }
    static NNLITE_INLINE reg abs(reg a) { return std::fabs(a); }
    static NNLITE_INLINE reg neg(reg a) { return -a; }
    static NNLITE_INLINE reg copysign(reg mag, reg sgn) { return std::copysign(mag, sgn); }
    static NNLITE_INLINE mask gt(reg a, reg b) { return a > b; }
    static NNLITE_INLINE mask lt(reg a, reg b) { return a < b; }
    static NNLITE_INLINE reg select(mask m, reg t, reg f) { return m ? t : f; }
    static NNLITE_INLINE mask lanes_below(int64_t n) { return n > 0; }
    static NNLITE_INLINE T hsum(reg v) { return v; }
    static NNLITE_INLINE T hmax(reg v) { return v; }
    static NNLITE_INLINE reg exp(reg v) { return std::exp(v); }
};

}  // namespace simd
}  // namespace nnlite

#if NNLITE_X86
NNLITE_TARGET_BEGIN_AVX2
namespace nnlite {
namespace simd {

// --------------------------------------------------------------------------- AVX2 + FMA
// Tails: _mm256_maskload with the lane mask (lane i < n) from one comparison; storen writes the
// first n lanes as 4-, 2- and 1-lane pieces instead of _mm256_maskstore, which is microcoded on
// AMD Zen (about 8 cycles more per row tail on Zen 4; kernels store a tail once per row).
NNLITE_INLINE __m256i lanes_below8(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int k = int(std::max<int64_t>(0, std::min<int64_t>(n, 8)));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}
NNLITE_INLINE __m256i lanes_below4(int64_t n) {
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    const long long k = std::max<int64_t>(0, std::min<int64_t>(n, 4));
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), idx);
}

template <>
struct Vec<float, Avx2> {
    using reg = __m256;
    using mask = __m256;
    static constexpr int W = 8;
    static NNLITE_INLINE reg zero() { return _mm256_setzero_ps(); }
    static NNLITE_INLINE reg set1(float x) { return _mm256_set1_ps(x); }
    static NNLITE_INLINE reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
    static NNLITE_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
    static NNLITE_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
    static NNLITE_INLINE reg loadn(const float* p, int64_t n) {
        return _mm256_maskload_ps(p, lanes_below8(n));
    }
    static NNLITE_INLINE void storen(float* p, reg v, int64_t n) {
        if (n >= 8) {
            _mm256_storeu_ps(p, v);
            return;
        }
        __m128 h = _mm256_castps256_ps128(v);
        if (n <= 0) return;
        if (n & 4) {
            _mm_storeu_ps(p, h);
            p += 4;
            h = _mm256_extractf128_ps(v, 1);
        }
        if (n & 2) {
            _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
            p += 2;
            h = _mm_movehl_ps(h, h);
        }
        if (n & 1) _mm_store_ss(p, h);
    }
    static NNLITE_INLINE reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static NNLITE_INLINE reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
    static NNLITE_INLINE reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
    static NNLITE_INLINE reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
    static NNLITE_INLINE reg sqrt(reg a) { return _mm256_sqrt_ps(a); }
    static NNLITE_INLINE reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
    static NNLITE_INLINE reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
    static NNLITE_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static NNLITE_INLINE reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }
    static NNLITE_INLINE reg abs(reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    static NNLITE_INLINE reg neg(reg a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
    static NNLITE_INLINE reg copysign(reg mag, reg sgn) {
        const reg s = _mm256_set1_ps(-0.0f);
        return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
    }
    static NNLITE_INLINE mask gt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
    static NNLITE_INLINE mask lt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
    static NNLITE_INLINE reg select(mask m, reg t, reg f) { return _mm256_blendv_ps(f, t, m); }
    static NNLITE_INLINE mask lanes_below(int64_t n) {
        return _mm256_castsi256_ps(lanes_below8(n));
    }
    static NNLITE_INLINE float hsum(reg v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    }
    static NNLITE_INLINE float hmax(reg v) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
    }
    // 2ⁿ from exponent bits, as 2^(n/2)·2^(n - n/2) so n = 128 (x near ln FLT_MAX) still
    // fits; beyond the finite range the result is set to inf / 0 explicitly.
    static NNLITE_INLINE reg exp(reg x) {
        using K = ExpF;
        const reg hi = _mm256_set1_ps(88.7228394f), lo = _mm256_set1_ps(-87.3365479f);
        reg xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));   // x second: NaN stays NaN
        reg n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(K::kLog2e)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        reg r = _mm256_fnmadd_ps(n, _mm256_set1_ps(K::kLn2Hi), xc);
        r = _mm256_fnmadd_ps(n, _mm256_set1_ps(K::kLn2Lo), r);
        reg p = _mm256_set1_ps(K::kP0);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::kP1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::kP2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::kP3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::kP4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::kP5));
        p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
        __m256i ni = _mm256_cvtps_epi32(n);
        __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
        const __m256i bias = _mm256_set1_epi32(127);
        reg s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
        reg s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
        reg y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
        y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
        return _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    }
};

// The double specialisations repeat the float ones line for line with the _pd intrinsics (and
// half the lanes): intrinsic names differ by suffix, and a macro generating both would hide
// exactly the instruction a reader of this file is looking for. Kept parallel on purpose.
template <>
struct Vec<double, Avx2> {
    using reg = __m256d;
    using mask = __m256d;
    static constexpr int W = 4;
    static NNLITE_INLINE reg zero() { return _mm256_setzero_pd(); }
    static NNLITE_INLINE reg set1(double x) { return _mm256_set1_pd(x); }
    static NNLITE_INLINE reg bcast(const double* p) { return _mm256_broadcast_sd(p); }
    static NNLITE_INLINE reg load(const double* p) { return _mm256_loadu_pd(p); }
    static NNLITE_INLINE void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
    static NNLITE_INLINE reg loadn(const double* p, int64_t n) {
        return _mm256_maskload_pd(p, lanes_below4(n));
    }
    static NNLITE_INLINE void storen(double* p, reg v, int64_t n) {
        if (n >= 4) {
            _mm256_storeu_pd(p, v);
            return;
        }
        __m128d h = _mm256_castpd256_pd128(v);
        if (n <= 0) return;
        if (n & 2) {
            _mm_storeu_pd(p, h);
            p += 2;
            h = _mm256_extractf128_pd(v, 1);
        }
        if (n & 1) _mm_store_sd(p, h);
    }
    static NNLITE_INLINE reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
    static NNLITE_INLINE reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
    static NNLITE_INLINE reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
    static NNLITE_INLINE reg div(reg a, reg b) { return _mm256_div_pd(a, b); }
    static NNLITE_INLINE reg sqrt(reg a) { return _mm256_sqrt_pd(a); }
    static NNLITE_INLINE reg min(reg a, reg b) { return _mm256_min_pd(a, b); }
    static NNLITE_INLINE reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
    static NNLITE_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
    static NNLITE_INLINE reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_pd(a, b, c); }
    static NNLITE_INLINE reg abs(reg a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
    static NNLITE_INLINE reg neg(reg a) { return _mm256_xor_pd(a, _mm256_set1_pd(-0.0)); }
    static NNLITE_INLINE reg copysign(reg mag, reg sgn) {
        const reg s = _mm256_set1_pd(-0.0);
        return _mm256_or_pd(_mm256_andnot_pd(s, mag), _mm256_and_pd(s, sgn));
    }
    static NNLITE_INLINE mask gt(reg a, reg b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
    static NNLITE_INLINE mask lt(reg a, reg b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
    static NNLITE_INLINE reg select(mask m, reg t, reg f) { return _mm256_blendv_pd(f, t, m); }
    static NNLITE_INLINE mask lanes_below(int64_t n) {
        return _mm256_castsi256_pd(lanes_below4(n));
    }
    static NNLITE_INLINE double hsum(reg v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
    static NNLITE_INLINE double hmax(reg v) {
        __m128d s = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
    }
    static NNLITE_INLINE reg exp(reg x) {
        alignas(32) double t[4];
        _mm256_store_pd(t, x);
        for (double& e : t) e = std::exp(e);
        return _mm256_load_pd(t);
    }
};

}  // namespace simd
}  // namespace nnlite
NNLITE_TARGET_END

NNLITE_TARGET_BEGIN_AVX512
namespace nnlite {
namespace simd {

// ------------------------------------------------------------------------------ AVX-512
// Tails: one k-mask (lane i < n); masked loads read nothing past the mask, so a row's end
// needs no scalar loop.
NNLITE_INLINE __mmask16 lanes_below16(int64_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
NNLITE_INLINE __mmask8 lanes_below8k(int64_t n) {
    return n >= 8 ? __mmask8(0xFF) : n <= 0 ? __mmask8(0) : __mmask8((1u << n) - 1);
}

template <>
struct Vec<float, Avx512> {
    using reg = __m512;
    using mask = __mmask16;
    static constexpr int W = 16;
    static NNLITE_INLINE reg zero() { return _mm512_setzero_ps(); }
    static NNLITE_INLINE reg set1(float x) { return _mm512_set1_ps(x); }
    static NNLITE_INLINE reg bcast(const float* p) { return _mm512_set1_ps(*p); }
    static NNLITE_INLINE reg load(const float* p) { return _mm512_loadu_ps(p); }
    static NNLITE_INLINE void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
    static NNLITE_INLINE reg loadn(const float* p, int64_t n) {
        return _mm512_maskz_loadu_ps(lanes_below16(n), p);
    }
    static NNLITE_INLINE void storen(float* p, reg v, int64_t n) {
        _mm512_mask_storeu_ps(p, lanes_below16(n), v);
    }
    static NNLITE_INLINE reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static NNLITE_INLINE reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
    static NNLITE_INLINE reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static NNLITE_INLINE reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
    static NNLITE_INLINE reg sqrt(reg a) { return _mm512_sqrt_ps(a); }
    static NNLITE_INLINE reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
    static NNLITE_INLINE reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
    static NNLITE_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static NNLITE_INLINE reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }
    static NNLITE_INLINE reg abs(reg a) { return _mm512_abs_ps(a); }
    static NNLITE_INLINE reg neg(reg a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
    static NNLITE_INLINE reg copysign(reg mag, reg sgn) {
        const reg s = _mm512_set1_ps(-0.0f);
        return _mm512_or_ps(_mm512_andnot_ps(s, mag), _mm512_and_ps(s, sgn));
    }
    static NNLITE_INLINE mask gt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
    static NNLITE_INLINE mask lt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
    static NNLITE_INLINE reg select(mask m, reg t, reg f) { return _mm512_mask_blend_ps(m, f, t); }
    static NNLITE_INLINE mask lanes_below(int64_t n) { return lanes_below16(n); }
    static NNLITE_INLINE float hsum(reg v) { return _mm512_reduce_add_ps(v); }
    static NNLITE_INLINE float hmax(reg v) { return _mm512_reduce_max_ps(v); }
    // scalef(p, n) = p·2ⁿ handles overflow (→ inf) and underflow (→ 0) itself.
    static NNLITE_INLINE reg exp(reg x) {
        using K = ExpF;
        reg xc = _mm512_min_ps(_mm512_set1_ps(88.8f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
        reg n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(K::kLog2e)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        reg r = _mm512_fnmadd_ps(n, _mm512_set1_ps(K::kLn2Hi), xc);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(K::kLn2Lo), r);
        reg p = _mm512_set1_ps(K::kP0);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::kP1));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::kP2));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::kP3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::kP4));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::kP5));
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
        return _mm512_scalef_ps(p, n);
    }
};

// As for AVX2: the double twin of the float specialisation above, kept parallel on purpose.
template <>
struct Vec<double, Avx512> {
    using reg = __m512d;
    using mask = __mmask8;
    static constexpr int W = 8;
    static NNLITE_INLINE reg zero() { return _mm512_setzero_pd(); }
    static NNLITE_INLINE reg set1(double x) { return _mm512_set1_pd(x); }
    static NNLITE_INLINE reg bcast(const double* p) { return _mm512_set1_pd(*p); }
    static NNLITE_INLINE reg load(const double* p) { return _mm512_loadu_pd(p); }
    static NNLITE_INLINE void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
    static NNLITE_INLINE reg loadn(const double* p, int64_t n) {
        return _mm512_maskz_loadu_pd(lanes_below8k(n), p);
    }
    static NNLITE_INLINE void storen(double* p, reg v, int64_t n) {
        _mm512_mask_storeu_pd(p, lanes_below8k(n), v);
    }
    static NNLITE_INLINE reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
    static NNLITE_INLINE reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
    static NNLITE_INLINE reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
    static NNLITE_INLINE reg div(reg a, reg b) { return _mm512_div_pd(a, b); }
    static NNLITE_INLINE reg sqrt(reg a) { return _mm512_sqrt_pd(a); }
    static NNLITE_INLINE reg min(reg a, reg b) { return _mm512_min_pd(a, b); }
    static NNLITE_INLINE reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
    static NNLITE_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
    static NNLITE_INLINE reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_pd(a, b, c); }
    static NNLITE_INLINE reg abs(reg a) { return _mm512_abs_pd(a); }
    static NNLITE_INLINE reg neg(reg a) { return _mm512_xor_pd(a, _mm512_set1_pd(-0.0)); }
    static NNLITE_INLINE reg copysign(reg mag, reg sgn) {
        const reg s = _mm512_set1_pd(-0.0);
        return _mm512_or_pd(_mm512_andnot_pd(s, mag), _mm512_and_pd(s, sgn));
    }
    static NNLITE_INLINE mask gt(reg a, reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
    static NNLITE_INLINE mask lt(reg a, reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
    static NNLITE_INLINE reg select(mask m, reg t, reg f) { return _mm512_mask_blend_pd(m, f, t); }
    static NNLITE_INLINE mask lanes_below(int64_t n) { return lanes_below8k(n); }
    static NNLITE_INLINE double hsum(reg v) { return _mm512_reduce_add_pd(v); }
    static NNLITE_INLINE double hmax(reg v) { return _mm512_reduce_max_pd(v); }
    static NNLITE_INLINE reg exp(reg x) {
        alignas(64) double t[8];
        _mm512_store_pd(t, x);
        for (double& e : t) e = std::exp(e);
        return _mm512_load_pd(t);
    }
};

}  // namespace simd
}  // namespace nnlite
NNLITE_TARGET_END
#endif  // NNLITE_X86

namespace nnlite {

// The one run-time switch: the version of a kernel compiled for the current SIMD path.
//   NNLITE_PICK(bias_act_rows<T, A, B>)(x, b, y, ...)   picks scalar::, avx2:: or avx512::
// (a variadic macro so template arguments with commas pass through).
template <typename F>
NNLITE_INLINE F pick_isa(F scalar_fn, F avx2_fn, F avx512_fn) {
    switch (simd_path()) {
        case Simd::AVX512: return avx512_fn;
        case Simd::AVX2: return avx2_fn;
        default: return scalar_fn;
    }
}

}  // namespace nnlite

#if NNLITE_X86
#define NNLITE_PICK(...) ::nnlite::pick_isa(&scalar::__VA_ARGS__, &avx2::__VA_ARGS__, \
                                            &avx512::__VA_ARGS__)
#else
#define NNLITE_PICK(...) (&scalar::__VA_ARGS__)
#endif
