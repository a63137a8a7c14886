// nnlite.ops._conv: pybind11 entry points for csrc/cpu/conv.cpp (convolution, pooling,
// BatchNorm).
//
// The Python wrappers (nnlite/ops/native_conv.py) validate arguments exactly like the numpy
// twins, make inputs C-contiguous and allocate outputs; these functions re-check what the C++
// side relies on (dtype, C order, sizes against the geometry, writable outputs), dispatch
// float/double and release the GIL.
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/bind_common.h"
#include "cpu/conv.h"

namespace py = pybind11;

using nnlite::ConvGeom;
using nnlite::is_c_array_of;
using nnlite::is_float32;

namespace {

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T>
const T* cp_or_null(const py::object& a) {
    return a.is_none() ? nullptr : static_cast<const T*>(a.cast<py::array>().data());
}

template <typename Fn>
void run_nogil(bool f32, Fn&& fn) {
    py::gil_scoped_release nogil;
    if (f32) fn(float());
    else fn(double());
}

// geom = (N, C, H, W, O, G, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo), checked for sense: every
// index the kernels form stays inside the arrays whose sizes check() then confirms
ConvGeom geometry(const char* op, const std::vector<int64_t>& v) {
    if (v.size() != 16) throw py::value_error(std::string(op) + ": internal: geometry needs 16");
    ConvGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
               v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
    const bool ok = g.N >= 0 && g.C >= 1 && g.H >= 1 && g.W >= 1 && g.O >= 1 && g.G >= 1 &&
                    g.C % g.G == 0 && g.O % g.G == 0 && g.KH >= 1 && g.KW >= 1 && g.sh >= 1 &&
                    g.sw >= 1 && g.ph >= 0 && g.pw >= 0 && g.dh >= 1 && g.dw >= 1 &&
                    g.Ho == (g.H + 2 * g.ph - g.dh * (g.KH - 1) - 1) / g.sh + 1 &&
                    g.Wo == (g.W + 2 * g.pw - g.dw * (g.KW - 1) - 1) / g.sw + 1 && g.Ho >= 1 &&
                    g.Wo >= 1;
    if (!ok) throw py::value_error(std::string(op) + ": internal: inconsistent geometry");
    return g;
}

void check(const char* op, const py::array& a, int64_t size, bool out, const char* name) {
    if (a.size() != size)
        throw py::value_error(std::string(op) + ": internal: " + name + " has the wrong size");
    if (out && !a.writeable()) throw py::value_error(std::string(op) + ": " + name + " is read-only");
}

void conv2d_forward(py::array x, py::array w, py::object b, py::array y,
                    const std::vector<int64_t>& geom) {
    const char* op = "conv2d";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&x, &w, &y});
    check(op, x, g.N * g.C * g.H * g.W, false, "x");
    check(op, w, g.O * (g.C / g.G) * g.KH * g.KW, false, "w");
    check(op, y, g.N * g.O * g.Ho * g.Wo, true, "y");
    if (!b.is_none()) {
        py::array ba = b.cast<py::array>();
        is_float32(op, {&x, &ba});
        check(op, ba, g.O, false, "b");
    }
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::conv2d_forward<T>(cp<T>(x), cp<T>(w), cp_or_null<T>(b), mp<T>(y), g);
    });
}

void conv2d_input_grad(py::array dout, py::array w, py::array dx,
                       const std::vector<int64_t>& geom) {
    const char* op = "conv2d_input_grad";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&dout, &w, &dx});
    check(op, dout, g.N * g.O * g.Ho * g.Wo, false, "grad_out");
    check(op, w, g.O * (g.C / g.G) * g.KH * g.KW, false, "w");
    check(op, dx, g.N * g.C * g.H * g.W, true, "dx");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::conv2d_input_grad<T>(cp<T>(dout), cp<T>(w), mp<T>(dx), g);
    });
}

void conv2d_weight_grad(py::array dout, py::array x, py::array dw, py::array db,
                        const std::vector<int64_t>& geom) {
    const char* op = "conv2d_backward";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&dout, &x, &dw, &db});
    check(op, dout, g.N * g.O * g.Ho * g.Wo, false, "grad_out");
    check(op, x, g.N * g.C * g.H * g.W, false, "x");
    check(op, dw, g.O * (g.C / g.G) * g.KH * g.KW, true, "dw");
    check(op, db, g.O, true, "db");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::conv2d_weight_grad<T>(cp<T>(dout), cp<T>(x), mp<T>(dw), mp<T>(db), g);
    });
}

