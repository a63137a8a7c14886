// attention.cu: launchers for attention_kernels.cuh (flash attention forward and backward).
//
// Tile sizes: BR = BC = 32 rows for float, 16 for double (rows of doubles take twice the
// shared memory and registers), kP = 4 threads per row: blocks of 128 (float) or 64 (double)
// threads. DPT (the head-dimension slice each thread accumulates in registers) is the smallest
// of 2, 8, 16, 32, 64 with D <= kP·DPT, so D <= 256.
//
// Shared memory per block (ld = D | 1), e.g. D = 128: forward (3 BR·ld + BR·BC) 54 KB float,
// 52 KB double; backward passes (4 BR·ld + 2 BR·BC + 2 BR) 74 KB float, 70 KB double. Launches
// over the default 48 KB opt in with cudaFuncSetAttribute (sm_80 allows 163 KB per block,
// sm_90 227 KB); the largest (D = 256, float backward) needs 140 KB.
#include "attention.h"

#include <stdexcept>
#include <string>
#include <type_traits>

#include "attention_kernels.cuh"

namespace nnl::cuda {
namespace {

template <typename T>
constexpr int tile_rows() { return sizeof(T) == 4 ? 32 : 16; }

size_t forward_smem(int BR, int64_t D, size_t elem) {
    return elem * (3 * size_t(BR) * kernels::smem_ld(int(D)) + size_t(BR) * BR);
}
size_t backward_smem(int BR, int64_t D, size_t elem) {
    return elem * (4 * size_t(BR) * kernels::smem_ld(int(D)) + 2 * size_t(BR) * BR + 2 * BR);
}

// The opt-in for more than the default 48 KB of dynamic shared memory (a launch still fails,
// and check() says so, on a device with less than `bytes` per block).
template <typename Kernel>
void allow_smem(Kernel* kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

void check_dims(const char* op, int64_t BH, int64_t T, int64_t D) {
    if (T < 1 || D < 1 || D > kAttentionMaxD || T > (int64_t(1) << 30))
        throw std::invalid_argument(std::string(op) + ": the CUDA kernels take 1 <= D <= " +
                                    std::to_string(kAttentionMaxD) + " and 1 <= T <= 2^30, got T = " +
                                    std::to_string(T) + ", D = " + std::to_string(D));
    // one block per (head, tile of 16 or 32 rows): gridDim.x < 2^31
    if (BH < 0 || BH > ((int64_t(1) << 31) - 1) / ((T + 15) / 16))
        throw std::invalid_argument(std::string(op) + ": too many heads for one launch: B·H = " +
                                    std::to_string(BH) + " at T = " + std::to_string(T));
}

// f(std::integral_constant<int, DPT>) for the smallest DPT with D <= kP·DPT.
template <typename F>
void with_dpt(int64_t D, F&& f) {
    if (D <= kernels::kP * 2) f(std::integral_constant<int, 2>{});
    else if (D <= kernels::kP * 8) f(std::integral_constant<int, 8>{});
    else if (D <= kernels::kP * 16) f(std::integral_constant<int, 16>{});
    else if (D <= kernels::kP * 32) f(std::integral_constant<int, 32>{});
    else f(std::integral_constant<int, 64>{});
}

template <typename T>
void forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t BH, int64_t T_,
             int64_t D, bool causal, T scale, Stream stream) {
    check_dims("attention", BH, T_, D);
    if (BH == 0) return;
    constexpr int BR = tile_rows<T>();
    const int ntiles = int((T_ + BR - 1) / BR);
    const size_t smem = forward_smem(BR, D, sizeof(T));
    with_dpt(D, [&](auto dpt) {
        constexpr int DPT = decltype(dpt)::value;
        allow_smem(kernels::attention_forward<T, BR, DPT>, smem);
        NNL_LAUNCH(unsigned(BH * ntiles), BR * kernels::kP, smem, stream,
                   kernels::attention_forward<T, BR, DPT>)(q, k, v, out, lse, int(T_), int(D),
                                                           ntiles, int(causal), scale);
    });
}

template <typename T>
void backward(const T* q, const T* k, const T* v, const T* out, const T* dout, const T* lse,
              T* delta, T* dq, T* dk, T* dv, int64_t BH, int64_t T_, int64_t D, bool causal,
              T scale, Stream stream) {
    check_dims("attention_backward", BH, T_, D);
    if (BH == 0) return;
    constexpr int BR = tile_rows<T>();
    const int ntiles = int((T_ + BR - 1) / BR);
    const size_t smem = backward_smem(BR, D, sizeof(T));
    NNL_LAUNCH(blocks_for(BH * T_, 128), 128, 0, stream,
               kernels::attention_backward_delta<T>)(out, dout, delta, (long long)(BH * T_),
                                                     int(D));
    with_dpt(D, [&](auto dpt) {
        constexpr int DPT = decltype(dpt)::value;
        allow_smem(kernels::attention_backward_dkdv<T, BR, DPT>, smem);
        allow_smem(kernels::attention_backward_dq<T, BR, DPT>, smem);
        NNL_LAUNCH(unsigned(BH * ntiles), BR * kernels::kP, smem, stream,
                   kernels::attention_backward_dkdv<T, BR, DPT>)(
            q, k, v, dout, lse, delta, dk, dv, int(T_), int(D), ntiles, int(causal), scale);
        NNL_LAUNCH(unsigned(BH * ntiles), BR * kernels::kP, smem, stream,
                   kernels::attention_backward_dq<T, BR, DPT>)(
            q, k, v, dout, lse, delta, dq, int(T_), int(D), ntiles, int(causal), scale);
    });
}

}  // namespace

void attention_forward_f32(const float* q, const float* k, const float* v, float* out,
                           float* lse, int64_t BH, int64_t T, int64_t D, bool causal,
                           float scale, Stream stream) {
    forward(q, k, v, out, lse, BH, T, D, causal, scale, stream);
}
void attention_forward_f64(const double* q, const double* k, const double* v, double* out,
                           double* lse, int64_t BH, int64_t T, int64_t D, bool causal,
                           double scale, Stream stream) {
    forward(q, k, v, out, lse, BH, T, D, causal, scale, stream);
}
void attention_backward_f32(const float* q, const float* k, const float* v, const float* out,
                            const float* dout, const float* lse, float* delta, float* dq,
                            float* dk, float* dv, int64_t BH, int64_t T, int64_t D, bool causal,
                            float scale, Stream stream) {
    backward(q, k, v, out, dout, lse, delta, dq, dk, dv, BH, T, D, causal, scale, stream);
}
void attention_backward_f64(const double* q, const double* k, const double* v,
                            const double* out, const double* dout, const double* lse,
                            double* delta, double* dq, double* dk, double* dv, int64_t BH,
                            int64_t T, int64_t D, bool causal, double scale, Stream stream) {
    backward(q, k, v, out, dout, lse, delta, dq, dk, dv, BH, T, D, causal, scale, stream);
}

}  // namespace nnl::cuda
