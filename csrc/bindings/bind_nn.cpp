// nnlite.ops._nn: pybind11 entry points for csrc/cpu/layernorm.cpp, embedding.cpp, adam_many.cpp,
// sum_squares.cpp.
//
// The Python wrappers (nnlite/ops/native_nn.py) validate arguments exactly like the numpy twins,
// make inputs C-contiguous and allocate outputs; these functions only re-check what the C++ side
// relies on (dtype, C order, sizes, writable outputs), dispatch float/double, release the GIL.
#include <initializer_list>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/bind_common.h"
#include "cpu/nn.h"

namespace py = pybind11;

using nnlite::is_c_array_of;
using nnlite::is_float32;

namespace {

// One array's expected size; an output must also be writable.
struct Expect {
    const char* name;
    const py::array* a;
    py::ssize_t size;
    bool out;
};

void check_sizes(const char* op, std::initializer_list<Expect> expected) {
    for (const Expect& e : expected) {
        if (e.a->size() != e.size)
            throw py::value_error(std::string(op) + ": internal: " + e.name +
                                  " has the wrong size");
        if (e.out && !e.a->writeable())
            throw py::value_error(std::string(op) + ": " + e.name + " is read-only");
    }
}

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// Releases the GIL, then fn(T()) with T = float when f32, else double: one call site serves
// both dtypes.
template <typename Fn>
void run_nogil(bool f32, Fn&& fn) {
    py::gil_scoped_release nogil;
    if (f32) fn(float());
    else fn(double());
}

// rows of x viewed as (rows, C)
int64_t rows_of(const char* op, const py::array& x, int64_t C) {
    if (C == 0 || x.size() % C)
        throw py::value_error(std::string(op) + ": internal: x size is not a multiple of C");
    return x.size() / C;
}

// x (rows, C) → y (rows, C), mean, rstd (rows,); C = len(gamma)
void layernorm(py::array x, py::array gamma, py::array beta, double eps, py::array y,
               py::array mean, py::array rstd) {
    const char* op = "layernorm";
    const bool f32 = is_float32(op, {&x, &gamma, &beta, &y, &mean, &rstd});
    const int64_t C = gamma.size(), rows = rows_of(op, x, C);
    check_sizes(op, {{"beta", &beta, C, false}, {"y", &y, x.size(), true},
                     {"mean", &mean, rows, true}, {"rstd", &rstd, rows, true}});
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::layernorm_forward<T>(cp<T>(x), cp<T>(gamma), cp<T>(beta), mp<T>(y), mp<T>(mean),
                                     mp<T>(rstd), rows, C, eps);
    });
}

// grad: the upstream gradient (dout in the kernels)
// residual (None: none): added to dx as it is written (the skip connection's gradient)
void layernorm_backward(py::array grad, py::array x, py::array gamma, py::array mean,
                        py::array rstd, py::array dx, py::array dgamma, py::array dbeta,
                        py::object residual_obj) {
    const char* op = "layernorm_backward";
    py::array res = residual_obj.is_none() ? x : py::reinterpret_borrow<py::array>(residual_obj);
    const bool f32 =
        is_float32(op, {&grad, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta, &res});
    const int64_t C = gamma.size(), rows = rows_of(op, x, C);
    check_sizes(op, {{"grad", &grad, x.size(), false}, {"mean", &mean, rows, false},
                     {"rstd", &rstd, rows, false}, {"dx", &dx, x.size(), true},
                     {"dgamma", &dgamma, C, true}, {"dbeta", &dbeta, C, true},
                     {"residual", &res, x.size(), false}});
    const bool has_res = !residual_obj.is_none();
    run_nogil(f32, [&](auto t) {
        using T = decltype(t);
        nnlite::layernorm_backward<T>(cp<T>(grad), cp<T>(x), cp<T>(gamma), cp<T>(mean),
                                      cp<T>(rstd), mp<T>(dx), mp<T>(dgamma), mp<T>(dbeta), rows,
                                      C, has_res ? cp<T>(res) : nullptr);
    });
}

// What embedding and its backward check alike: table (V, C) and the per-token array (rows, C)
// of one float dtype; ids C-contiguous int64, each in [0, V) (checked here too: a bad id would
// read or write out of bounds); `out`, one of the two, writable.
struct EmbeddingArgs {
    bool f32;
    const int64_t* ids;
    int64_t rows, C;
};

EmbeddingArgs embedding_args(const char* op, const py::array& ids, const py::array& table,
                             const py::array& tokens, const py::array& out) {
    const bool f32 = is_float32(op, {&table, &tokens});
    if (table.ndim() != 2) throw py::value_error(std::string(op) + ": internal: table must be 2-D");
    if (!is_c_array_of<int64_t>(ids))
        throw py::type_error(std::string(op) + ": internal: ids must be C-contiguous int64");
    const int64_t V = table.shape(0), C = table.shape(1), rows = ids.size();
    const int64_t* id = static_cast<const int64_t*>(ids.data());
    for (int64_t r = 0; r < rows; r++)
        if (id[r] < 0 || id[r] >= V)
            throw py::value_error(std::string(op) + ": internal: id out of range");
    check_sizes(op, {{"per-token array", &tokens, rows * C, false},
                     {"output", &out, out.size(), true}});
    return {f32, id, rows, C};
}