// pooling: geom with C = planes (N·C), N = 1, O = C, G = 1, dilation 1
void max_pool2d(py::array x, py::array y, py::array argmax, const std::vector<int64_t>& geom) {
    const char* op = "max_pool2d";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&x, &y});
    if (!is_c_array_of<int64_t>(argmax))
        throw py::type_error(std::string(op) + ": internal: argmax must be C-contiguous int64");
    check(op, x, g.C * g.H * g.W, false, "x");
    check(op, y, g.C * g.Ho * g.Wo, true, "y");
    check(op, argmax, g.C * g.Ho * g.Wo, true, "argmax");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::max_pool2d_forward<T>(cp<T>(x), mp<T>(y), mp<int64_t>(argmax), g);
    });
}

// only the plane sizes matter here: planes (N·C) of HW inputs and L outputs each
void max_pool2d_backward(py::array dout, py::array argmax, py::array dx, int64_t planes,
                         int64_t HW, int64_t L) {
    const char* op = "max_pool2d_backward";
    const bool f32 = is_float32(op, {&dout, &dx});
    if (!is_c_array_of<int64_t>(argmax))
        throw py::type_error(std::string(op) + ": internal: argmax must be C-contiguous int64");
    check(op, dout, planes * L, false, "grad_out");
    check(op, argmax, planes * L, false, "argmax");
    check(op, dx, planes * HW, true, "dx");
    const int64_t* a = static_cast<const int64_t*>(argmax.data());
    // a bad index would write out of bounds. One flag over all, not a test per index that
    // throws: that loop did not vectorise, and took 0.4 ms of the CNN's first pooling
    bool bad = false;
    const int64_t n = argmax.size();
    for (int64_t i = 0; i < n; i++) bad |= uint64_t(a[i]) >= uint64_t(HW);
    if (bad) throw py::value_error(std::string(op) + ": internal: argmax out of range");
    ConvGeom g{};
    g.C = planes, g.H = HW, g.W = 1, g.Ho = L, g.Wo = 1;
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::max_pool2d_backward<T>(cp<T>(dout), a, mp<T>(dx), g);
    });
}

void avg_pool2d(py::array x, py::array y, const std::vector<int64_t>& geom) {
    const char* op = "avg_pool2d";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&x, &y});
    check(op, x, g.C * g.H * g.W, false, "x");
    check(op, y, g.C * g.Ho * g.Wo, true, "y");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::avg_pool2d_forward<T>(cp<T>(x), mp<T>(y), g);
    });
}

void avg_pool2d_backward(py::array dout, py::array dx, const std::vector<int64_t>& geom) {
    const char* op = "avg_pool2d_backward";
    const ConvGeom g = geometry(op, geom);
    const bool f32 = is_float32(op, {&dout, &dx});
    check(op, dout, g.C * g.Ho * g.Wo, false, "grad_out");
    check(op, dx, g.C * g.H * g.W, true, "dx");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::avg_pool2d_backward<T>(cp<T>(dout), mp<T>(dx), g);
    });
}

// x viewed as (N, C, M)
// relu: y = max(0, ·), a fused ReLU
void batchnorm(py::array x, py::array gamma, py::array beta, double eps, py::array y,
               py::array mean, py::array rstd, int64_t N, int64_t M, bool relu) {
    const char* op = "batchnorm";
    const bool f32 = is_float32(op, {&x, &gamma, &beta, &y, &mean, &rstd});
    const int64_t C = gamma.size();
    check(op, x, N * C * M, false, "x");
    check(op, beta, C, false, "beta");
    check(op, y, N * C * M, true, "y");
    check(op, mean, C, true, "mean");
    check(op, rstd, C, true, "rstd");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::batchnorm_forward<T>(cp<T>(x), cp<T>(gamma), cp<T>(beta), mp<T>(y), mp<T>(mean),
                                     mp<T>(rstd), N, C, M, eps, relu);
    });
}

