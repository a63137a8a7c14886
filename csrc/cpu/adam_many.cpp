// One Adam/AdamW step over many tensors in a single call (the optimizer's whole model).
//
//   g ← g + λ·p                        (Adam, λ ≠ 0: L2 added to the gradient)
//   p ← p·(1 - lr·λ)                   (AdamW, λ ≠ 0: decoupled decay)
//   m ← β₁·m + (1 - β₁)·g
//   v ← β₂·v + (1 - β₂)·g²
//   p ← p - lr·(m / (1 - β₁ᵗ)) / (√(v / (1 - β₂ᵗ)) + ε)
//
// λ is per tensor (GPT training decays matrices only). The arithmetic is the twin's
// (reference.adam_update), operation by operation in the arrays' dtype: no FMA contraction,
// true divisions and square roots (IEEE-exact in SIMD too), so float32 results agree with
// the twin and the Cython kernel to the last bit, FTZ aside.
//
// Parallelism: the tensors are laid end to end (N elements in all) and [0, N) is split evenly
// among the threads, so one big matrix and fifty small vectors balance the same way.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/nn.h"

// GCC (C++ mode) contracts a*b + c into an FMA even when it is written as separate mul and add
// intrinsics; one rounding instead of two would make the update differ from the twin's in the
// last bit. Keep every multiply and add separately rounded in this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace nnlite {

template <typename T>
struct AdamConst {
    T lr, b1, omb1, b2, omb2, eps, bc1, bc2;
};

// per-tensor decay settings, in T
template <typename T>
struct AdamDecay {
    T wd, decay;
    bool l2, dec;
};

template <typename T>
static void adam_chunk_scalar(T* p, const T* g, T* m, T* v, int64_t n, const AdamConst<T>& k,
                              const AdamDecay<T>& d) {
    for (int64_t i = 0; i < n; i++) {
        T pi = p[i], gi = g[i];
        if (d.l2) gi = gi + d.wd * pi;
        if (d.dec) pi = pi * d.decay;
        const T mi = m[i] * k.b1 + k.omb1 * gi;
        const T vi = v[i] * k.b2 + k.omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - k.lr * (mi / k.bc1) / (std::sqrt(vi / k.bc2) + k.eps);
    }
}

#if NNLITE_X86
NNLITE_TARGET_AVX512 static void adam_chunk_avx512(float* p, const float* g, float* m, float* v,
                                                   int64_t n, const AdamConst<float>& k,
                                                   const AdamDecay<float>& d) {
    const __m512 lr = _mm512_set1_ps(k.lr), b1 = _mm512_set1_ps(k.b1),
                 omb1 = _mm512_set1_ps(k.omb1), b2 = _mm512_set1_ps(k.b2),
                 omb2 = _mm512_set1_ps(k.omb2), eps = _mm512_set1_ps(k.eps),
                 bc1 = _mm512_set1_ps(k.bc1), bc2 = _mm512_set1_ps(k.bc2),
                 wd = _mm512_set1_ps(d.wd), decay = _mm512_set1_ps(d.decay);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 km = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        __m512 pv = _mm512_maskz_loadu_ps(km, p + i), gv = _mm512_maskz_loadu_ps(km, g + i);
        if (d.l2) gv = _mm512_add_ps(gv, _mm512_mul_ps(wd, pv));
        if (d.dec) pv = _mm512_mul_ps(pv, decay);
        const __m512 mv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(km, m + i), b1),
                                        _mm512_mul_ps(omb1, gv));
        const __m512 vv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(km, v + i), b2),
                                        _mm512_mul_ps(_mm512_mul_ps(omb2, gv), gv));
        _mm512_mask_storeu_ps(m + i, km, mv);
        _mm512_mask_storeu_ps(v + i, km, vv);
        const __m512 num = _mm512_mul_ps(lr, _mm512_div_ps(mv, bc1));
        const __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_div_ps(vv, bc2)), eps);
        _mm512_mask_storeu_ps(p + i, km, _mm512_sub_ps(pv, _mm512_div_ps(num, den)));
    }
}

