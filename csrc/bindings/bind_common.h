// Helpers every binding file shares: the runtime functions each extension exposes, and
// argument checks whose errors name the op and the shapes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "common/cpu.h"

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

// True when the data of ``a`` is aligned for T: the kernels read and write it as T (a view at an
// odd byte offset of a byte buffer is not, and touching it as T is undefined behaviour).
template <typename T>
inline bool is_aligned_for(const py::array& a) {
    return reinterpret_cast<uintptr_t>(a.data()) % alignof(T) == 0;
}

// True when ``a`` is a C-contiguous, aligned array of T (the kernels take raw row-major
// pointers). The Python wrappers copy any other array first (nnlite/ops/_checks.c_aligned).
template <typename T>
inline bool is_c_array_of(const py::array& a) {
    return py::isinstance<py::array_t<T, py::array::c_style>>(a) && is_aligned_for<T>(a);
}

// dtype of the first array; every other one must match it and be C-contiguous. The Python
// wrappers already checked this with a user-facing message, so failing here is internal.
inline bool is_float32(const char* op, std::initializer_list<const py::array*> arrays) {
    const py::array& first = **arrays.begin();
    const bool f32 = is_c_array_of<float>(first);
    for (const py::array* a : arrays) {
        if (f32 ? !is_c_array_of<float>(*a) : !is_c_array_of<double>(*a))
            throw py::type_error(std::string(op) +
                                 ": internal: arrays must be C-contiguous, aligned and all "
                                 "float32 or all float64 (got " + shape_str(*a) + ")");
    }
    return f32;
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
    m.def("_threads_now", &threads_now);
    m.def("_report_team", &report_team);  // tests: what a team on a busy machine reports
    m.def("_set_num_threads", &set_num_threads);
    m.def("_has_openmp", &has_openmp);
}

}  // namespace nnlite
