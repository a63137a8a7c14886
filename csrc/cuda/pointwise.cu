// pointwise.cu: launchers for pointwise_kernels.cuh (see pointwise.h for what each computes).
#include "pointwise.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "pointwise_kernels.cuh"

namespace nnl::cuda {
namespace {

namespace k = kernels::pw;

// elementwise kernels: 256 threads a block, at most 1024 blocks (about one wave of a large GPU;
// each thread then strides through the rest)
constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 1024;

unsigned elementwise_grid(int64_t n) { return std::min(blocks_for(n, kThreads), kMaxBlocks); }

// f(std::integral_constant<PwAct, A>{}) for the activation with code `act`
template <class F>
void with_act(int act, const char* op, F&& f) {
    switch (act) {
    case int(PwAct::None): f(std::integral_constant<PwAct, PwAct::None>{}); break;
    case int(PwAct::Relu): f(std::integral_constant<PwAct, PwAct::Relu>{}); break;
    case int(PwAct::LeakyRelu): f(std::integral_constant<PwAct, PwAct::LeakyRelu>{}); break;
    case int(PwAct::Tanh): f(std::integral_constant<PwAct, PwAct::Tanh>{}); break;
    case int(PwAct::Sigmoid): f(std::integral_constant<PwAct, PwAct::Sigmoid>{}); break;
    case int(PwAct::Gelu): f(std::integral_constant<PwAct, PwAct::Gelu>{}); break;
    default:
        throw std::invalid_argument(std::string(op) + ": unknown activation code " +
                                    std::to_string(act));
    }
}

template <typename T>
void bias_act(const T* x, const T* b, T* y, int64_t rows, int64_t C, int act, T alpha,
              Stream s) {
    const int64_t n = rows * C;
    if (n <= 0) return;
    with_act(act, "bias_act", [&](auto a) {
        constexpr PwAct A = decltype(a)::value;
        if (b)
            NNL_LAUNCH(elementwise_grid(n), kThreads, 0, s, k::bias_act<T, A, true>)(
                x, b, y, n, C, alpha);
        else
            NNL_LAUNCH(elementwise_grid(n), kThreads, 0, s, k::bias_act<T, A, false>)(
                x, b, y, n, C, alpha);
    });
}

template <typename T>
void act_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, int act, T alpha,
                  Stream s) {
    if (n <= 0) return;
    with_act(act, "act_backward", [&](auto a) {
        constexpr PwAct A = decltype(a)::value;
        NNL_LAUNCH(elementwise_grid(n), kThreads, 0, s, k::act_backward<T, A>)(
            g, x, y, dx, n, alpha);
    });
}

template <typename T>
void bias_grad(const T* g, T* out, int64_t rows, int64_t C, bool accumulate, Stream s) {
    if (C <= 0 || rows < 0) return;
    // 8 threads per column (256 a block) for up to kBiasGradTall rows, 32 (1024) for taller g
    const dim3 block(k::kTileCols, rows <= kBiasGradTall ? 8 : k::kMaxRowThreads);
    NNL_LAUNCH(blocks_for(C, k::kTileCols), block, 0, s, k::bias_grad<T>)(
        g, out, rows, C, int(accumulate));
}

// The shape of a row-wise launch: a warp per row (block = 4 warps, 4 rows at a time) or a block
// per row (threads: a multiple of 32, about one per 4 values of the row, at most 512).
struct RowLaunch {
    bool block_per_row;
    unsigned grid, threads;
};

RowLaunch row_launch(int64_t rows, int64_t C, int row_threads, const char* op) {
    if (row_threads != 0 && (row_threads < 32 || row_threads > 1024 || row_threads % 32))
        throw std::invalid_argument(std::string(op) + ": row_threads must be 0 (choose) or a "
                                    "multiple of 32 in 32..1024, got " +
                                    std::to_string(row_threads));
    const bool warp = row_threads == 32 || (row_threads == 0 && C <= kWarpRowMax);
    // rows beyond the grid are taken by the grid-stride loop over rows
    constexpr int64_t kMaxGrid = 1 << 30;
    if (warp) {
        constexpr int kWarpsPerBlock = 4;
        return {false, unsigned(std::min(blocks_for(rows, kWarpsPerBlock), unsigned(kMaxGrid))),
                32u * kWarpsPerBlock};
    }
    const int64_t threads = row_threads ? row_threads
                                        : std::min<int64_t>(512, (C / 4 + 31) / 32 * 32);
    return {true, unsigned(std::min(rows, kMaxGrid)), unsigned(std::max<int64_t>(threads, 32))};
}

template <typename T>
void softmax(const T* x, T* y, int64_t rows, int64_t C, int row_threads, Stream s) {
    const RowLaunch l = row_launch(rows, C, row_threads, "softmax");
    if (rows <= 0 || C <= 0) return;
    if (l.block_per_row)
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax<T, true>)(x, y, rows, C);
    else
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax<T, false>)(x, y, rows, C);
}

