// Pointwise, softmax and cross-entropy kernels: the declarations, and what pointwise.cpp,
// softmax.cpp and their .inc files share (the activation codes and constants).
//
// All kernels take C-contiguous arrays (the Python wrapper makes them so), work in the array's
// own dtype (float or double), flush subnormals (FtzScope) and run in parallel only when the
// work is big enough to pay for waking the OpenMP threads.
//
//   bias_act         y = act(x + b)            x, y (rows, F), b (F,) or nullptr (act_forward)
//   act_backward     dx = dout · act'(x)       dout, x, y, dx (n,)
//   act_backward_bias_grad                     dout, x, y, dx (rows, C), db (C,)
//                    dx = dout · act'(x),  db (+)= Σ_rows dx   in one pass over the data
//   softmax_forward  y = softmax(x) per row    x, y (rows, C)
//   softmax_backward dx = y ⊙ (dout - Σ dout·y)   dout, y, dx (rows, C)
//   softmax_xent     Σ_n -log softmax(z_n)[t_n] / N, dz = (softmax(z) - onehot(t)) / N
//   dropout          y = x · [u_i >= t] · scale, u_i = SplitMix64(seed, i + 1) >> 32   x, y (n,)
//
// Legend: dout = the upstream gradient (∂loss/∂y), dx/dz = the gradient these kernels return.
// The math is written once (pointwise.inc, softmax.inc) over simd::Vec, compiled per ISA, and
// run on the path simd_path() picks (AVX-512, AVX2/FMA or scalar) in both dtypes. float64 keeps
// libm's accuracy, which its numpy twins are compared with: its exp and tanh are std::exp and
// std::tanh lane by lane (Vec<double>::exp, tanh_v), only the arithmetic around them is vector.
#pragma once
#include <cstdint>

#include "common/simd.h"  // first: its pragma block must precede <immintrin.h>

namespace nnlite {

enum class Act : int { None = 0, Relu = 1, LeakyRelu = 2, Tanh = 3, Sigmoid = 4, Gelu = 5 };

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluC = 0.044715;

// Work of one element, for parallel_range: the exp-based activations cost ~10x a
// load-add-store, so small tanh/gelu calls can still go parallel.
constexpr int64_t act_cost(Act a) { return a >= Act::Tanh ? 8 : 1; }

// Dropout's counter-based mask (see nnlite/ops/reference.py: dropout): SplitMix64's
// increment (the golden ratio · 2⁶⁴) and its two mixing multipliers.
constexpr uint64_t kDropoutGamma = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kDropoutMix1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kDropoutMix2 = 0x94D049BB133111EBull;

template <typename T>
void bias_act(const T* x, const T* b, T* y, int64_t rows, int64_t F, Act act, T alpha);
template <typename T>
void act_backward(const T* dout, const T* x, const T* y, T* dx, int64_t n, Act act, T alpha);
template <typename T>
void act_backward_bias_grad(const T* dout, const T* x, const T* y, T* dx, T* db, int64_t rows,
                            int64_t C, Act act, T alpha, bool accumulate);
template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t C);
template <typename T>
void softmax_backward(const T* dout, const T* y, T* dx, int64_t rows, int64_t C);
template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, T scale);
template <typename T>
double softmax_xent(const T* z, const int64_t* labels, T* dz, int64_t N, int64_t C);

}  // namespace nnlite
