// Transformer kernels: LayerNorm, token embedding, many-tensor Adam/AdamW.
// Legend (llm.c): B batch, T time, C channels, V vocab; "rows" = B·T; dout = ∂loss/∂out, the
// upstream gradient of a backward.
//
//   layernorm_forward   y = (x - μ)·rstd·γ + β per row; caches mean, rstd (rows,)
//   layernorm_backward  dx (one pass per row; + residual, the skip path's gradient, if given),
//                       dγ += Σ dout·x̂, dβ += Σ dout over rows
//                       (per-thread partial sums, reduced in thread order: deterministic)
//   embedding_forward   out[r, :] = table[ids[r], :]                 (gather, memcpy)
//   embedding_backward  dtable[ids[r], :] += dout[r, :] in r order    (threads own columns:
//                       no races, and each element sums in the same order as np.add.at)
//   sum_squares_many    Σ x² over a list of tensors, in double (the squared global norm of
//                       the gradients); the same bits for any thread count
//   adam_many           one Adam/AdamW step over a list of tensors (OpenMP over the total
//                       element count, ranges cut across tensor boundaries); one tensor is
//                       a list of one
//
// All take C-contiguous arrays (the Python wrapper, nnlite/ops/native_nn.py, makes them so).
// The row kernels (cpu/*.inc) are written once over simd::Vec and compiled for every path;
// simd_path() picks one at run time, for float32 and float64 alike. Every kernel and every
// parallel region opens an FtzScope.
#pragma once
#include <cstdint>
#include <vector>

#include "common/cpu.h"

namespace nnlite {

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t C, double eps);
template <typename T>
void layernorm_backward(const T* dout, const T* x, const T* gamma, const T* mean,
                        const T* rstd, T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t C,
                        const T* residual = nullptr);
template <typename T>
void embedding_forward(const int64_t* ids, const T* table, T* out, int64_t rows, int64_t C);
template <typename T>
void embedding_backward(const int64_t* ids, const T* dout, T* dtable, int64_t rows, int64_t C);

// One tensor of an adam_many call: flat, C-contiguous, n elements each.
template <typename T>
struct AdamTensor {
    T* p;
    const T* g;
    T* m;
    T* v;
    int64_t n;
    double weight_decay;
};
template <typename T>
double sum_squares_many(const std::vector<const T*>& xs, const std::vector<int64_t>& ns);
template <typename T>
void adam_many(std::vector<AdamTensor<T>>& ts, double lr, double beta1, double beta2, double eps,
               int64_t step, bool decoupled);

}  // namespace nnlite
