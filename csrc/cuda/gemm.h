// gemm.h: the launchers of gemm_kernels.cuh (plain C++; see csrc/cuda/README.md). Other kernel
// families (the convolutions' im2col GEMMs) call these too: the declarations are an interface.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;

// C[M,N] = (accumulate ? C : 0) + op(A)·op(B), op(X) = X or Xᵀ; row-major, leading dimensions
// lda/ldb/ldc (elements)
//
// Row-major: A is M×K when !trans_a, else stored K×M; B is K×N when !trans_b, else stored N×K.
// Any M, N, K >= 0: M or N zero launches nothing; K zero makes C = accumulate ? C : 0. A leading
// dimension must be at least its stored row length (when there is more than one row). Without
// accumulate C is only written, never read. C must not overlap A or B. Throws
// std::invalid_argument (ValueError in Python) naming the op for negative sizes or leading
// dimensions that are too small. Only launches: no allocation, no synchronisation.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              Stream stream);
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A,
              int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate,
              Stream stream);
}  // namespace nnl::cuda
