// Bindings of csrc/cuda/selftest.cu (nnlite.ops.cuda_device.selftest, tests/test_cuda_shim.py).
#include "bindings/bind_cuda.h"
#include "cuda/selftest.h"

namespace {
namespace py = pybind11;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

void bind(py::module_& m) {
    m.def("selftest_block_sum", [](uintptr_t x, int64_t n, uintptr_t out, int threads,
                                   int fault, uintptr_t stream) {
        py::gil_scoped_release nogil;
        nnl::cuda::selftest_block_sum(dev_ptr<const float>(x), n, dev_ptr<float>(out), threads,
                                      fault, stream_of(stream));
        nnl::cuda::check("selftest_block_sum");
    }, py::arg("x"), py::arg("n"), py::arg("out"), py::arg("threads"),
       py::arg("fault") = 0, py::arg("stream") = 0);
}
}  // namespace

NNL_CUDA_BINDINGS(selftest, bind)
