// Helpers every binding file shares: the runtime functions each extension exposes, and
// argument checks whose errors name the op and the shapes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>
#include <vector>

#include "cpu.h"

namespace nnlite {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); i++) s << (i ? ", " : "") << a.shape(i);
    if (a.ndim() == 1) s << ",";
    s << ")";
    return s.str();
}

// _simd_path(), _set_simd_path(name), _simd_supported(name), _num_threads(),
// _set_num_threads(n), _has_openmp(): every extension has its own copy of the forced-path
// switch, so nnlite.ops.force_simd() sets it in each one.
inline void bind_runtime(py::module_& m) {
    m.def("_simd_path", [] { return std::string(simd_name(simd_path())); });
    m.def("_best_simd", [] { return std::string(simd_name(best_simd())); });
    m.def("_set_simd_path", [](const std::string& n) { set_simd_path(simd_from_name(n)); });
    m.def("_simd_supported", [](const std::string& n) { return simd_supported(simd_from_name(n)); });
    m.def("_num_threads", &num_threads);
    m.def("_set_num_threads", &set_num_threads);
    m.def("_has_openmp", &has_openmp);
}

}  // namespace nnlite
