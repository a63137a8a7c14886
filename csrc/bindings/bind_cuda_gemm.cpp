// Bindings of csrc/cuda/gemm.cu (nnlite/ops/cuda_gemm.py; tests/test_cuda_gemm.py).
//
//   gemm_f32(trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc, accumulate, stream)
//   gemm_f64(...)                                    (the same with float64 pointers)
//
// C[M,N] = (accumulate ? C : 0) + op(A)·op(B) on device pointers (Python ints), row-major with
// leading dimensions in elements: the launchers' contract in csrc/cuda/gemm.h.
#include "bindings/bind_cuda.h"
#include "cuda/gemm.h"

namespace {
namespace py = pybind11;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

template <typename T, auto launcher>
void def_gemm(py::module_& m, const char* name) {
    m.def(name, [name](bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, uintptr_t a,
                       int64_t lda, uintptr_t b, int64_t ldb, uintptr_t c, int64_t ldc,
                       bool accumulate, uintptr_t stream) {
        py::gil_scoped_release nogil;
        launcher(trans_a, trans_b, M, N, K, dev_ptr<const T>(a), lda, dev_ptr<const T>(b), ldb,
                 dev_ptr<T>(c), ldc, accumulate, stream_of(stream));
        nnl::cuda::check(name);
    }, py::arg("trans_a"), py::arg("trans_b"), py::arg("M"), py::arg("N"), py::arg("K"),
       py::arg("a"), py::arg("lda"), py::arg("b"), py::arg("ldb"), py::arg("c"), py::arg("ldc"),
       py::arg("accumulate") = false, py::arg("stream") = 0,
       "C[M,N] = (accumulate ? C : 0) + op(A)·op(B) (csrc/cuda/gemm.h)");
}

void bind(py::module_& m) {
    def_gemm<float, nnl::cuda::gemm_f32>(m, "gemm_f32");
    def_gemm<double, nnl::cuda::gemm_f64>(m, "gemm_f64");
}
}  // namespace

NNL_CUDA_BINDINGS(gemm, bind)