// y: the output of a forward with a fused ReLU (its y > 0 masks dout), or None
void batchnorm_backward(py::array dout, py::array x, py::array gamma, py::array mean,
                        py::array rstd, py::object y, py::array dx, py::array dgamma,
                        py::array dbeta, int64_t N, int64_t M) {
    const char* op = "batchnorm_backward";
    const bool f32 = is_float32(op, {&dout, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
    const int64_t C = gamma.size();
    check(op, dout, N * C * M, false, "grad_out");
    check(op, x, N * C * M, false, "x");
    check(op, mean, C, false, "mean");
    check(op, rstd, C, false, "rstd");
    check(op, dx, N * C * M, true, "dx");
    check(op, dgamma, C, true, "dgamma");
    check(op, dbeta, C, true, "dbeta");
    if (!y.is_none()) {
        py::array ya = y.cast<py::array>();
        is_float32(op, {&dout, &ya});
        check(op, ya, N * C * M, false, "y");
    }
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::batchnorm_backward<T>(cp<T>(dout), cp<T>(x), cp<T>(gamma), cp<T>(mean),
                                      cp<T>(rstd), cp_or_null<T>(y), mp<T>(dx), mp<T>(dgamma),
                                      mp<T>(dbeta), N, C, M);
    });
}

void batchnorm_inference(py::array x, py::array gamma, py::array beta, py::array rmean,
                         py::array rvar, double eps, py::array y, int64_t N, int64_t M,
                         bool relu) {
    const char* op = "batchnorm_inference";
    const bool f32 = is_float32(op, {&x, &gamma, &beta, &rmean, &rvar, &y});
    const int64_t C = gamma.size();
    check(op, x, N * C * M, false, "x");
    check(op, beta, C, false, "beta");
    check(op, rmean, C, false, "running_mean");
    check(op, rvar, C, false, "running_var");
    check(op, y, N * C * M, true, "y");
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::batchnorm_inference<T>(cp<T>(x), cp<T>(gamma), cp<T>(beta), cp<T>(rmean),
                                       cp<T>(rvar), mp<T>(y), N, C, M, eps, relu);
    });
}

}  // namespace

PYBIND11_MODULE(_conv, m) {
    m.doc() = "nnlite convolution, pooling and BatchNorm kernels (NCHW)";
    nnlite::bind_runtime(m);
    m.def("conv2d", &conv2d_forward, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"),
          py::arg("geom"), "y = conv2d(x, w) + b (b may be None), written into y");
    m.def("conv2d_input_grad", &conv2d_input_grad, py::arg("grad"), py::arg("w"), py::arg("dx"),
          py::arg("geom"), "dx of conv2d (the transposed convolution), written into dx");
    m.def("conv2d_weight_grad", &conv2d_weight_grad, py::arg("grad"), py::arg("x"),
          py::arg("dw"), py::arg("db"), py::arg("geom"), "dw, db of conv2d, written into them");
    m.def("_set_winograd", [](int mode) { nnlite::set_winograd(mode == 1 ? 4 : mode); },
          py::arg("mode"),
          "Winograd for 3x3 stride-1 float32 convolutions: 4 or True (default): F(4x4, 3x3) "
          "where it pays, else F(2x2, 3x3); 2: F(2x2, 3x3) only; 0 or False: off (im2col + "
          "GEMM for every convolution); for tests and comparisons");
    m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("y"), py::arg("argmax"),
          py::arg("geom"), "y, argmax of max pooling over the planes of x");
    m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad"), py::arg("argmax"),
          py::arg("dx"), py::arg("planes"), py::arg("HW"), py::arg("L"), "dx of max pooling");
    m.def("avg_pool2d", &avg_pool2d, py::arg("x"), py::arg("y"), py::arg("geom"),
          "y of average pooling over the planes of x");
    m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad"), py::arg("dx"),
          py::arg("geom"), "dx of average pooling");
    m.def("batchnorm", &batchnorm, py::arg("x"), py::arg("gamma"), py::arg("beta"),
          py::arg("eps"), py::arg("y"), py::arg("mean"), py::arg("rstd"), py::arg("N"),
          py::arg("M"), py::arg("relu") = false,
          "y, mean, rstd of BatchNorm (training) over x (N, C, M); relu: y = max(0, ·)");
    m.def("batchnorm_backward", &batchnorm_backward, py::arg("grad"), py::arg("x"),
          py::arg("gamma"), py::arg("mean"), py::arg("rstd"), py::arg("y"), py::arg("dx"),
          py::arg("dgamma"), py::arg("dbeta"), py::arg("N"), py::arg("M"),
          "dx, dgamma, dbeta of BatchNorm; y (or None): the output of a forward with relu, "
          "whose y > 0 masks grad");
    m.def("batchnorm_inference", &batchnorm_inference, py::arg("x"), py::arg("gamma"),
          py::arg("beta"), py::arg("running_mean"), py::arg("running_var"), py::arg("eps"),
          py::arg("y"), py::arg("N"), py::arg("M"), py::arg("relu") = false,
          "y of BatchNorm with running statistics; relu: y = max(0, ·)");
}
