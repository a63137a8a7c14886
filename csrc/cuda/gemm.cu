// gemm.cu: launchers for gemm_kernels.cuh (the declarations and their contract: gemm.h).
#include "gemm.h"

#include <string>

#include "gemm_kernels.cuh"

namespace nnl::cuda {
namespace {

// A stored rows × cols matrix needs ld >= cols, unless it has at most one row.
void check_ld(const char* op, const char* name, int64_t ld, int64_t rows, int64_t cols) {
    if (ld < 0 || (rows > 1 && ld < cols))
        throw std::invalid_argument(std::string(op) + ": " + name + "=" + std::to_string(ld) +
                                    " is too small for a stored " + std::to_string(rows) + "x" +
                                    std::to_string(cols) + " matrix");
}

// 16-byte loads of p[i·ld + j] (j a multiple of 16/sizeof(T)) are aligned exactly when p is
// 16-byte aligned and ld a multiple of 16/sizeof(T).
template <typename T>
bool vec_ok(const T* p, int64_t ld) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % int64_t(16 / sizeof(T)) == 0;
}

template <typename T>
void gemm(const char* op, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
          int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate, Stream stream) {
    if (M < 0 || N < 0 || K < 0)
        throw std::invalid_argument(std::string(op) + ": negative size M=" + std::to_string(M) +
                                    " N=" + std::to_string(N) + " K=" + std::to_string(K));
    check_ld(op, "lda", lda, trans_a ? K : M, trans_a ? M : K);
    check_ld(op, "ldb", ldb, trans_b ? N : K, trans_b ? K : N);
    check_ld(op, "ldc", ldc, M, N);
    if (M == 0 || N == 0 || (K == 0 && accumulate)) return;   // nothing to write
    using Tile = kernels::GemmTile<T>;
    const int64_t row_tiles = (M + Tile::BM - 1) / Tile::BM;   // grid.x: up to 2^31 - 1
    const int64_t col_tiles = (N + Tile::BN - 1) / Tile::BN;   // grid.y: up to 65535
    if (row_tiles > 2147483647LL || col_tiles > 65535)
        throw std::invalid_argument(std::string(op) + ": " + std::to_string(M) + "x" +
                                    std::to_string(N) + " output is too large for one launch");
    kernels::GemmParams<T> p{A, B, C, M, N, K, lda, ldb, ldc, trans_a, trans_b, accumulate,
                             vec_ok(A, lda), vec_ok(B, ldb), vec_ok(C, ldc)};
    NNL_LAUNCH(dim3(unsigned(row_tiles), unsigned(col_tiles)), kernels::kGemmThreads, 0, stream,
               kernels::gemm_tiled<T>)(p);
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              Stream stream) {
    gemm("gemm_f32", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, stream);
}

void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A,
              int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate,
              Stream stream) {
    gemm("gemm_f64", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, stream);
}

}  // namespace nnl::cuda
