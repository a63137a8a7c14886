// pointwise.h: the launchers of pointwise_kernels.cuh (plain C++; see csrc/cuda/README.md):
// bias + activation forward and backward, the bias gradient, softmax forward and backward, and
// the fused softmax + cross-entropy. Pointers are device pointers to C-contiguous arrays in the
// launcher's dtype (`_f32`: float, `_f64`: double); sizes are element counts.
//
//   bias_act          y = act(x + b)              x, y (rows, C); b (C,), or nullptr: y = act(x)
//   act_backward      dx = g · act'(x)            g, x, y = act(x), dx (n,)
//   bias_grad         out (+)= Σ_r g[r, :]        g (rows, C), out (C,)
//   softmax           y = softmax(x) per row      x, y (rows, C)
//   softmax_backward  dx = y ⊙ (g - Σ_j g_j y_j)  g, y, dx (rows, C)
//   softmax_xent      row_loss[n] = -log softmax(z_n)[t_n],  loss[0] = Σ_n row_loss[n] / N,
//                     dz = (softmax(z) - onehot(t)) / N;   z, dz (N, C), t (N,) int64 in [0, C),
//                     row_loss (N,) and loss (1,) double (scratch and result, the caller's)
//
// `row_threads` (softmax family) picks the threads that share a row: 0 lets the launcher choose
// (a warp per row for rows up to kWarpRowMax values, else a block per row), 32 forces a warp per
// row, a larger multiple of 32 (at most 1024) forces a block of that many threads per row. The
// tests use it to run both paths on every row length.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;

// Activation codes: the same numbers as csrc/cpu/pointwise.h's nnlite::Act
// (nnlite.ops.cuda_pointwise reads them from the binding's pointwise_act_codes()).
enum class PwAct : int { None = 0, Relu = 1, LeakyRelu = 2, Tanh = 3, Sigmoid = 4, Gelu = 5 };

// rows of at most this many values get a warp each; longer rows a block each
constexpr int64_t kWarpRowMax = 256;
// bias_grad: g with more rows than this gets 32 threads per column (blocks of 1024), else 8
constexpr int64_t kBiasGradTall = 256;

void bias_act_f32(const float* x, const float* b, float* y, int64_t rows, int64_t C, int act,
                  float alpha, Stream stream);
void bias_act_f64(const double* x, const double* b, double* y, int64_t rows, int64_t C, int act,
                  double alpha, Stream stream);

void act_backward_f32(const float* g, const float* x, const float* y, float* dx, int64_t n,
                      int act, float alpha, Stream stream);
void act_backward_f64(const double* g, const double* x, const double* y, double* dx, int64_t n,
                      int act, double alpha, Stream stream);

void bias_grad_f32(const float* g, float* out, int64_t rows, int64_t C, bool accumulate,
                   Stream stream);
void bias_grad_f64(const double* g, double* out, int64_t rows, int64_t C, bool accumulate,
                   Stream stream);

void softmax_f32(const float* x, float* y, int64_t rows, int64_t C, int row_threads,
                 Stream stream);
void softmax_f64(const double* x, double* y, int64_t rows, int64_t C, int row_threads,
                 Stream stream);

void softmax_backward_f32(const float* g, const float* y, float* dx, int64_t rows, int64_t C,
                          int row_threads, Stream stream);
void softmax_backward_f64(const double* g, const double* y, double* dx, int64_t rows, int64_t C,
                          int row_threads, Stream stream);

void softmax_xent_f32(const float* z, const int64_t* labels, float* dz, double* row_loss,
                      double* loss, int64_t N, int64_t C, int row_threads, Stream stream);
void softmax_xent_f64(const double* z, const int64_t* labels, double* dz, double* row_loss,
                      double* loss, int64_t N, int64_t C, int row_threads, Stream stream);

}  // namespace nnl::cuda
