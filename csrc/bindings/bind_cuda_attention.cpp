// Bindings of csrc/cuda/attention.cu (nnlite/ops/cuda_attention.py; tests/test_cuda_attention.py).
// Device pointers as ints (out may be 0 in the forward: lse only), sizes as int64, the stream
// as an int; the wrappers have already checked shapes and dtypes.
#include "bindings/bind_cuda.h"
#include "cuda/attention.h"

namespace {
namespace py = pybind11;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

template <typename T, auto Launch>
void forward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t out, uintptr_t lse, int64_t BH,
             int64_t T_, int64_t D, bool causal, double scale, uintptr_t stream) {
    py::gil_scoped_release nogil;
    Launch(dev_ptr<const T>(q), dev_ptr<const T>(k), dev_ptr<const T>(v), dev_ptr<T>(out),
           dev_ptr<T>(lse), BH, T_, D, causal, T(scale), stream_of(stream));
    nnl::cuda::check("attention");
}

template <typename T, auto Launch>
void backward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t out, uintptr_t dout,
              uintptr_t lse, uintptr_t delta, uintptr_t dq, uintptr_t dk, uintptr_t dv,
              int64_t BH, int64_t T_, int64_t D, bool causal, double scale, uintptr_t stream) {
    py::gil_scoped_release nogil;
    Launch(dev_ptr<const T>(q), dev_ptr<const T>(k), dev_ptr<const T>(v), dev_ptr<const T>(out),
           dev_ptr<const T>(dout), dev_ptr<const T>(lse), dev_ptr<T>(delta), dev_ptr<T>(dq),
           dev_ptr<T>(dk), dev_ptr<T>(dv), BH, T_, D, causal, T(scale), stream_of(stream));
    nnl::cuda::check("attention_backward");
}

void bind(py::module_& m) {
    m.def("attention_forward_f32", &forward<float, nnl::cuda::attention_forward_f32>,
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("BH"),
          py::arg("T"), py::arg("D"), py::arg("causal"), py::arg("scale"), py::arg("stream") = 0);
    m.def("attention_forward_f64", &forward<double, nnl::cuda::attention_forward_f64>,
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("BH"),
          py::arg("T"), py::arg("D"), py::arg("causal"), py::arg("scale"), py::arg("stream") = 0);
    m.def("attention_backward_f32", &backward<float, nnl::cuda::attention_backward_f32>,
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("dout"),
          py::arg("lse"), py::arg("delta"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
          py::arg("BH"), py::arg("T"), py::arg("D"), py::arg("causal"), py::arg("scale"),
          py::arg("stream") = 0);
    m.def("attention_backward_f64", &backward<double, nnl::cuda::attention_backward_f64>,
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("dout"),
          py::arg("lse"), py::arg("delta"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
          py::arg("BH"), py::arg("T"), py::arg("D"), py::arg("causal"), py::arg("scale"),
          py::arg("stream") = 0);
    // the largest head size D the kernels take (nnlite/ops/cuda_attention.py checks it first)
    m.attr("attention_max_head_size") = py::int_(nnl::cuda::kAttentionMaxD);
}
}  // namespace

NNL_CUDA_BINDINGS(attention, bind)
