// nnlite.ops._pointwise: pybind11 entry points for cpu/pointwise.cpp and cpu/softmax.cpp.
//
// The Python wrappers (nnlite/ops/native_pointwise.py) validate arguments exactly like the numpy
// twins, make inputs C-contiguous and allocate outputs; these functions only re-check what the
// C++ side relies on (dtype, C order, writable output), dispatch float/double and release the GIL.
// dout = the upstream gradient (the Python argument "grad").
#include "bindings/bind_common.h"
#include "cpu/pointwise.h"

namespace py = pybind11;
using nnlite::Act;

using nnlite::is_c_array_of;
using nnlite::is_float32;

namespace {

void check_out(const char* op, const py::array& out, py::ssize_t size) {
    if (!out.writeable()) throw py::value_error(std::string(op) + ": out is read-only");
    if (out.size() != size)
        throw py::value_error(std::string(op) + ": internal: out has the wrong size");
}

Act to_act(int a) {
    if (a < 0 || a > static_cast<int>(Act::Gelu)) throw py::value_error("unknown activation code");
    return static_cast<Act>(a);
}

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// out = act(x + b); b None → act(x). x, out C-contiguous with the same size; rows of F = len(b).
void bias_act(py::array x, py::object b_obj, py::array out, int act_code, double alpha) {
    const char* op = "bias_act";
    const Act act = to_act(act_code);
    check_out(op, out, x.size());
    if (b_obj.is_none()) {
        const bool f32 = is_float32(op, {&x, &out});
        const int64_t n = x.size();
        py::gil_scoped_release nogil;
        if (f32) nnlite::bias_act<float>(cp<float>(x), nullptr, mp<float>(out), 1, n, act, float(alpha));
        else nnlite::bias_act<double>(cp<double>(x), nullptr, mp<double>(out), 1, n, act, alpha);
        return;
    }
    py::array b = b_obj.cast<py::array>();
    const bool f32 = is_float32(op, {&x, &b, &out});
    const int64_t F = b.size();
    if (F == 0 || x.size() % F) throw py::value_error("bias_act: internal: x size is not a multiple of len(b)");
    const int64_t rows = x.size() / F;
    py::gil_scoped_release nogil;
    if (f32) nnlite::bias_act<float>(cp<float>(x), cp<float>(b), mp<float>(out), rows, F, act, float(alpha));
    else nnlite::bias_act<double>(cp<double>(x), cp<double>(b), mp<double>(out), rows, F, act, alpha);
}

void act_backward(py::array dout, py::array x, py::array y, py::array out, int act_code,
                  double alpha) {
    const char* op = "act_backward";
    const Act act = to_act(act_code);
    const bool f32 = is_float32(op, {&dout, &x, &y, &out});
    const int64_t n = dout.size();
    if (x.size() != n || y.size() != n) throw py::value_error("act_backward: internal: sizes differ");
    check_out(op, out, n);
    py::gil_scoped_release nogil;
    if (f32)
        nnlite::act_backward<float>(cp<float>(dout), cp<float>(x), cp<float>(y), mp<float>(out), n,
                                    act, float(alpha));
    else
        nnlite::act_backward<double>(cp<double>(dout), cp<double>(x), cp<double>(y),
                                     mp<double>(out), n, act, alpha);
}

// out = grad · act'(x) and db (+)= Σ_rows out, for (rows, C) arrays of one dtype, C = len(db).
// rows·C == 0 is fine (db = 0, or left as it is when accumulating).
void act_backward_bias_grad(py::array dout, py::array x, py::array y, py::array out,
                            py::array db, int act_code, double alpha, bool accumulate) {
    const char* op = "act_backward_bias_grad";
    const Act act = to_act(act_code);
    const bool f32 = is_float32(op, {&dout, &x, &y, &out, &db});
    const int64_t n = dout.size(), C = db.size();
    if (x.size() != n || y.size() != n)
        throw py::value_error("act_backward_bias_grad: internal: sizes differ");
    check_out(op, out, n);
    if (!db.writeable()) throw py::value_error("act_backward_bias_grad: db is read-only");
    if (C == 0 ? n != 0 : n % C != 0)
        throw py::value_error("act_backward_bias_grad: internal: size is not a multiple of len(db)");
    const int64_t rows = C ? n / C : 0;
    py::gil_scoped_release nogil;
    if (f32)
        nnlite::act_backward_bias_grad<float>(cp<float>(dout), cp<float>(x), cp<float>(y),
                                              mp<float>(out), mp<float>(db), rows, C, act,
                                              float(alpha), accumulate);
    else
        nnlite::act_backward_bias_grad<double>(cp<double>(dout), cp<double>(x), cp<double>(y),
                                               mp<double>(out), mp<double>(db), rows, C, act,
                                               alpha, accumulate);
}

// out = x · [u_i >= threshold] · scale (dropout; the mask from (seed, i), see pointwise.h).
void dropout(py::array x, py::array out, uint64_t seed, uint32_t threshold, double scale) {
    const bool f32 = is_float32("dropout", {&x, &out});
    check_out("dropout", out, x.size());
    const int64_t n = x.size();
    py::gil_scoped_release nogil;
    if (f32) nnlite::dropout<float>(cp<float>(x), mp<float>(out), n, seed, threshold, float(scale));
    else nnlite::dropout<double>(cp<double>(x), mp<double>(out), n, seed, threshold, scale);
}

// rows × C view of an array whose last axis is C
std::pair<int64_t, int64_t> rows_cols(const py::array& x) {
    const int64_t C = x.ndim() ? x.shape(x.ndim() - 1) : 1;
    return {C ? x.size() / C : 0, C};
}

void softmax(py::array x, py::array out) {
    const bool f32 = is_float32("softmax", {&x, &out});
    check_out("softmax", out, x.size());
    auto [rows, C] = rows_cols(x);
    py::gil_scoped_release nogil;
    if (f32) nnlite::softmax_forward<float>(cp<float>(x), mp<float>(out), rows, C);
    else nnlite::softmax_forward<double>(cp<double>(x), mp<double>(out), rows, C);
}

void softmax_backward(py::array dout, py::array y, py::array out) {
    const bool f32 = is_float32("softmax_backward", {&dout, &y, &out});
    if (y.size() != dout.size()) throw py::value_error("softmax_backward: internal: sizes differ");
    check_out("softmax_backward", out, dout.size());
    auto [rows, C] = rows_cols(dout);
    py::gil_scoped_release nogil;
    if (f32) nnlite::softmax_backward<float>(cp<float>(dout), cp<float>(y), mp<float>(out), rows, C);
    else nnlite::softmax_backward<double>(cp<double>(dout), cp<double>(y), mp<double>(out), rows, C);
}

// Returns the mean loss; writes dlogits into out. labels: int64 (N,), already range-checked.
double softmax_cross_entropy(py::array z, py::array labels, py::array out) {
    const char* op = "softmax_cross_entropy";
    const bool f32 = is_float32(op, {&z, &out});
    if (z.ndim() != 2 || !is_c_array_of<int64_t>(labels) || labels.size() != z.shape(0))
        throw py::value_error("softmax_cross_entropy: internal: needs 2-D logits and int64 labels (N,)");
    check_out(op, out, z.size());
    const int64_t N = z.shape(0), C = z.shape(1);
    const int64_t* t = cp<int64_t>(labels);
    for (int64_t i = 0; i < N; i++)  // cheap, and out-of-range labels would read out of bounds
        if (t[i] < 0 || t[i] >= C) throw py::value_error("softmax_cross_entropy: internal: label out of range");
    py::gil_scoped_release nogil;
    if (f32) return nnlite::softmax_xent<float>(cp<float>(z), t, mp<float>(out), N, C);
    return nnlite::softmax_xent<double>(cp<double>(z), t, mp<double>(out), N, C);
}

}  // namespace

