// conv.h: the launchers of the convolution, pooling and BatchNorm kernels (conv_kernels.cuh,
// conv.cu), NCHW, float32 (_f32) and float64 (_f64). Plain C++; see csrc/cuda/README.md.
//
// Legend (as nnlite/ops/reference.py and csrc/cpu/conv.h): N batch, C input channels, H, W
// input size, O output channels, G groups, KH, KW kernel size, Ho, Wo output size, L = Ho·Wo;
// s stride, p padding, d dilation (h: rows, w: columns); dout = ∂loss/∂out.
//
// Launchers only launch (csrc/cuda/README.md): every buffer, scratch included, is allocated by
// the caller (nnlite/ops/cuda_conv.py), and the sizes were checked there.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;

// One convolution's sizes (a pooling's too: O = C, G = 1, dh = dw = 1, over N·C planes).
struct ConvShape {
    int64_t N, C, H, W, O, G, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo;
};

// True when im2col is the identity (a 1×1 kernel, stride 1, no padding): the convolution
// launchers then multiply x itself and never touch `cols`, which may be null.
inline bool conv_is_pointwise(const ConvShape& s) {
    return s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

// cols (B, C·KH·KW, L) = im2col of the images [n0, n0 + B) of x (N, C, H, W)
void im2col_f32(const float* x, float* cols, int64_t n0, int64_t B, const ConvShape& s, Stream stream);
void im2col_f64(const double* x, double* cols, int64_t n0, int64_t B, const ConvShape& s, Stream stream);
// dx images [n0, n0 + B) (written, not added to) = col2im of dcols (B, C·KH·KW, L)
void col2im_f32(const float* dcols, float* dx, int64_t n0, int64_t B, const ConvShape& s, Stream stream);
void col2im_f64(const double* dcols, double* dx, int64_t n0, int64_t B, const ConvShape& s, Stream stream);

// y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C/G, KH, KW)) + b (O,) (b may be null).
// cols: scratch of chunk·C·KH·KW·L elements (im2col of `chunk` images at a time).
void conv2d_forward_f32(const float* x, const float* w, const float* b, float* y, float* cols,
                        int64_t chunk, const ConvShape& s, Stream stream);
void conv2d_forward_f64(const double* x, const double* w, const double* b, double* y,
                        double* cols, int64_t chunk, const ConvShape& s, Stream stream);
// dx (N, C, H, W) from dout (N, O, Ho, Wo) (the transposed convolution); dcols as cols above
void conv2d_input_grad_f32(const float* dout, const float* w, float* dx, float* dcols,
                           int64_t chunk, const ConvShape& s, Stream stream);
void conv2d_input_grad_f64(const double* dout, const double* w, double* dx, double* dcols,
                           int64_t chunk, const ConvShape& s, Stream stream);
// dw (O, C/G, KH, KW) = Σ_n dout[n] @ im2col(x[n])ᵀ per group; db (O,) = Σ dout (db may be
// null); N >= 1. cols as above.
void conv2d_weight_grad_f32(const float* dout, const float* x, float* dw, float* db,
                            float* cols, int64_t chunk, const ConvShape& s, Stream stream);
void conv2d_weight_grad_f64(const double* dout, const double* x, double* dw, double* db,
                            double* cols, int64_t chunk, const ConvShape& s, Stream stream);

// Pooling of x (N, C, H, W) (s.N, s.C, s.H, s.W, s.KH, s.KW, s.sh, s.sw, s.ph, s.pw, s.Ho,
// s.Wo are read). argmax: int64, h·W + w in the input plane.
void max_pool2d_forward_f32(const float* x, float* y, int64_t* argmax, const ConvShape& s, Stream stream);
void max_pool2d_forward_f64(const double* x, double* y, int64_t* argmax, const ConvShape& s, Stream stream);
// dx (planes, HW) = Σ dout (planes, L) at argmax (planes, L); every argmax in [0, HW)
void max_pool2d_backward_f32(const float* dout, const int64_t* argmax, float* dx, int64_t planes,
                             int64_t HW, int64_t L, Stream stream);
void max_pool2d_backward_f64(const double* dout, const int64_t* argmax, double* dx,
                             int64_t planes, int64_t HW, int64_t L, Stream stream);
void avg_pool2d_forward_f32(const float* x, float* y, const ConvShape& s, Stream stream);
void avg_pool2d_forward_f64(const double* x, double* y, const ConvShape& s, Stream stream);
void avg_pool2d_backward_f32(const float* dout, float* dx, const ConvShape& s, Stream stream);
void avg_pool2d_backward_f64(const double* dout, double* dx, const ConvShape& s, Stream stream);

// BatchNorm over x (N, C, M) (M: the product of the axes after C; 1 for (N, C)); N·M >= 1.
// relu: y = max(0, ·), a fused ReLU; the backward's yrelu: that forward's output, whose y > 0
// masks dout (null: no ReLU was fused).
void batchnorm_forward_f32(const float* x, const float* gamma, const float* beta, float* y,
                           float* mean, float* rstd, int64_t N, int64_t C, int64_t M, double eps,
                           bool relu, Stream stream);
void batchnorm_forward_f64(const double* x, const double* gamma, const double* beta, double* y,
                           double* mean, double* rstd, int64_t N, int64_t C, int64_t M,
                           double eps, bool relu, Stream stream);
void batchnorm_backward_f32(const float* dout, const float* x, const float* gamma,
                            const float* mean, const float* rstd, const float* yrelu, float* dx,
                            float* dgamma, float* dbeta, int64_t N, int64_t C, int64_t M,
                            Stream stream);
void batchnorm_backward_f64(const double* dout, const double* x, const double* gamma,
                            const double* mean, const double* rstd, const double* yrelu,
                            double* dx, double* dgamma, double* dbeta, int64_t N, int64_t C,
                            int64_t M, Stream stream);
void batchnorm_inference_f32(const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y,
                             int64_t N, int64_t C, int64_t M, double eps, bool relu,
                             Stream stream);
void batchnorm_inference_f64(const double* x, const double* gamma, const double* beta,
                             const double* running_mean, const double* running_var, double* y,
                             int64_t N, int64_t C, int64_t M, double eps, bool relu,
                             Stream stream);

}  // namespace nnl::cuda
