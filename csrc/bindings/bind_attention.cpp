// nnlite.ops._attention: pybind11 entry points for csrc/cpu/attention.cpp.
//
// The Python wrappers (nnlite/ops/native_attention.py) validate arguments exactly like the numpy
// twins, pass views with unit stride along D as they are (any strides along B, H, T) and copy
// the rest; these functions only re-check what the C++ side relies on (dtype, alignment, shapes,
// unit stride along D, writable destinations), allocate the outputs not given, dispatch
// float/double and release the GIL.
#include "cpu/attention.h"
#include "bindings/bind_common.h"

#include <type_traits>

namespace py = pybind11;

using nnlite::Heads;
using nnlite::is_c_array_of;

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

// All arrays float32 or all float64 (the first one decides). The wrappers checked this with a
// user-facing message, so failing here is internal.
bool one_float_dtype(const char* op, std::initializer_list<const py::array*> arrays) {
    const bool f32 = py::isinstance<py::array_t<float>>(**arrays.begin());
    for (const py::array* a : arrays) {
        if (!(f32 ? py::isinstance<py::array_t<float>>(*a)
                  : py::isinstance<py::array_t<double>>(*a)))
            throw py::type_error(std::string(op) + ": internal: arrays must be all float32 or all "
                                 "float64 (got " + nnlite::shape_str(*a) + ")");
    }
    return f32;
}

// A (B, H, T, D) operand as the kernel reads it (P = const T) or writes it (P = T): aligned,
// strides whole elements, unit stride along D (D == 1: any), and, for a destination, writable.
// Strides along B, H, T are free.
template <typename T, typename P>
Heads<P> heads(const char* op, const char* name, py::array& a) {
    constexpr bool dest = !std::is_const<P>::value;
    const auto is = py::ssize_t(sizeof(T));
    bool ok = nnlite::is_aligned_for<T>(a) && (a.shape(3) == 1 || a.strides(3) == is);
    for (int i = 0; ok && i < 3; i++) ok = a.strides(i) % is == 0;
    ok = ok || a.size() == 0;   // nothing is read or written (numpy may leave data unaligned)
    if (!ok)
        throw py::value_error(std::string(op) + ": internal: " + name + " " +
                              nnlite::shape_str(a) + " must be aligned with unit stride along D");
    if (dest && !a.writeable())
        throw py::value_error(std::string(op) + ": internal: " + name + " is read-only");
    P* p;
    if constexpr (dest) p = static_cast<P*>(a.mutable_data());
    else p = static_cast<P*>(a.data());
    return {p, a.strides(0) / is, a.strides(1) / is, a.strides(2) / is};
}

template <typename T>
Heads<const T> in(const char* op, const char* name, py::array& a) {
    return heads<T, const T>(op, name, a);
}
template <typename T>
Heads<T> dst(const char* op, const char* name, py::array& a) {
    return heads<T, T>(op, name, a);
}

// The destination given (None: a new C-contiguous (B, H, T, D) array).
py::array dest_or_new(const char* op, const py::object& given, const py::array& q,
                      const Dims& s) {
    if (given.is_none())
        return py::array(q.dtype(), std::vector<py::ssize_t>{s.B, s.H, s.T, s.D});
    if (!py::isinstance<py::array>(given))
        throw py::type_error(std::string(op) + ": internal: destinations must be arrays");
    return py::reinterpret_borrow<py::array>(given);
}

