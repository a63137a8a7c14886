// nn.cu: launchers for nn_kernels.cuh (grid and block sizes; see nn.h for what each computes).
#include <cmath>
#include <stdexcept>
#include <string>

#include "nn.h"
#include "nn_kernels.cuh"

namespace nnl::cuda {

namespace {
constexpr int kRowWarps = 4;           // LayerNorm: rows per block (one warp each)
constexpr int kThreads = 256;          // elementwise kernels
constexpr int64_t kChunk = 4096;       // multi-tensor kernels: elements per block
constexpr unsigned kMaxBlocks = 4096;  // grid-stride kernels: enough to fill any GPU

unsigned grid_for(int64_t n) {
    const unsigned b = blocks_for(n, kThreads);
    return b < kMaxBlocks ? (b ? b : 1) : kMaxBlocks;
}
void check_int(int64_t v, const char* op) {
    if (v > INT32_MAX) throw std::invalid_argument(std::string(op) + ": a row of more than 2^31 - 1 values");
}
}  // namespace

int64_t nn_chunk() { return kChunk; }

template <class T>
void nn_layernorm(const T* x, const T* gamma, const T* beta, double eps, int64_t rows,
                  int64_t C, T* y, T* mean, T* rstd, Stream stream) {
    check_int(C, "layernorm");
    if (rows <= 0) return;
    NNL_LAUNCH(blocks_for(rows, kRowWarps), 32 * kRowWarps, 0, stream,
               kernels::nn_layernorm_forward<T>)(x, gamma, beta, T(eps), (long long)rows, int(C),
                                                 y, mean, rstd);
}

template <class T>
void nn_layernorm_backward(const T* g, const T* x, const T* gamma, const T* mean,
                           const T* rstd, int64_t rows, int64_t C, T* dx, T* dgamma, T* dbeta,
                           Stream stream) {
    check_int(C, "layernorm_backward");
    if (rows > 0)
        NNL_LAUNCH(blocks_for(rows, kRowWarps), 32 * kRowWarps, 0, stream,
                   kernels::nn_layernorm_backward_dx<T>)(g, x, gamma, mean, rstd,
                                                         (long long)rows, int(C), dx);
    NNL_LAUNCH(blocks_for(C, 32), dim3(32, 8), 0, stream,
               kernels::nn_layernorm_backward_params<T>)(g, x, mean, rstd, (long long)rows,
                                                         int(C), dgamma, dbeta);
}

template <class T>
void nn_embedding(const int64_t* ids, const T* table, int64_t n, int64_t C, T* out,
                  Stream stream) {
    check_int(C, "embedding");
    if (n <= 0 || C <= 0) return;
    NNL_LAUNCH(grid_for(n * C), kThreads, 0, stream, kernels::nn_embedding_forward<T>)(
        reinterpret_cast<const long long*>(ids), table, (long long)n, int(C), out);
}

template <class T>
void nn_embedding_backward(const int64_t* ids, const T* g, int64_t n, int64_t C, T* dtable,
                           Stream stream) {
    check_int(C, "embedding_backward");
    if (n <= 0 || C <= 0) return;
    NNL_LAUNCH(blocks_for(C, 128), 128, 0, stream, kernels::nn_embedding_backward<T>)(
        reinterpret_cast<const long long*>(ids), g, (long long)n, int(C), dtable);
}

template <class T>
void nn_sgd_update(T* p, const T* g, T* velocity, int64_t n, double lr, double momentum,
                   bool nesterov, double weight_decay, Stream stream) {
    if (n <= 0) return;
    NNL_LAUNCH(grid_for(n), kThreads, 0, stream, kernels::nn_sgd_update<T>)(
        p, g, velocity, (long long)n, T(lr), T(momentum), int(nesterov), T(weight_decay));
}

template <class T>
void nn_rmsprop_update(T* p, const T* g, T* sq, int64_t n, double lr, double alpha, double eps,
                       double weight_decay, Stream stream) {
    if (n <= 0) return;
    NNL_LAUNCH(grid_for(n), kThreads, 0, stream, kernels::nn_rmsprop_update<T>)(
        p, g, sq, (long long)n, T(lr), T(alpha), T(1.0 - alpha), T(eps), T(weight_decay));
}

template <class T>
void nn_adam_many(const uint64_t* ps, const uint64_t* gs, const uint64_t* ms, const uint64_t* vs,
                  const int64_t* sizes, const double* weight_decays, const int64_t* first_block,
                  int ntensors, int64_t nblocks, double lr, double beta1, double beta2,
                  double eps, int64_t step, bool decoupled, Stream stream) {
    if (ntensors <= 0 || nblocks <= 0) return;
    // the bias corrections 1 - βᵗ in double, rounded once to T (as the twin and the CPU do)
    const double st = double(step);
    const kernels::AdamArgs<T> a{T(lr), T(beta1), T(1.0 - beta1), T(beta2), T(1.0 - beta2),
                                 T(eps), T(1.0 - std::pow(beta1, st)),
                                 T(1.0 - std::pow(beta2, st)), int(decoupled)};
    NNL_LAUNCH(unsigned(nblocks), kThreads, 0, stream, kernels::nn_adam_many<T>)(
        reinterpret_cast<T* const*>(ps), reinterpret_cast<const T* const*>(gs),
        reinterpret_cast<T* const*>(ms), reinterpret_cast<T* const*>(vs),
        reinterpret_cast<const long long*>(sizes), weight_decays,
        reinterpret_cast<const long long*>(first_block), ntensors, (long long)kChunk, a);
}

template <class T>
void nn_sum_squares_many(const uint64_t* xs, const int64_t* sizes, const int64_t* first_block,
                         int ntensors, int64_t nblocks, double* partial, double* out,
                         Stream stream) {
    if (ntensors <= 0 || nblocks <= 0) return;
    NNL_LAUNCH(unsigned(nblocks), kThreads, 0, stream, kernels::nn_sum_squares<T>)(
        reinterpret_cast<const T* const*>(xs), reinterpret_cast<const long long*>(sizes),
        reinterpret_cast<const long long*>(first_block), ntensors, (long long)kChunk, partial);
    NNL_LAUNCH(1, kThreads, 0, stream, kernels::nn_sum_partials)(partial, (long long)nblocks,
                                                                 out);
}

#define NNL_NN_INSTANTIATE(T)                                                                  \
    template void nn_layernorm<T>(const T*, const T*, const T*, double, int64_t, int64_t, T*,  \
                                  T*, T*, Stream);                                             \
    template void nn_layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*,   \
                                           int64_t, int64_t, T*, T*, T*, Stream);              \
    template void nn_embedding<T>(const int64_t*, const T*, int64_t, int64_t, T*, Stream);     \
    template void nn_embedding_backward<T>(const int64_t*, const T*, int64_t, int64_t, T*,     \
                                           Stream);                                            \
    template void nn_sgd_update<T>(T*, const T*, T*, int64_t, double, double, bool, double,    \
                                   Stream);                                                    \
    template void nn_rmsprop_update<T>(T*, const T*, T*, int64_t, double, double, double,      \
                                       double, Stream);                                        \
    template void nn_adam_many<T>(const uint64_t*, const uint64_t*, const uint64_t*,           \
                                  const uint64_t*, const int64_t*, const double*,              \
                                  const int64_t*, int, int64_t, double, double, double, double, \
                                  int64_t, bool, Stream);                                      \
    template void nn_sum_squares_many<T>(const uint64_t*, const int64_t*, const int64_t*, int, \
                                         int64_t, double*, double*, Stream);
NNL_NN_INSTANTIATE(float)
NNL_NN_INSTANTIATE(double)
#undef NNL_NN_INSTANTIATE

}  // namespace nnl::cuda
