// LayerNorm over the last axis, forward and backward (llm.c's layernorm_forward/backward).
//
//   forward   μ = mean(x),  σ² = mean((x - μ)²),  rstd = 1/√(σ² + ε)
//             y = (x - μ)·rstd·γ + β                 caches μ, rstd (rows,), not x̂
//   backward  x̂ = (x - μ)·rstd,  dx̂ = dout ⊙ γ          x̂ recomputed from the cache
//             dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂ ⊙ x̂))
//             dγ = Σ_rows dout ⊙ x̂,  dβ = Σ_rows dout
// dout is the upstream gradient ∂loss/∂y.
//
// The row kernels are in layernorm.inc, written once over simd::Vec and compiled per ISA (both
// dtypes on every path); this file runs them over the rows. Each row is read twice in the
// forward (two-pass variance: no cancellation) and twice in the backward (sums, then dx), from
// L1. dγ/dβ: every thread sums its own rows into a private (2, C) buffer; the buffers are then
// added in thread order, so results are deterministic.
#include <cmath>
#include <vector>

#include "cpu/nn.h"

#define NNLITE_KERNELS "cpu/layernorm.inc"
#include "common/foreach_isa.h"

namespace nnlite {

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t C, double eps) {
    FtzScope ftz;
    const auto row = NNLITE_PICK(layernorm_forward_row<T>);
    const T e = T(eps);
    parallel_range(rows, 4 * C, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; i++)
            row(x + i * C, gamma, beta, y + i * C, mean + i, rstd + i, C, e);
    });
}

template <typename T>
void layernorm_backward(const T* dout, const T* x, const T* gamma, const T* mean,
                        const T* rstd, T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t C) {
    FtzScope ftz;
    const auto row = NNLITE_PICK(layernorm_backward_row<T>);
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
            row(dout + i * C, x + i * C, gamma, mean[i], rstd[i], dx + i * C, dg, dg + C, C);
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
