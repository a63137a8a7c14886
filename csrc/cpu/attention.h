// Flash-style scaled dot-product attention, forward and backward. See attention.cpp.
//
// Every (B, H, T, D) operand is a pointer with element strides along B, H and T (Heads<T>);
// along D it is contiguous. A view of a bigger buffer (q, k, v as slices of a (B, T, 3, H, D)
// QKV projection, out written straight into (B, T, H, D)) is read and written in place.
// lse (B, H, T) is C-contiguous.
//
//   attention_forward   out = softmax(Q Kᵀ·scale + mask) V,  lse (B, H, T) row log-sum-exp
//                       out.p == nullptr: row statistics only (lse), for a backward without lse
//   attention_backward  dq, dk, dv from q, k, v, out, dout and lse
#pragma once
#include <cstdint>

namespace nnlite {

// A (B, H, T, D) array: element (b, h, t, d) at p[b*sb + h*sh + t*st + d]. The destinations
// (out, dq, dk, dv) must not overlap each other, themselves or the inputs (each head's rows are
// written by one thread while others read theirs).
template <typename T>
struct Heads {
    T* p;
    int64_t sb, sh, st;
    T* head(int64_t b, int64_t h) const { return p + b * sb + h * sh; }  // its (T, D) rows
};

template <typename T>
void attention_forward(Heads<const T> q, Heads<const T> k, Heads<const T> v, Heads<T> out,
                       T* lse, int64_t B, int64_t H, int64_t T_, int64_t D, bool causal,
                       T scale);

template <typename T>
void attention_backward(Heads<const T> q, Heads<const T> k, Heads<const T> v,
                        Heads<const T> out, Heads<const T> dout, const T* lse, Heads<T> dq,
                        Heads<T> dk, Heads<T> dv, int64_t B, int64_t H, int64_t T_, int64_t D,
                        bool causal, T scale);

}  // namespace nnlite
