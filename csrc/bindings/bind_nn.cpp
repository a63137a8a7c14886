// nnlite.ops._nn: pybind11 entry points for csrc/layernorm.cpp, embedding.cpp, adam_many.cpp.
//
// The Python wrappers (nnlite/ops/native_nn.py) validate arguments exactly like the numpy twins,
// make inputs C-contiguous and allocate outputs; these functions only re-check what the C++ side
// relies on (dtype, C order, sizes, writable outputs), dispatch float/double, release the GIL.
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/bind_common.h"
#include "cpu/nn.h"

namespace py = pybind11;

using nnlite::is_c_array_of;
using nnlite::is_float32;

namespace {

void check_size(const char* op, const char* name, const py::array& a, py::ssize_t size,
                bool writable = false) {
    if (a.size() != size)
        throw py::value_error(std::string(op) + ": internal: " + name + " has the wrong size");
    if (writable && !a.writeable())
        throw py::value_error(std::string(op) + ": " + name + " is read-only");
}

const int64_t* ids_ptr(const char* op, const py::array& ids) {
    if (!is_c_array_of<int64_t>(ids))
        throw py::type_error(std::string(op) + ": internal: ids must be C-contiguous int64");
    return static_cast<const int64_t*>(ids.data());
}

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// x (rows, C) → y (rows, C), mean, rstd (rows,); C = len(gamma)
void layernorm(py::array x, py::array gamma, py::array beta, double eps, py::array y,
               py::array mean, py::array rstd) {
    const char* op = "layernorm";
    const bool f32 = is_float32(op, {&x, &gamma, &beta, &y, &mean, &rstd});
    const int64_t C = gamma.size();
    if (C == 0 || x.size() % C) throw py::value_error("layernorm: internal: x size is not a multiple of C");
    const int64_t rows = x.size() / C;
    check_size(op, "beta", beta, C);
    check_size(op, "y", y, x.size(), true);
    check_size(op, "mean", mean, rows, true);
    check_size(op, "rstd", rstd, rows, true);
    py::gil_scoped_release nogil;
    if (f32)
        nnlite::layernorm_forward<float>(cp<float>(x), cp<float>(gamma), cp<float>(beta), mp<float>(y),
                                         mp<float>(mean), mp<float>(rstd), rows, C, eps);
    else
        nnlite::layernorm_forward<double>(cp<double>(x), cp<double>(gamma), cp<double>(beta),
                                          mp<double>(y), mp<double>(mean), mp<double>(rstd), rows, C, eps);
}

void layernorm_backward(py::array g, py::array x, py::array gamma, py::array mean, py::array rstd,
                        py::array dx, py::array dgamma, py::array dbeta) {
    const char* op = "layernorm_backward";
    const bool f32 = is_float32(op, {&g, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
    const int64_t C = gamma.size();
    if (C == 0 || x.size() % C) throw py::value_error("layernorm_backward: internal: x size is not a multiple of C");
    const int64_t rows = x.size() / C;
    check_size(op, "grad", g, x.size());
    check_size(op, "mean", mean, rows);
    check_size(op, "rstd", rstd, rows);
    check_size(op, "dx", dx, x.size(), true);
    check_size(op, "dgamma", dgamma, C, true);
    check_size(op, "dbeta", dbeta, C, true);
    py::gil_scoped_release nogil;
    if (f32)
        nnlite::layernorm_backward<float>(cp<float>(g), cp<float>(x), cp<float>(gamma), cp<float>(mean),
                                          cp<float>(rstd), mp<float>(dx), mp<float>(dgamma),
                                          mp<float>(dbeta), rows, C);
    else
        nnlite::layernorm_backward<double>(cp<double>(g), cp<double>(x), cp<double>(gamma),
                                           cp<double>(mean), cp<double>(rstd), mp<double>(dx),
                                           mp<double>(dgamma), mp<double>(dbeta), rows, C);
}

// ids: int64 (rows,), each in [0, V) (checked here too: a bad id would read out of bounds)
void check_ids(const char* op, const int64_t* ids, int64_t rows, int64_t V) {
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= V)
            throw py::value_error(std::string(op) + ": internal: id out of range");
}

void embedding(py::array ids, py::array table, py::array out) {
    const char* op = "embedding";
    const bool f32 = is_float32(op, {&table, &out});
    if (table.ndim() != 2) throw py::value_error("embedding: internal: table must be 2-D");
    const int64_t V = table.shape(0), C = table.shape(1), rows = ids.size();
    const int64_t* id = ids_ptr(op, ids);
    check_size(op, "out", out, rows * C, true);
    check_ids(op, id, rows, V);
    py::gil_scoped_release nogil;
    if (f32) nnlite::embedding_forward<float>(id, cp<float>(table), mp<float>(out), rows, C);
    else nnlite::embedding_forward<double>(id, cp<double>(table), mp<double>(out), rows, C);
}

void embedding_backward(py::array ids, py::array grad, py::array dtable) {
    const char* op = "embedding_backward";
    const bool f32 = is_float32(op, {&grad, &dtable});
    if (dtable.ndim() != 2) throw py::value_error("embedding_backward: internal: dtable must be 2-D");
    const int64_t V = dtable.shape(0), C = dtable.shape(1), rows = ids.size();
    const int64_t* id = ids_ptr(op, ids);
    check_size(op, "grad", grad, rows * C);
    check_size(op, "dtable", dtable, V * C, true);
    check_ids(op, id, rows, V);
    py::gil_scoped_release nogil;
    if (f32) nnlite::embedding_backward<float>(id, cp<float>(grad), mp<float>(dtable), rows, C);
    else nnlite::embedding_backward<double>(id, cp<double>(grad), mp<double>(dtable), rows, C);
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
        check_size(op, "grad", g, n);
        check_size(op, "param", p, n, true);
        check_size(op, "m", m, n, true);
        check_size(op, "v", v, n, true);
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

}  // namespace

PYBIND11_MODULE(_nn, m) {
    m.doc() = "nnlite transformer kernels: LayerNorm, embedding, many-tensor Adam/AdamW";
    nnlite::bind_runtime(m);
    m.def("layernorm", &layernorm, py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
          py::arg("y"), py::arg("mean"), py::arg("rstd"),
          "y, mean, rstd = LayerNorm(x) over the last axis, written into the given arrays");
    m.def("layernorm_backward", &layernorm_backward, py::arg("grad"), py::arg("x"), py::arg("gamma"),
          py::arg("mean"), py::arg("rstd"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"),
          "dx, dgamma, dbeta of LayerNorm, written into the given arrays");
    m.def("embedding", &embedding, py::arg("ids"), py::arg("table"), py::arg("out"),
          "out[r] = table[ids[r]]; ids int64 C-contiguous");
    m.def("embedding_backward", &embedding_backward, py::arg("ids"), py::arg("grad"),
          py::arg("dtable"), "dtable[ids[r]] += grad[r] in place (repeated ids add up)");
    m.def("adam_update_many", &adam_update_many, py::arg("params"), py::arg("grads"), py::arg("ms"),
          py::arg("vs"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
          py::arg("weight_decays"), py::arg("step"), py::arg("decoupled"),
          "one Adam/AdamW step over lists of C-contiguous arrays of one dtype, in place");
}
