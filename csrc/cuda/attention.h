// attention.h: the launchers of attention_kernels.cuh (plain C++; see csrc/cuda/README.md).
//
// q, k, v, out, dout, dq, dk, dv: (BH, T, D) C-contiguous device arrays; lse, delta: (BH, T).
// D at most kAttentionMaxD (std::invalid_argument otherwise). BH = 0 launches nothing.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;

constexpr int64_t kAttentionMaxD = 256;

// out = softmax(scale · Q Kᵀ + causal mask) V and lse = the rows' log-sum-exp;
// out == nullptr: only lse (no V read).
void attention_forward_f32(const float* q, const float* k, const float* v, float* out,
                           float* lse, int64_t BH, int64_t T, int64_t D, bool causal,
                           float scale, Stream stream);
void attention_forward_f64(const double* q, const double* k, const double* v, double* out,
                           double* lse, int64_t BH, int64_t T, int64_t D, bool causal,
                           double scale, Stream stream);

// (dq, dk, dv) from the forward's out and lse and the upstream dout; `delta` (BH, T) is
// scratch the caller allocates (rowsum(dout ⊙ out) goes there first).
void attention_backward_f32(const float* q, const float* k, const float* v, const float* out,
                            const float* dout, const float* lse, float* delta, float* dq,
                            float* dk, float* dv, int64_t BH, int64_t T, int64_t D, bool causal,
                            float scale, Stream stream);
void attention_backward_f64(const double* q, const double* k, const double* v,
                            const double* out, const double* dout, const double* lse,
                            double* delta, double* dq, double* dk, double* dv, int64_t BH,
                            int64_t T, int64_t D, bool causal, double scale, Stream stream);
}  // namespace nnl::cuda
