// Convolution, pooling and BatchNorm kernels, NCHW, float32 and float64. See conv.cpp.
// Legend: N batch, C input channels, H, W input size, O output channels, G groups, KH, KW kernel
// size, Ho, Wo output size, L = Ho·Wo; s stride, p padding, d dilation (h: rows, w: columns);
// dout = ∂loss/∂out, the upstream gradient of a backward.
#pragma once
#include <cstdint>

#include "common/cpu.h"

namespace nnlite {

// Sizes of one convolution (or pooling: O = C, G = 1); the Python side checked them all.
struct ConvGeom {
    int64_t N, C, H, W, O, G, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo;
};

// y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C/G, KH, KW)) + b (O,) (b may be null)
template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g);
// dx (N, C, H, W) = ∂loss/∂x from dout (N, O, Ho, Wo) (also the transposed convolution)
template <typename T>
void conv2d_input_grad(const T* dout, const T* w, T* dx, const ConvGeom& g);
// dw (O, C/G, KH, KW) = Σ_n dout[n] @ im2col(x[n])ᵀ;  db (O,) = Σ dout (db may be null)
template <typename T>
void conv2d_weight_grad(const T* dout, const T* x, T* dw, T* db, const ConvGeom& g);

// Winograd F(2x2, 3x3) for the 3 x 3 stride-1 forward and input gradient (float32; see
// conv.cpp): on unless NNLITE_WINOGRAD=0; this switch overrides the variable.
void set_winograd(int mode);   // 0 off, 2 F(2x2, 3x3) only, 4 F(4x4, 3x3) where it pays

// pooling over planes = N·C; g.C holds the plane count, N = 1
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const ConvGeom& g);
template <typename T>
void max_pool2d_backward(const T* dout, const int64_t* argmax, T* dx, const ConvGeom& g);
template <typename T>
void avg_pool2d_forward(const T* x, T* y, const ConvGeom& g);
template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const ConvGeom& g);

// BatchNorm over x (N, C, M): per channel, statistics over its N·M values. relu: y = max(0, ·)
// (a fused ReLU); the backward's y: that forward's output, whose y > 0 masks dout (nullptr: no
// ReLU was fused)
template <typename T>
void batchnorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t N, int64_t C, int64_t M, double eps, bool relu);
template <typename T>
void batchnorm_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* rstd,
                        const T* y, T* dx, T* dgamma, T* dbeta, int64_t N, int64_t C, int64_t M);
template <typename T>
void batchnorm_inference(const T* x, const T* gamma, const T* beta, const T* rmean,
                         const T* rvar, T* y, int64_t N, int64_t C, int64_t M, double eps,
                         bool relu);

}  // namespace nnlite
