// gemm.cu: TEMP stand-in for the GEMM family (replaced at merge; the interface in gemm.h is
// fixed): a naive kernel, one thread per element of C, correct and slow.
//
//   C[m, n] = (accumulate ? C[m, n] : 0) + Σ_k op(A)[m, k] · op(B)[k, n]
//   op(A)[m, k] = trans_a ? A[k·lda + m] : A[m·lda + k]
//   op(B)[k, n] = trans_b ? B[n·ldb + k] : B[k·ldb + n]
#include "gemm.h"

#include "cuda_compat.h"

namespace nnl::cuda {
namespace kernels {

template <typename T>
__global__ void gemm_naive(bool trans_a, bool trans_b, long long M, long long N, long long K,
                           const T* A, long long lda, const T* B, long long ldb, T* C,
                           long long ldc, bool accumulate) {
    const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long m = (long long)blockIdx.y * blockDim.y + threadIdx.y;
    if (m >= M || n >= N) return;
    T s = 0;
    for (long long k = 0; k < K; k++) {
        const T a = trans_a ? A[k * lda + m] : A[m * lda + k];
        const T b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        s += a * b;
    }
    C[m * ldc + n] = accumulate ? C[m * ldc + n] + s : s;
}

}  // namespace kernels

template <typename T>
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate, Stream stream) {
    if (M <= 0 || N <= 0) return;
    const dim3 block(16, 16);
    const dim3 grid(blocks_for(N, 16), blocks_for(M, 16));
    NNL_LAUNCH(grid, block, 0, stream, kernels::gemm_naive<T>)(
        ta, tb, (long long)M, (long long)N, (long long)K, A, (long long)lda, B, (long long)ldb, C,
        (long long)ldc, accumulate);
}

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
              const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, Stream s) {
    gemm<float>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, s);
}
void gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
              const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate, Stream s) {
    gemm<double>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, s);
}

}  // namespace nnl::cuda
