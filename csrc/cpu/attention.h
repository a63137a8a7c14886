// Flash-style scaled dot-product attention, forward and backward. See attention.cpp.
//
// Every array is C-contiguous; (BH, T, D) means the (B, H, T, D) array with B·H merged.
//
//   attention_forward   out (BH, T, D) = softmax(Q Kᵀ·scale + mask) V,  lse (BH, T) row log-sum-exp
//                       out == nullptr: row statistics only (lse), for a backward without lse
//   attention_backward  dq, dk, dv (BH, T, D) from q, k, v, out, dout (BH, T, D), lse (BH, T)
#pragma once
#include <cstdint>

namespace nnlite {

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t BH, int64_t T_,
                       int64_t D, bool causal, T scale);

template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* dout,
                        const T* lse, T* dq, T* dk, T* dv, int64_t BH, int64_t T_, int64_t D,
                        bool causal, T scale);

}  // namespace nnlite