PYBIND11_MODULE(_pointwise, m) {
    m.doc() = "nnlite pointwise kernels: activations, dropout, softmax, softmax cross-entropy";
    nnlite::bind_runtime(m);
    m.attr("ACT_CODES") = py::dict(py::arg("none") = 0, py::arg("relu") = 1, py::arg("leaky_relu") = 2,
                                   py::arg("tanh") = 3, py::arg("sigmoid") = 4, py::arg("gelu") = 5);
    m.def("bias_act", &bias_act, py::arg("x"), py::arg("b"), py::arg("out"), py::arg("act"),
          py::arg("alpha"), "out = act(x + b) (b None: act(x)); C-contiguous, one dtype");
    m.def("act_backward", &act_backward, py::arg("grad"), py::arg("x"), py::arg("y"), py::arg("out"),
          py::arg("act"), py::arg("alpha"), "out = grad · act'(x)");
    m.def("act_backward_bias_grad", &act_backward_bias_grad, py::arg("grad"), py::arg("x"),
          py::arg("y"), py::arg("out"), py::arg("db"), py::arg("act"), py::arg("alpha"),
          py::arg("accumulate"), "out = grad · act'(x); db = Σ_rows out (accumulate: db +=)");
    m.def("dropout", &dropout, py::arg("x"), py::arg("out"), py::arg("seed"),
          py::arg("threshold"), py::arg("scale"),
          "out = x · scale where SplitMix64(seed, i + 1) >> 32 >= threshold, else x · 0");
    m.def("softmax", &softmax, py::arg("x"), py::arg("out"), "out = softmax(x) over the last axis");
    m.def("softmax_backward", &softmax_backward, py::arg("grad"), py::arg("y"), py::arg("out"),
          "out = y ⊙ (grad - Σ grad·y) over the last axis");
    m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
          py::arg("out"), "mean cross-entropy; out = dlogits");
}