template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t C, int row_threads,
                      Stream s) {
    const RowLaunch l = row_launch(rows, C, row_threads, "softmax_backward");
    if (rows <= 0 || C <= 0) return;
    if (l.block_per_row)
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax_backward<T, true>)(g, y, dx, rows, C);
    else
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax_backward<T, false>)(g, y, dx, rows, C);
}

template <typename T>
void softmax_xent(const T* z, const int64_t* labels, T* dz, double* row_loss, double* loss,
                  int64_t N, int64_t C, int row_threads, Stream s) {
    const RowLaunch l = row_launch(N, C, row_threads, "softmax_cross_entropy");
    if (N <= 0 || C <= 0)
        throw std::invalid_argument("softmax_cross_entropy: needs N >= 1 rows of C >= 1 logits");
    if (l.block_per_row)
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax_xent<T, true>)(
            z, labels, dz, row_loss, N, C);
    else
        NNL_LAUNCH(l.grid, l.threads, 0, s, k::softmax_xent<T, false>)(
            z, labels, dz, row_loss, N, C);
    // the batch mean: one block, a fixed summation order
    NNL_LAUNCH(1, kThreads, 0, s, k::mean_rows)(row_loss, N, loss);
}

}  // namespace

void bias_act_f32(const float* x, const float* b, float* y, int64_t rows, int64_t C, int act,
                  float alpha, Stream s) {
    bias_act(x, b, y, rows, C, act, alpha, s);
}
void bias_act_f64(const double* x, const double* b, double* y, int64_t rows, int64_t C, int act,
                  double alpha, Stream s) {
    bias_act(x, b, y, rows, C, act, alpha, s);
}
void act_backward_f32(const float* g, const float* x, const float* y, float* dx, int64_t n,
                      int act, float alpha, Stream s) {
    act_backward(g, x, y, dx, n, act, alpha, s);
}
void act_backward_f64(const double* g, const double* x, const double* y, double* dx, int64_t n,
                      int act, double alpha, Stream s) {
    act_backward(g, x, y, dx, n, act, alpha, s);
}
void bias_grad_f32(const float* g, float* out, int64_t rows, int64_t C, bool accumulate,
                   Stream s) {
    bias_grad(g, out, rows, C, accumulate, s);
}
void bias_grad_f64(const double* g, double* out, int64_t rows, int64_t C, bool accumulate,
                   Stream s) {
    bias_grad(g, out, rows, C, accumulate, s);
}
void softmax_f32(const float* x, float* y, int64_t rows, int64_t C, int row_threads, Stream s) {
    softmax(x, y, rows, C, row_threads, s);
}
void softmax_f64(const double* x, double* y, int64_t rows, int64_t C, int row_threads,
                 Stream s) {
    softmax(x, y, rows, C, row_threads, s);
}
void softmax_backward_f32(const float* g, const float* y, float* dx, int64_t rows, int64_t C,
                          int row_threads, Stream s) {
    softmax_backward(g, y, dx, rows, C, row_threads, s);
}
void softmax_backward_f64(const double* g, const double* y, double* dx, int64_t rows, int64_t C,
                          int row_threads, Stream s) {
    softmax_backward(g, y, dx, rows, C, row_threads, s);
}
void softmax_xent_f32(const float* z, const int64_t* labels, float* dz, double* row_loss,
                      double* loss, int64_t N, int64_t C, int row_threads, Stream s) {
    softmax_xent(z, labels, dz, row_loss, loss, N, C, row_threads, s);
}
void softmax_xent_f64(const double* z, const int64_t* labels, double* dz, double* row_loss,
                      double* loss, int64_t N, int64_t C, int row_threads, Stream s) {
    softmax_xent(z, labels, dz, row_loss, loss, N, C, row_threads, s);
}

}  // namespace nnl::cuda
