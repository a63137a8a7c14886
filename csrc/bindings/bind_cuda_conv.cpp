// Bindings of csrc/cuda/conv.cu (nnlite/ops/cuda_conv.py, tests/test_cuda_conv.py): one
// function per launcher and dtype, named with the family prefix (`conv_conv2d_forward_f32`,
// `conv_im2col_f64`, ...). Pointers are Python ints (0: null, for an absent bias or db), a
// convolution's sizes a sequence of 16 ints in ConvShape's order (N, C, H, W, O, G, KH, KW,
// sh, sw, ph, pw, dh, dw, Ho, Wo).
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/bind_cuda.h"
#include "cuda/conv.h"

namespace {
namespace py = pybind11;
using nnl::cuda::ConvShape;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

ConvShape shape_of(const std::vector<int64_t>& v) {
    if (v.size() != 16)
        throw std::invalid_argument("nnlite CUDA conv: a shape is 16 ints (N, C, H, W, O, G, KH, "
                                    "KW, sh, sw, ph, pw, dh, dw, Ho, Wo), got " +
                                    std::to_string(v.size()));
    return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
            v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
}

// The launchers of one dtype (conv.h), to bind under one name suffix.
template <typename T>
struct Launchers {
    using Stream = nnl::cuda::Stream;
    void (*im2col)(const T*, T*, int64_t, int64_t, const ConvShape&, Stream);
    void (*col2im)(const T*, T*, int64_t, int64_t, const ConvShape&, Stream);
    void (*conv2d_forward)(const T*, const T*, const T*, T*, T*, int64_t, const ConvShape&, Stream);
    void (*conv2d_input_grad)(const T*, const T*, T*, T*, int64_t, const ConvShape&, Stream);
    void (*conv2d_weight_grad)(const T*, const T*, T*, T*, T*, int64_t, const ConvShape&, Stream);
    void (*max_pool2d_forward)(const T*, T*, int64_t*, const ConvShape&, Stream);
    void (*max_pool2d_backward)(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, Stream);
    void (*avg_pool2d_forward)(const T*, T*, const ConvShape&, Stream);
    void (*avg_pool2d_backward)(const T*, T*, const ConvShape&, Stream);
    void (*batchnorm_forward)(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t,
                              double, bool, Stream);
    void (*batchnorm_backward)(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*,
                               T*, int64_t, int64_t, int64_t, Stream);
    void (*batchnorm_inference)(const T*, const T*, const T*, const T*, const T*, T*, int64_t,
                                int64_t, int64_t, double, bool, Stream);
};

template <typename T>
void bind_dtype(py::module_& m, const std::string& sfx, const Launchers<T> f) {
    using S = const std::vector<int64_t>&;
    m.def(("conv_im2col_" + sfx).c_str(), [f](uintptr_t x, uintptr_t cols, int64_t n0, int64_t B, S s,
                                         uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.im2col(dev_ptr<const T>(x), dev_ptr<T>(cols), n0, B, cs, stream_of(stream));
        nnl::cuda::check("im2col");
    }, py::arg("x"), py::arg("cols"), py::arg("n0"), py::arg("B"), py::arg("shape"),
       py::arg("stream") = 0);
    m.def(("conv_col2im_" + sfx).c_str(), [f](uintptr_t dcols, uintptr_t dx, int64_t n0, int64_t B,
                                         S s, uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.col2im(dev_ptr<const T>(dcols), dev_ptr<T>(dx), n0, B, cs, stream_of(stream));
        nnl::cuda::check("col2im");
    }, py::arg("dcols"), py::arg("dx"), py::arg("n0"), py::arg("B"), py::arg("shape"),
       py::arg("stream") = 0);
    m.def(("conv_conv2d_forward_" + sfx).c_str(), [f](uintptr_t x, uintptr_t w, uintptr_t b,
                                                 uintptr_t y, uintptr_t cols, int64_t chunk, S s,
                                                 uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.conv2d_forward(dev_ptr<const T>(x), dev_ptr<const T>(w), dev_ptr<const T>(b),
                         dev_ptr<T>(y), dev_ptr<T>(cols), chunk, cs, stream_of(stream));
        nnl::cuda::check("conv2d");
    }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("cols"), py::arg("chunk"),
       py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_conv2d_input_grad_" + sfx).c_str(), [f](uintptr_t dout, uintptr_t w, uintptr_t dx,
                                                    uintptr_t dcols, int64_t chunk, S s,
                                                    uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.conv2d_input_grad(dev_ptr<const T>(dout), dev_ptr<const T>(w), dev_ptr<T>(dx),
                            dev_ptr<T>(dcols), chunk, cs, stream_of(stream));
        nnl::cuda::check("conv2d_input_grad");
    }, py::arg("dout"), py::arg("w"), py::arg("dx"), py::arg("dcols"), py::arg("chunk"),
       py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_conv2d_weight_grad_" + sfx).c_str(), [f](uintptr_t dout, uintptr_t x, uintptr_t dw,
                                                     uintptr_t db, uintptr_t cols, int64_t chunk,
                                                     S s, uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.conv2d_weight_grad(dev_ptr<const T>(dout), dev_ptr<const T>(x), dev_ptr<T>(dw),
                             dev_ptr<T>(db), dev_ptr<T>(cols), chunk, cs, stream_of(stream));
        nnl::cuda::check("conv2d_backward");
    }, py::arg("dout"), py::arg("x"), py::arg("dw"), py::arg("db"), py::arg("cols"),
       py::arg("chunk"), py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_max_pool2d_forward_" + sfx).c_str(), [f](uintptr_t x, uintptr_t y, uintptr_t argmax,
                                                     S s, uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.max_pool2d_forward(dev_ptr<const T>(x), dev_ptr<T>(y), dev_ptr<int64_t>(argmax), cs,
                             stream_of(stream));
        nnl::cuda::check("max_pool2d");
    }, py::arg("x"), py::arg("y"), py::arg("argmax"), py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_max_pool2d_backward_" + sfx).c_str(), [f](uintptr_t dout, uintptr_t argmax,
                                                      uintptr_t dx, int64_t planes, int64_t HW,
                                                      int64_t L, uintptr_t stream) {
        py::gil_scoped_release nogil;
        f.max_pool2d_backward(dev_ptr<const T>(dout), dev_ptr<const int64_t>(argmax),
                              dev_ptr<T>(dx), planes, HW, L, stream_of(stream));
        nnl::cuda::check("max_pool2d_backward");
    }, py::arg("dout"), py::arg("argmax"), py::arg("dx"), py::arg("planes"), py::arg("HW"),
       py::arg("L"), py::arg("stream") = 0);
    m.def(("conv_avg_pool2d_forward_" + sfx).c_str(), [f](uintptr_t x, uintptr_t y, S s,
                                                     uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.avg_pool2d_forward(dev_ptr<const T>(x), dev_ptr<T>(y), cs, stream_of(stream));
        nnl::cuda::check("avg_pool2d");
    }, py::arg("x"), py::arg("y"), py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_avg_pool2d_backward_" + sfx).c_str(), [f](uintptr_t dout, uintptr_t dx, S s,
                                                      uintptr_t stream) {
        const ConvShape cs = shape_of(s);
        py::gil_scoped_release nogil;
        f.avg_pool2d_backward(dev_ptr<const T>(dout), dev_ptr<T>(dx), cs, stream_of(stream));
        nnl::cuda::check("avg_pool2d_backward");
    }, py::arg("dout"), py::arg("dx"), py::arg("shape"), py::arg("stream") = 0);
    m.def(("conv_batchnorm_forward_" + sfx).c_str(), [f](uintptr_t x, uintptr_t gamma, uintptr_t beta,
                                                    uintptr_t y, uintptr_t mean, uintptr_t rstd,
                                                    int64_t N, int64_t C, int64_t M, double eps,
                                                    bool relu, uintptr_t stream) {
        py::gil_scoped_release nogil;
        f.batchnorm_forward(dev_ptr<const T>(x), dev_ptr<const T>(gamma), dev_ptr<const T>(beta),
                            dev_ptr<T>(y), dev_ptr<T>(mean), dev_ptr<T>(rstd), N, C, M, eps,
                            relu, stream_of(stream));
        nnl::cuda::check("batchnorm");
    }, py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("y"), py::arg("mean"),
       py::arg("rstd"), py::arg("N"), py::arg("C"), py::arg("M"), py::arg("eps"),
       py::arg("relu") = false, py::arg("stream") = 0);
    m.def(("conv_batchnorm_backward_" + sfx).c_str(), [f](uintptr_t dout, uintptr_t x,
                                                     uintptr_t gamma, uintptr_t mean,
                                                     uintptr_t rstd, uintptr_t yrelu,
                                                     uintptr_t dx, uintptr_t dgamma,
                                                     uintptr_t dbeta, int64_t N, int64_t C,
                                                     int64_t M, uintptr_t stream) {
        py::gil_scoped_release nogil;
        f.batchnorm_backward(dev_ptr<const T>(dout), dev_ptr<const T>(x),
                             dev_ptr<const T>(gamma), dev_ptr<const T>(mean),
                             dev_ptr<const T>(rstd), dev_ptr<const T>(yrelu), dev_ptr<T>(dx),
                             dev_ptr<T>(dgamma), dev_ptr<T>(dbeta), N, C, M, stream_of(stream));
        nnl::cuda::check("batchnorm_backward");
    }, py::arg("dout"), py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("rstd"),
       py::arg("yrelu"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"), py::arg("N"),
       py::arg("C"), py::arg("M"), py::arg("stream") = 0);
    m.def(("conv_batchnorm_inference_" + sfx).c_str(), [f](uintptr_t x, uintptr_t gamma,
                                                      uintptr_t beta, uintptr_t rmean,
                                                      uintptr_t rvar, uintptr_t y, int64_t N,
                                                      int64_t C, int64_t M, double eps,
                                                      bool relu, uintptr_t stream) {
        py::gil_scoped_release nogil;
        f.batchnorm_inference(dev_ptr<const T>(x), dev_ptr<const T>(gamma),
                              dev_ptr<const T>(beta), dev_ptr<const T>(rmean),
                              dev_ptr<const T>(rvar), dev_ptr<T>(y), N, C, M, eps, relu,
                              stream_of(stream));
        nnl::cuda::check("batchnorm_inference");
    }, py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
       py::arg("running_var"), py::arg("y"), py::arg("N"), py::arg("C"), py::arg("M"),
       py::arg("eps"), py::arg("relu") = false, py::arg("stream") = 0);
}

void bind(py::module_& m) {
    namespace c = nnl::cuda;
    bind_dtype<float>(m, "f32", {c::im2col_f32, c::col2im_f32, c::conv2d_forward_f32,
                                 c::conv2d_input_grad_f32, c::conv2d_weight_grad_f32,
                                 c::max_pool2d_forward_f32, c::max_pool2d_backward_f32,
                                 c::avg_pool2d_forward_f32, c::avg_pool2d_backward_f32,
                                 c::batchnorm_forward_f32, c::batchnorm_backward_f32,
                                 c::batchnorm_inference_f32});
    bind_dtype<double>(m, "f64", {c::im2col_f64, c::col2im_f64, c::conv2d_forward_f64,
                                  c::conv2d_input_grad_f64, c::conv2d_weight_grad_f64,
                                  c::max_pool2d_forward_f64, c::max_pool2d_backward_f64,
                                  c::avg_pool2d_forward_f64, c::avg_pool2d_backward_f64,
                                  c::batchnorm_forward_f64, c::batchnorm_backward_f64,
                                  c::batchnorm_inference_f64});
}
}  // namespace

NNL_CUDA_BINDINGS(conv, bind)
