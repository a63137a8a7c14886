// gemm.h: the GEMM launchers (plain C++; see csrc/cuda/README.md).
// TEMP stand-in: the GEMM family replaces this file at merge; the interface is fixed.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;
// C[M,N] = (accumulate ? C : 0) + op(A)·op(B), op(X) = X or Xᵀ; row-major, leading dimensions lda/ldb/ldc (elements)
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, Stream stream);
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate, Stream stream);
}  // namespace nnl::cuda
