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
// L1. dγ/dβ: fixed row chunks, each with its own partial sum, added in chunk order (see
// layernorm_backward), so results do not depend on the number of threads.
#include <algorithm>
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

// dγ/dβ are sums over rows: the rows are cut into kChunks-or-fewer pieces whose size depends on
// the row count alone, each piece sums its rows into its own (2, C) partial sum, and the partial
// sums are added in piece order. Which thread ran a piece does not matter, so the bits do not
// depend on the thread count. Pieces of at least kChunkMinRows rows keep the final adds (at
// most 1/kChunkMinRows of the main pass) and the partial buffers small.
constexpr int64_t kChunks = 16, kChunkMinRows = 64;

template <typename T>
void layernorm_backward(const T* dout, const T* x, const T* gamma, const T* mean,
                        const T* rstd, T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t C,
                        const T* residual) {
    FtzScope ftz;
    const auto row = NNLITE_PICK(layernorm_backward_row<T>);
    const int64_t nchunk = std::max<int64_t>(1, std::min(kChunks, rows / kChunkMinRows));
    // part[c] = (dγ, dβ) partial sums of chunk c (rows [rows·c/nchunk, rows·(c+1)/nchunk)):
    // allocated here, before any parallel region (see common/cpu.h)
    std::vector<T> part(size_t(nchunk) * 2 * C, T(0));
    auto run = [&](int64_t c0, int64_t c1) {   // chunks [c0, c1)
        for (int64_t c = c0; c < c1; c++) {
            T* dg = part.data() + size_t(c) * 2 * C;
            for (int64_t i = rows * c / nchunk, hi = rows * (c + 1) / nchunk; i < hi; i++)
                row(dout + i * C, x + i * C, gamma, mean[i], rstd[i], dx + i * C, dg, dg + C, C,
                    residual ? residual + i * C : nullptr);
        }
    };
    parallel_range(nchunk, rows / nchunk * C * 8, run);
    std::copy(part.data(), part.data() + C, dgamma);   // chunk 0, then the others in order
    std::copy(part.data() + C, part.data() + 2 * C, dbeta);
    for (int64_t c = 1; c < nchunk; c++) {
        const T* pg = part.data() + size_t(c) * 2 * C;
        for (int64_t j = 0; j < C; j++) dgamma[j] += pg[j];
        for (int64_t j = 0; j < C; j++) dbeta[j] += pg[C + j];
    }
}

template void layernorm_forward<float>(const float*, const float*, const float*, float*, float*,
                                       float*, int64_t, int64_t, double);
template void layernorm_forward<double>(const double*, const double*, const double*, double*,
                                        double*, double*, int64_t, int64_t, double);
template void layernorm_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, int64_t, int64_t,
                                        const float*);
template void layernorm_backward<double>(const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t, const double*);

}  // namespace nnlite
