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
// true divisions and square roots (IEEE-exact in SIMD too), so results agree with the twin to
// the last bit, FTZ aside, on every SIMD path and in both dtypes.
//
// Parallelism: the tensors are laid end to end (N elements in all) and [0, N) is split evenly
// among the threads, so one big matrix and fifty small vectors balance the same way.
// A single tensor (ops.adam_update) is the same call with a list of one.
//
// The element kernel is in adam_many.inc, written once over simd::Vec and compiled per ISA
// (both dtypes on every path).
#include <algorithm>
#include <cmath>

#include "cpu/nn.h"

// GCC (C++ mode) contracts a*b + c into an FMA even when it is written as separate mul and add
// intrinsics; one rounding instead of two would make the update differ from the twin's in the
// last bit. Keep every multiply and add separately rounded in this file (only this one: FMA is
// what the other kernels want). Set before the kernels are instantiated below.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace nnlite {

// The step's constants, in T: lr, β₁, 1 - β₁, β₂, 1 - β₂, ε, 1 - β₁ᵗ, 1 - β₂ᵗ
template <typename T>
struct AdamConst {
    T lr, b1, omb1, b2, omb2, eps, bc1, bc2;
};

// One tensor's weight decay, in T: λ, 1 - lr·λ, and which of the two forms applies
template <typename T>
struct AdamDecay {
    T wd, decay;
    bool l2, dec;
};

}  // namespace nnlite

#define NNLITE_KERNELS "cpu/adam_many.inc"
#include "common/foreach_isa.h"

namespace nnlite {

template <typename T>
void adam_many(std::vector<AdamTensor<T>>& ts, double lr, double beta1, double beta2,
               double eps, int64_t step, bool decoupled) {
    FtzScope ftz;
    const auto range = NNLITE_PICK(adam_range<T>);
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
            range(t.p + a, t.g + a, t.m + a, t.v + a, b - a, k, dk[i]);
        }
    });
}

template void adam_many<float>(std::vector<AdamTensor<float>>&, double, double, double, double,
                               int64_t, bool);
template void adam_many<double>(std::vector<AdamTensor<double>>&, double, double, double, double,
                                int64_t, bool);

}  // namespace nnlite