// (out, lse), or (None, lse) when with_out is false (row statistics only). out: the array to
// write the result into (any strides along B, H, T), or None for a new one.
py::tuple forward(py::array q, py::array k, py::array v, bool causal, double scale, bool with_out,
                  py::object out_given) {
    const char* op = "attention";
    const Dims s = dims_of(op, q, {&k, &v});
    py::array out;
    if (with_out) {
        out = dest_or_new(op, out_given, q, s);
        dims_of(op, q, {&out});
    }
    const bool f32 = one_float_dtype(op, {&q, &k, &v});
    if (with_out) one_float_dtype(op, {&q, &out});
    py::array lse(q.dtype(), std::vector<py::ssize_t>{s.B, s.H, s.T});
    auto run = [&](auto zero) {
        using T = decltype(zero);
        const Heads<const T> hq = in<T>(op, "q", q), hk = in<T>(op, "k", k),
                             hv = in<T>(op, "v", v);
        const Heads<T> ho = with_out ? dst<T>(op, "out", out) : Heads<T>{nullptr, 0, 0, 0};
        T* l = static_cast<T*>(lse.mutable_data());
        py::gil_scoped_release nogil;
        nnlite::attention_forward<T>(hq, hk, hv, ho, l, s.B, s.H, s.T, s.D, causal, T(scale));
    };
    if (f32) run(0.0f);
    else run(0.0);
    return py::make_tuple(with_out ? py::object(out) : py::object(py::none()), lse);
}

// (dq, dk, dv), written into the arrays given (any strides along B, H, T) or new ones.
py::tuple backward(py::array q, py::array k, py::array v, py::array out, py::array dout,
                   py::array lse, bool causal, double scale, py::object dq_given,
                   py::object dk_given, py::object dv_given) {
    const char* op = "attention_backward";
    const Dims s = dims_of(op, q, {&k, &v, &out, &dout});
    py::array dq = dest_or_new(op, dq_given, q, s), dk = dest_or_new(op, dk_given, q, s),
              dv = dest_or_new(op, dv_given, q, s);
    dims_of(op, q, {&dq, &dk, &dv});
    const bool f32 = one_float_dtype(op, {&q, &k, &v, &out, &dout, &lse, &dq, &dk, &dv});
    if (lse.ndim() != 3 || lse.shape(0) != s.B || lse.shape(1) != s.H || lse.shape(2) != s.T)
        throw py::value_error("attention_backward: internal: lse must have shape (B, H, T)");
    if (!(f32 ? is_c_array_of<float>(lse) : is_c_array_of<double>(lse)))
        throw py::value_error("attention_backward: internal: lse must be C-contiguous, aligned");
    auto run = [&](auto zero) {
        using T = decltype(zero);
        const Heads<const T> hq = in<T>(op, "q", q), hk = in<T>(op, "k", k),
                             hv = in<T>(op, "v", v), ho = in<T>(op, "out", out),
                             hd = in<T>(op, "grad_out", dout);
        const Heads<T> gq = dst<T>(op, "dq", dq), gk = dst<T>(op, "dk", dk),
                       gv = dst<T>(op, "dv", dv);
        const T* l = static_cast<const T*>(lse.data());
        py::gil_scoped_release nogil;
        nnlite::attention_backward<T>(hq, hk, hv, ho, hd, l, gq, gk, gv, s.B, s.H, s.T, s.D,
                                      causal, T(scale));
    };
    if (f32) run(0.0f);
    else run(0.0);
    return py::make_tuple(dq, dk, dv);
}

}  // namespace

PYBIND11_MODULE(_attention, m) {
    m.doc() = "nnlite flash-style attention kernels (csrc/cpu/attention.cpp)";
    m.def("forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"),
          py::arg("scale"), py::arg("with_out") = true, py::arg("out") = py::none(),
          "(out, lse) of softmax(q kᵀ·scale + mask) v for (B, H, T, D) arrays of one float "
          "dtype, aligned, unit stride along D (any along B, H, T); out: a destination of that "
          "kind (must not overlap q, k, v or itself), or None for a new array. with_out=False "
          "computes only lse (B, H, T) and returns (None, lse).");
    m.def("backward", &backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
          py::arg("grad_out"), py::arg("lse"), py::arg("causal"), py::arg("scale"),
          py::arg("dq") = py::none(), py::arg("dk") = py::none(), py::arg("dv") = py::none(),
          "(dq, dk, dv) of attention, recomputing P tile by tile from q, k and lse (B, H, T, "
          "C-contiguous); operands as for forward, dq, dk, dv destinations or None.");
    nnlite::bind_runtime(m);
}
