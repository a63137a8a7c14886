// conv.cu: launchers for conv_kernels.cuh (declared in conv.h). A convolution is a sequence of
// launches on one stream: im2col of a chunk of images, then one GEMM (gemm.h) per image and
// group, then the bias; the stream orders them, so nothing here synchronises.
#include "conv.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "conv_kernels.cuh"
#include "gemm.h"

namespace nnl::cuda {
namespace {

constexpr int kThreads = 256;          // elementwise kernels and the per-channel reductions
constexpr int64_t kMaxBlocks = 8192;   // elementwise grids stride over what lies beyond

inline unsigned elementwise_blocks(int64_t n) {
    return unsigned(std::min<int64_t>(blocks_for(n, kThreads), kMaxBlocks));
}

// the GEMM of the dtype (gemm.h)
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float* C, int64_t ldc, bool acc, Stream st) {
    gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, st);
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double* C, int64_t ldc, bool acc, Stream st) {
    gemm_f64(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, st);
}

void check_chunk(const char* op, const void* cols, int64_t chunk, const ConvShape& s) {
    if (!conv_is_pointwise(s) && (cols == nullptr || chunk < 1))
        throw std::invalid_argument(std::string(op) + ": needs a cols buffer of at least one "
                                    "image (chunk >= 1), got chunk " + std::to_string(chunk));
}

template <typename T>
void im2col_launch(const T* x, T* cols, int64_t n0, int64_t B, const ConvShape& s, Stream st) {
    const int64_t n = B * s.C * s.KH * s.KW * s.Ho * s.Wo;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_im2col<T>)(x, cols, n0, B, s);
}

template <typename T>
void col2im_launch(const T* dcols, T* dx, int64_t n0, int64_t B, const ConvShape& s, Stream st) {
    const int64_t n = B * s.C * s.H * s.W;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_col2im<T>)(dcols, dx, n0, B, s);
}

// y[n] (O, L), group by group: y[n]_g (Og, L) = W_g (Og, Kg) @ cols[n]_g (Kg, L)
template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, T* cols, int64_t chunk,
                    const ConvShape& s, Stream st) {
    check_chunk("conv2d", cols, chunk, s);
    const int64_t L = s.Ho * s.Wo, Og = s.O / s.G, Kg = s.C / s.G * s.KH * s.KW;
    const int64_t rows = s.C * s.KH * s.KW;
    const bool pointwise = conv_is_pointwise(s);    // cols[n] would be x[n] itself
    if (pointwise) chunk = s.N;
    for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
        const int64_t B = std::min(chunk, s.N - n0);
        if (!pointwise) im2col_launch(x, cols, n0, B, s, st);
        for (int64_t bi = 0; bi < B; bi++) {
            const T* cn = pointwise ? x + (n0 + bi) * rows * L : cols + bi * rows * L;
            for (int64_t g = 0; g < s.G; g++)
                gemm(false, false, Og, L, Kg, w + g * Og * Kg, Kg, cn + g * Kg * L, L,
                     y + ((n0 + bi) * s.O + g * Og) * L, L, false, st);
        }
    }
    const int64_t n = s.N * s.O * L;
    if (b && n > 0)
        NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_bias_add<T>)(y, b, n, s.O, L);
}

// dcols[n]_g (Kg, L) = W_gᵀ (Kg, Og) @ dout[n]_g (Og, L), then dx[n] = col2im(dcols[n])
template <typename T>
void conv2d_input_grad(const T* dout, const T* w, T* dx, T* dcols, int64_t chunk,
                       const ConvShape& s, Stream st) {
    check_chunk("conv2d_input_grad", dcols, chunk, s);
    const int64_t L = s.Ho * s.Wo, Og = s.O / s.G, Kg = s.C / s.G * s.KH * s.KW;
    const int64_t rows = s.C * s.KH * s.KW;
    const bool pointwise = conv_is_pointwise(s);    // col2im would be the identity
    if (pointwise) chunk = s.N;
    for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
        const int64_t B = std::min(chunk, s.N - n0);
        for (int64_t bi = 0; bi < B; bi++) {
            T* dn = pointwise ? dx + (n0 + bi) * rows * L : dcols + bi * rows * L;
            for (int64_t g = 0; g < s.G; g++)
                gemm(true, false, Kg, L, Og, w + g * Og * Kg, Kg,
                     dout + ((n0 + bi) * s.O + g * Og) * L, L, dn + g * Kg * L, L, false, st);
        }
        if (!pointwise) col2im_launch(dcols, dx, n0, B, s, st);
    }
}