NNLITE_TARGET_AVX2 static void adam_chunk_avx2(float* p, const float* g, float* m, float* v,
                                               int64_t n, const AdamConst<float>& k,
                                               const AdamDecay<float>& d) {
    const __m256 lr = _mm256_set1_ps(k.lr), b1 = _mm256_set1_ps(k.b1),
                 omb1 = _mm256_set1_ps(k.omb1), b2 = _mm256_set1_ps(k.b2),
                 omb2 = _mm256_set1_ps(k.omb2), eps = _mm256_set1_ps(k.eps),
                 bc1 = _mm256_set1_ps(k.bc1), bc2 = _mm256_set1_ps(k.bc2),
                 wd = _mm256_set1_ps(d.wd), decay = _mm256_set1_ps(d.decay);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pv = _mm256_loadu_ps(p + i), gv = _mm256_loadu_ps(g + i);
        if (d.l2) gv = _mm256_add_ps(gv, _mm256_mul_ps(wd, pv));
        if (d.dec) pv = _mm256_mul_ps(pv, decay);
        const __m256 mv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1),
                                        _mm256_mul_ps(omb1, gv));
        const __m256 vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                                        _mm256_mul_ps(_mm256_mul_ps(omb2, gv), gv));
        _mm256_storeu_ps(m + i, mv);
        _mm256_storeu_ps(v + i, vv);
        const __m256 num = _mm256_mul_ps(lr, _mm256_div_ps(mv, bc1));
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vv, bc2)), eps);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pv, _mm256_div_ps(num, den)));
    }
    adam_chunk_scalar<float>(p + i, g + i, m + i, v + i, n - i, k, d);
}
#endif

template <typename T>
void adam_many(std::vector<AdamTensor<T>>& ts, double lr, double beta1, double beta2,
               double eps, int64_t step, bool decoupled) {
    FtzScope ftz;
    using Chunk = void (*)(T*, const T*, T*, T*, int64_t, const AdamConst<T>&, const AdamDecay<T>&);
    Chunk chunk = adam_chunk_scalar<T>;
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        if (simd_path() == Simd::AVX512) chunk = adam_chunk_avx512;
        else if (simd_path() == Simd::AVX2) chunk = adam_chunk_avx2;
    }
#endif
    const double st = double(step);
    const AdamConst<T> k{T(lr), T(beta1), T(1.0 - beta1), T(beta2), T(1.0 - beta2), T(eps),
                         T(1.0 - std::pow(beta1, st)), T(1.0 - std::pow(beta2, st))};
    const size_t nt = ts.size();
    std::vector<AdamDecay<T>> dk(nt);
    std::vector<int64_t> start(nt + 1, 0);   // tensor i covers [start[i], start[i+1])
    for (size_t i = 0; i < nt; i++) {
        const double wd = ts[i].weight_decay;
        dk[i] = {T(wd), T(1.0 - lr * wd), wd != 0.0 && !decoupled, wd != 0.0 && decoupled};
        start[i + 1] = start[i] + ts[i].n;
    }
    parallel_range(start[nt], 4, [&](int64_t lo, int64_t hi) {
        // first tensor ending after lo
        size_t i = size_t(std::upper_bound(start.begin(), start.end(), lo) - start.begin()) - 1;
        for (; i < nt && start[i] < hi; i++) {
            const int64_t a = std::max(lo, start[i]) - start[i];
            const int64_t b = std::min(hi, start[i + 1]) - start[i];
            if (a >= b) continue;
            const AdamTensor<T>& t = ts[i];
            chunk(t.p + a, t.g + a, t.m + a, t.v + a, b - a, k, dk[i]);
        }
    });
}

template void adam_many<float>(std::vector<AdamTensor<float>>&, double, double, double, double,
                               int64_t, bool);
template void adam_many<double>(std::vector<AdamTensor<double>>&, double, double, double, double,
                                int64_t, bool);

}  // namespace nnlite