// out[r] = table[ids[r]]
void embedding(py::array ids, py::array table, py::array out) {
    const EmbeddingArgs e = embedding_args("embedding", ids, table, out, out);
    run_nogil(e.f32, [&](auto t) {
        using T = decltype(t);
        nnlite::embedding_forward<T>(e.ids, cp<T>(table), mp<T>(out), e.rows, e.C);
    });
}

// dtable[ids[r]] += grad[r]; grad: the upstream gradient (dout in the kernels)
void embedding_backward(py::array ids, py::array grad, py::array dtable) {
    const EmbeddingArgs e = embedding_args("embedding_backward", ids, dtable, grad, dtable);
    run_nogil(e.f32, [&](auto t) {
        using T = decltype(t);
        nnlite::embedding_backward<T>(e.ids, cp<T>(grad), mp<T>(dtable), e.rows, e.C);
    });
}

template <typename T>
void adam_many_t(const py::list& ps, const py::list& gs, const py::list& ms, const py::list& vs,
                 const std::vector<double>& wds, double lr, double b1, double b2, double eps,
                 int64_t step, bool decoupled) {
    const char* op = "adam_update_many";
    std::vector<nnlite::AdamTensor<T>> ts;
    ts.reserve(ps.size());
    for (size_t i = 0; i < ps.size(); i++) {
        py::array p = ps[i].cast<py::array>(), g = gs[i].cast<py::array>(),
                  m = ms[i].cast<py::array>(), v = vs[i].cast<py::array>();
        for (const py::array* a : {&p, &g, &m, &v})
            if (!is_c_array_of<T>(*a))
                throw py::type_error("adam_update_many: internal: arrays must be C-contiguous, one dtype");
        const py::ssize_t n = p.size();
        check_sizes(op, {{"grad", &g, n, false}, {"param", &p, n, true}, {"m", &m, n, true},
                         {"v", &v, n, true}});
        ts.push_back({mp<T>(p), cp<T>(g), mp<T>(m), mp<T>(v), int64_t(n), wds[i]});
    }
    // The arrays stay alive: the Python lists passed in hold them for the whole call.
    py::gil_scoped_release nogil;
    nnlite::adam_many<T>(ts, lr, b1, b2, eps, step, decoupled);
}

void adam_update_many(py::list ps, py::list gs, py::list ms, py::list vs, double lr, double b1,
                      double b2, double eps, std::vector<double> wds, int64_t step, bool decoupled) {
    const size_t n = ps.size();
    if (gs.size() != n || ms.size() != n || vs.size() != n || wds.size() != n)
        throw py::value_error("adam_update_many: internal: list lengths differ");
    if (n == 0) return;
    if (step < 1) throw py::value_error("adam_update_many: internal: step < 1");
    if (is_c_array_of<float>(ps[0].cast<py::array>()))
        adam_many_t<float>(ps, gs, ms, vs, wds, lr, b1, b2, eps, step, decoupled);
    else
        adam_many_t<double>(ps, gs, ms, vs, wds, lr, b1, b2, eps, step, decoupled);
}

template <typename T>
double sum_squares_many_t(const py::list& xs) {
    std::vector<const T*> ptrs;
    std::vector<int64_t> ns;
    for (const py::handle& h : xs) {
        const py::array a = h.cast<py::array>();
        if (!is_c_array_of<T>(a))
            throw py::type_error("sum_squares_many: internal: arrays must be C-contiguous, one dtype");
        ptrs.push_back(cp<T>(a));
        ns.push_back(int64_t(a.size()));
    }
    // The arrays stay alive: the Python list passed in holds them for the whole call.
    py::gil_scoped_release nogil;
    return nnlite::sum_squares_many<T>(ptrs, ns);
}

double sum_squares_many(py::list xs) {
    if (xs.size() == 0) return 0.0;
    if (is_c_array_of<float>(xs[0].cast<py::array>())) return sum_squares_many_t<float>(xs);
    return sum_squares_many_t<double>(xs);
}

}  // namespace

PYBIND11_MODULE(_nn, m) {
    m.doc() = "nnlite transformer kernels: LayerNorm, embedding, many-tensor Adam/AdamW";
    nnlite::bind_runtime(m);
    m.def("layernorm", &layernorm, py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
          py::arg("y"), py::arg("mean"), py::arg("rstd"),
          "y, mean, rstd = LayerNorm(x) over the last axis, written into the given arrays");
    m.def("layernorm_backward", &layernorm_backward, py::arg("grad"), py::arg("x"), py::arg("gamma"),
          py::arg("mean"), py::arg("rstd"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"),
          py::arg("residual") = py::none(),
          "dx (+ residual), dgamma, dbeta of LayerNorm, written into the given arrays");
    m.def("embedding", &embedding, py::arg("ids"), py::arg("table"), py::arg("out"),
          "out[r] = table[ids[r]]; ids int64 C-contiguous");
    m.def("embedding_backward", &embedding_backward, py::arg("ids"), py::arg("grad"),
          py::arg("dtable"), "dtable[ids[r]] += grad[r] in place (repeated ids add up)");
    m.def("adam_update_many", &adam_update_many, py::arg("params"), py::arg("grads"), py::arg("ms"),
          py::arg("vs"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
          py::arg("weight_decays"), py::arg("step"), py::arg("decoupled"),
          "one Adam/AdamW step over lists of C-contiguous arrays of one dtype, in place");
    m.def("sum_squares_many", &sum_squares_many, py::arg("arrays"),
          "sum of x*x over a list of C-contiguous arrays of one dtype, accumulated in double");
}