// dW_g (Og, Kg) = Σ_n dout[n]_g (Og, L) @ cols[n]_gᵀ (L, Kg), image by image in order (the
// first overwrites, the rest accumulate); db by one block per output channel.
template <typename T>
void conv2d_weight_grad(const T* dout, const T* x, T* dw, T* db, T* cols, int64_t chunk,
                        const ConvShape& s, Stream st) {
    check_chunk("conv2d_backward", cols, chunk, s);
    if (s.N < 1) throw std::invalid_argument("conv2d_backward: the weight gradient needs N >= 1");
    const int64_t L = s.Ho * s.Wo, Og = s.O / s.G, Kg = s.C / s.G * s.KH * s.KW;
    const int64_t rows = s.C * s.KH * s.KW;
    const bool pointwise = conv_is_pointwise(s);
    if (pointwise) chunk = s.N;
    for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
        const int64_t B = std::min(chunk, s.N - n0);
        if (!pointwise) im2col_launch(x, cols, n0, B, s, st);
        for (int64_t bi = 0; bi < B; bi++) {
            const T* cn = pointwise ? x + (n0 + bi) * rows * L : cols + bi * rows * L;
            for (int64_t g = 0; g < s.G; g++)
                gemm(false, true, Og, Kg, L, dout + ((n0 + bi) * s.O + g * Og) * L, L,
                     cn + g * Kg * L, L, dw + g * Og * Kg, Kg, n0 + bi > 0, st);
        }
    }
    if (db && s.O > 0)
        NNL_LAUNCH(unsigned(s.O), kThreads, 0, st, kernels::conv_bias_grad<T>)(dout, db, s.N, s.O, L);
}

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const ConvShape& s, Stream st) {
    const int64_t n = s.N * s.C * s.Ho * s.Wo;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_max_pool2d_forward<T>)(x, y, argmax, s);
}

// one warp per plane, 4 warps a block
template <typename T>
void max_pool2d_backward(const T* dout, const int64_t* argmax, T* dx, int64_t planes, int64_t HW,
                         int64_t L, Stream st) {
    if (planes <= 0 || HW <= 0) return;
    constexpr int kWarps = 4;
    if (planes > int64_t(kWarps) * 0x7fffffff)
        throw std::invalid_argument("max_pool2d_backward: too many planes for one grid");
    NNL_LAUNCH(blocks_for(planes, kWarps), kWarps * 32, 0, st, kernels::conv_max_pool2d_backward<T>)(
        dout, argmax, dx, planes, HW, L);
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const ConvShape& s, Stream st) {
    const int64_t n = s.N * s.C * s.Ho * s.Wo;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_avg_pool2d_forward<T>)(x, y, s);
}

template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const ConvShape& s, Stream st) {
    const int64_t n = s.N * s.C * s.H * s.W;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_avg_pool2d_backward<T>)(dout, dx, s);
}

// one block per channel
template <typename T>
void batchnorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t N, int64_t C, int64_t M, double eps, bool relu, Stream st) {
    if (N * M <= 0 || C <= 0) throw std::invalid_argument("batchnorm: x is empty");
    NNL_LAUNCH(unsigned(C), kThreads, 0, st, kernels::conv_batchnorm_forward<T>)(
        x, gamma, beta, y, mean, rstd, N, C, M, eps, relu);
}

template <typename T>
void batchnorm_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* rstd,
                        const T* yrelu, T* dx, T* dgamma, T* dbeta, int64_t N, int64_t C,
                        int64_t M, Stream st) {
    if (N * M <= 0 || C <= 0) throw std::invalid_argument("batchnorm_backward: x is empty");
    NNL_LAUNCH(unsigned(C), kThreads, 0, st, kernels::conv_batchnorm_backward<T>)(
        dout, x, gamma, mean, rstd, yrelu, dx, dgamma, dbeta, N, C, M);
}

