// Bindings of csrc/cuda/pointwise.cu (nnlite/ops/cuda_pointwise.py): one function per launcher,
// device pointers and the stream as ints, sizes as int64; the GIL is released around each launch.
#include "bindings/bind_cuda.h"
#include "cuda/pointwise.h"

namespace {
namespace py = pybind11;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

template <typename T>
void bind_dtype(py::module_& m, const std::string& sfx,
                void (*bias_act)(const T*, const T*, T*, int64_t, int64_t, int, T, void*),
                void (*act_backward)(const T*, const T*, const T*, T*, int64_t, int, T, void*),
                void (*bias_grad)(const T*, T*, int64_t, int64_t, bool, void*),
                void (*softmax)(const T*, T*, int64_t, int64_t, int, void*),
                void (*softmax_backward)(const T*, const T*, T*, int64_t, int64_t, int, void*),
                void (*softmax_xent)(const T*, const int64_t*, T*, double*, double*, int64_t,
                                     int64_t, int, void*)) {
    // b = 0: no bias (act_forward)
    m.def(("bias_act_" + sfx).c_str(), [bias_act](uintptr_t x, uintptr_t b, uintptr_t y,
                                                   int64_t rows, int64_t C, int act, double alpha,
                                                   uintptr_t stream) {
        py::gil_scoped_release nogil;
        bias_act(dev_ptr<const T>(x), dev_ptr<const T>(b), dev_ptr<T>(y), rows, C, act, T(alpha),
                 stream_of(stream));
        nnl::cuda::check("bias_act");
    }, py::arg("x"), py::arg("b"), py::arg("y"), py::arg("rows"), py::arg("C"), py::arg("act"),
       py::arg("alpha"), py::arg("stream") = 0);
    m.def(("act_backward_" + sfx).c_str(), [act_backward](uintptr_t g, uintptr_t x, uintptr_t y,
                                                           uintptr_t dx, int64_t n, int act,
                                                           double alpha, uintptr_t stream) {
        py::gil_scoped_release nogil;
        act_backward(dev_ptr<const T>(g), dev_ptr<const T>(x), dev_ptr<const T>(y), dev_ptr<T>(dx),
                     n, act, T(alpha), stream_of(stream));
        nnl::cuda::check("act_backward");
    }, py::arg("g"), py::arg("x"), py::arg("y"), py::arg("dx"), py::arg("n"), py::arg("act"),
       py::arg("alpha"), py::arg("stream") = 0);
    m.def(("bias_grad_" + sfx).c_str(), [bias_grad](uintptr_t g, uintptr_t out, int64_t rows,
                                                     int64_t C, bool accumulate, uintptr_t stream) {
        py::gil_scoped_release nogil;
        bias_grad(dev_ptr<const T>(g), dev_ptr<T>(out), rows, C, accumulate, stream_of(stream));
        nnl::cuda::check("bias_grad");
    }, py::arg("g"), py::arg("out"), py::arg("rows"), py::arg("C"), py::arg("accumulate"),
       py::arg("stream") = 0);
    m.def(("softmax_" + sfx).c_str(), [softmax](uintptr_t x, uintptr_t y, int64_t rows, int64_t C,
                                                 int row_threads, uintptr_t stream) {
        py::gil_scoped_release nogil;
        softmax(dev_ptr<const T>(x), dev_ptr<T>(y), rows, C, row_threads, stream_of(stream));
        nnl::cuda::check("softmax");
    }, py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("C"), py::arg("row_threads") = 0,
       py::arg("stream") = 0);
    m.def(("softmax_backward_" + sfx).c_str(), [softmax_backward](
              uintptr_t g, uintptr_t y, uintptr_t dx, int64_t rows, int64_t C, int row_threads,
              uintptr_t stream) {
        py::gil_scoped_release nogil;
        softmax_backward(dev_ptr<const T>(g), dev_ptr<const T>(y), dev_ptr<T>(dx), rows, C,
                         row_threads, stream_of(stream));
        nnl::cuda::check("softmax_backward");
    }, py::arg("g"), py::arg("y"), py::arg("dx"), py::arg("rows"), py::arg("C"),
       py::arg("row_threads") = 0, py::arg("stream") = 0);
    // labels: int64 in [0, C) (checked by the wrapper); row_loss (N,), loss (1,): float64
    m.def(("softmax_xent_" + sfx).c_str(), [softmax_xent](
              uintptr_t z, uintptr_t labels, uintptr_t dz, uintptr_t row_loss, uintptr_t loss,
              int64_t N, int64_t C, int row_threads, uintptr_t stream) {
        py::gil_scoped_release nogil;
        softmax_xent(dev_ptr<const T>(z), dev_ptr<const int64_t>(labels), dev_ptr<T>(dz),
                     dev_ptr<double>(row_loss), dev_ptr<double>(loss), N, C, row_threads,
                     stream_of(stream));
        nnl::cuda::check("softmax_cross_entropy");
    }, py::arg("z"), py::arg("labels"), py::arg("dz"), py::arg("row_loss"), py::arg("loss"),
       py::arg("N"), py::arg("C"), py::arg("row_threads") = 0, py::arg("stream") = 0);
}

void bind(py::module_& m) {
    using nnl::cuda::PwAct;
    m.def("pointwise_act_codes", [] {
        py::dict codes;
        codes["none"] = int(PwAct::None);
        codes["relu"] = int(PwAct::Relu);
        codes["leaky_relu"] = int(PwAct::LeakyRelu);
        codes["tanh"] = int(PwAct::Tanh);
        codes["sigmoid"] = int(PwAct::Sigmoid);
        codes["gelu"] = int(PwAct::Gelu);
        return codes;
    }, "activation name -> the code the pointwise launchers take");
    m.def("pointwise_warp_row_max", [] { return nnl::cuda::kWarpRowMax; },
          "rows up to this many values get a warp each (row_threads=0), longer ones a block");
    using namespace nnl::cuda;
    bind_dtype<float>(m, "f32", bias_act_f32, act_backward_f32, bias_grad_f32, softmax_f32,
                      softmax_backward_f32, softmax_xent_f32);
    bind_dtype<double>(m, "f64", bias_act_f64, act_backward_f64, bias_grad_f64, softmax_f64,
                       softmax_backward_f64, softmax_xent_f64);
}
}  // namespace

NNL_CUDA_BINDINGS(pointwise, bind)
