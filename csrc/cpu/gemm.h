// GEMM kernels: C (M,N) = op(A) (M,K) @ op(B) (K,N), float32 and float64. See gemm.cpp.
#pragma once
#include <cstdint>

namespace nnlite {

// Every operand is described by a base pointer and element strides (which may be negative or
// zero), so transposed, sliced, reversed and Fortran-ordered inputs are packed in place:
//   op(A)[i][k] = a[i*rs_a + k*cs_a]      op(B)[k][j] = b[k*rs_b + j*cs_b]
//   C[i][j]     = c[i*rs_c + j*cs_c]
// accumulate=false: C = op(A) @ op(B);  accumulate=true: C += op(A) @ op(B).
// K == 0 gives C = 0 (or leaves C as is when accumulating). Releases nothing, allocates
// only cached per-thread packing buffers; callable without the GIL.
template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K,
                  const T* a, int64_t rs_a, int64_t cs_a,
                  const T* b, int64_t rs_b, int64_t cs_b,
                  T* c, int64_t rs_c, int64_t cs_c, bool accumulate);

extern template void gemm_strided<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                                         const float*, int64_t, int64_t, float*, int64_t, int64_t,
                                         bool);
extern template void gemm_strided<double>(int64_t, int64_t, int64_t, const double*, int64_t,
                                          int64_t, const double*, int64_t, int64_t, double*,
                                          int64_t, int64_t, bool);

}  // namespace nnlite