template <typename T>
void batchnorm_inference(const T* x, const T* gamma, const T* beta, const T* rmean,
                         const T* rvar, T* y, int64_t N, int64_t C, int64_t M, double eps,
                         bool relu, Stream st) {
    const int64_t n = N * C * M;
    if (n <= 0) return;
    NNL_LAUNCH(elementwise_blocks(n), kThreads, 0, st, kernels::conv_batchnorm_inference<T>)(
        x, gamma, beta, rmean, rvar, y, n, C, M, eps, relu);
}

}  // namespace

// ------------------------------------------------------------------------ the exported names
#define NNL_CONV_LAUNCHERS(T, sfx)                                                                  \
    void im2col_##sfx(const T* x, T* cols, int64_t n0, int64_t B, const ConvShape& s, Stream st) { \
        im2col_launch<T>(x, cols, n0, B, s, st);                                                    \
    }                                                                                               \
    void col2im_##sfx(const T* dcols, T* dx, int64_t n0, int64_t B, const ConvShape& s,            \
                      Stream st) {                                                                  \
        col2im_launch<T>(dcols, dx, n0, B, s, st);                                                  \
    }                                                                                               \
    void conv2d_forward_##sfx(const T* x, const T* w, const T* b, T* y, T* cols, int64_t chunk,    \
                              const ConvShape& s, Stream st) {                                      \
        conv2d_forward<T>(x, w, b, y, cols, chunk, s, st);                                          \
    }                                                                                               \
    void conv2d_input_grad_##sfx(const T* dout, const T* w, T* dx, T* dcols, int64_t chunk,        \
                                 const ConvShape& s, Stream st) {                                   \
        conv2d_input_grad<T>(dout, w, dx, dcols, chunk, s, st);                                     \
    }                                                                                               \
    void conv2d_weight_grad_##sfx(const T* dout, const T* x, T* dw, T* db, T* cols, int64_t chunk, \
                                  const ConvShape& s, Stream st) {                                  \
        conv2d_weight_grad<T>(dout, x, dw, db, cols, chunk, s, st);                                 \
    }                                                                                               \
    void max_pool2d_forward_##sfx(const T* x, T* y, int64_t* argmax, const ConvShape& s,           \
                                  Stream st) {                                                      \
        max_pool2d_forward<T>(x, y, argmax, s, st);                                                 \
    }                                                                                               \
    void max_pool2d_backward_##sfx(const T* dout, const int64_t* argmax, T* dx, int64_t planes,    \
                                   int64_t HW, int64_t L, Stream st) {                              \
        max_pool2d_backward<T>(dout, argmax, dx, planes, HW, L, st);                                \
    }                                                                                               \
    void avg_pool2d_forward_##sfx(const T* x, T* y, const ConvShape& s, Stream st) {               \
        avg_pool2d_forward<T>(x, y, s, st);                                                         \
    }                                                                                               \
    void avg_pool2d_backward_##sfx(const T* dout, T* dx, const ConvShape& s, Stream st) {          \
        avg_pool2d_backward<T>(dout, dx, s, st);                                                    \
    }                                                                                               \
    void batchnorm_forward_##sfx(const T* x, const T* gamma, const T* beta, T* y, T* mean,         \
                                 T* rstd, int64_t N, int64_t C, int64_t M, double eps, bool relu,  \
                                 Stream st) {                                                       \
        batchnorm_forward<T>(x, gamma, beta, y, mean, rstd, N, C, M, eps, relu, st);                \
    }                                                                                               \
    void batchnorm_backward_##sfx(const T* dout, const T* x, const T* gamma, const T* mean,        \
                                  const T* rstd, const T* yrelu, T* dx, T* dgamma, T* dbeta,        \
                                  int64_t N, int64_t C, int64_t M, Stream st) {                     \
        batchnorm_backward<T>(dout, x, gamma, mean, rstd, yrelu, dx, dgamma, dbeta, N, C, M, st);   \
    }                                                                                               \
    void batchnorm_inference_##sfx(const T* x, const T* gamma, const T* beta, const T* rmean,      \
                                   const T* rvar, T* y, int64_t N, int64_t C, int64_t M,            \
                                   double eps, bool relu, Stream st) {                              \
        batchnorm_inference<T>(x, gamma, beta, rmean, rvar, y, N, C, M, eps, relu, st);             \
    }

NNL_CONV_LAUNCHERS(float, f32)
NNL_CONV_LAUNCHERS(double, f64)

}  // namespace nnl::cuda
