// nnlite.ops._attention: pybind11 entry points for csrc/cpu/attention.cpp.
//
// The Python wrappers (nnlite/ops/native_attention.py) validate arguments exactly like the numpy
// twins and make inputs C-contiguous; these functions only re-check what the C++ side relies on
// (dtype, C order, shapes), allocate the outputs, dispatch float/double and release the GIL.
#include "cpu/attention.h"
#include "bindings/bind_common.h"

namespace py = pybind11;

using nnlite::is_c_array_of;
using nnlite::is_float32;

namespace {

struct Dims {
    int64_t B, H, T, D;
};

Dims dims_of(const char* op, const py::array& q, std::initializer_list<const py::array*> same) {
    if (q.ndim() != 4) throw py::value_error(std::string(op) + ": internal: q must be 4-D");
    for (const py::array* a : same) {
        bool eq = a->ndim() == 4;
        for (int i = 0; eq && i < 4; i++) eq = a->shape(i) == q.shape(i);
        if (!eq)
            throw py::value_error(std::string(op) + ": internal: shape " + nnlite::shape_str(*a) +
                                  " differs from q " + nnlite::shape_str(q));
    }
    Dims d{q.shape(0), q.shape(1), q.shape(2), q.shape(3)};
    if (d.T < 1 || d.D < 1) throw py::value_error(std::string(op) + ": internal: T, D must be >= 1");
    return d;
}

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// (out, lse), or (None, lse) when with_out is false (row statistics only).
py::tuple forward(py::array q, py::array k, py::array v, bool causal, double scale, bool with_out) {
    const char* op = "attention";
    const bool f32 = is_float32(op, {&q, &k, &v});
    const Dims s = dims_of(op, q, {&k, &v});
    const py::dtype dt = q.dtype();
    py::array lse(dt, std::vector<py::ssize_t>{s.B, s.H, s.T});
    py::object out_obj = py::none();
    py::array out;
    if (with_out) {
        out = py::array(dt, std::vector<py::ssize_t>{s.B, s.H, s.T, s.D});
        out_obj = out;
    }
    {
        py::gil_scoped_release nogil;
        const int64_t BH = s.B * s.H;
        if (f32)
            nnlite::attention_forward<float>(cp<float>(q), cp<float>(k), cp<float>(v),
                                             with_out ? mp<float>(out) : nullptr, mp<float>(lse),
                                             BH, s.T, s.D, causal, float(scale));
        else
            nnlite::attention_forward<double>(cp<double>(q), cp<double>(k), cp<double>(v),
                                              with_out ? mp<double>(out) : nullptr,
                                              mp<double>(lse), BH, s.T, s.D, causal, scale);
    }
    return py::make_tuple(out_obj, lse);
}

py::tuple backward(py::array q, py::array k, py::array v, py::array out, py::array dout,
                   py::array lse, bool causal, double scale) {
    const char* op = "attention_backward";
    const bool f32 = is_float32(op, {&q, &k, &v, &out, &dout, &lse});
    const Dims s = dims_of(op, q, {&k, &v, &out, &dout});
    if (lse.ndim() != 3 || lse.shape(0) != s.B || lse.shape(1) != s.H || lse.shape(2) != s.T)
        throw py::value_error("attention_backward: internal: lse must have shape (B, H, T)");
    const py::dtype dt = q.dtype();
    const std::vector<py::ssize_t> shape{s.B, s.H, s.T, s.D};
    py::array dq(dt, shape), dk(dt, shape), dv(dt, shape);
    {
        py::gil_scoped_release nogil;
        const int64_t BH = s.B * s.H;
        if (f32)
            nnlite::attention_backward<float>(cp<float>(q), cp<float>(k), cp<float>(v),
                                              cp<float>(out), cp<float>(dout), cp<float>(lse),
                                              mp<float>(dq), mp<float>(dk), mp<float>(dv), BH,
                                              s.T, s.D, causal, float(scale));
        else
            nnlite::attention_backward<double>(cp<double>(q), cp<double>(k), cp<double>(v),
                                               cp<double>(out), cp<double>(dout), cp<double>(lse),
                                               mp<double>(dq), mp<double>(dk), mp<double>(dv), BH,
                                               s.T, s.D, causal, scale);
    }
    return py::make_tuple(dq, dk, dv);
}

}  // namespace

PYBIND11_MODULE(_attention, m) {
    m.doc() = "nnlite flash-style attention kernels (csrc/cpu/attention.cpp)";
    m.def("forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"),
          py::arg("scale"), py::arg("with_out") = true,
          "(out, lse) of softmax(q kᵀ·scale + mask) v for C-contiguous (B, H, T, D) arrays of "
          "one float dtype; with_out=False computes only lse (B, H, T) and returns (None, lse).");
    m.def("backward", &backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
          py::arg("grad_out"), py::arg("lse"), py::arg("causal"), py::arg("scale"),
          "(dq, dk, dv) of attention, recomputing P tile by tile from q, k and lse (B, H, T).");
    nnlite::bind_runtime(m);
}
