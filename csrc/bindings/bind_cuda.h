// bind_cuda.h: how a kernel family's binding file joins the CUDA module (nnlite.ops._cuda, or
// _cuda_shim in the tests) without any shared list to edit:
//
//   // csrc/bindings/bind_cuda_gemm.cpp
//   static void bind(py::module_& m) { m.def("gemm_f32", ...); }
//   NNL_CUDA_BINDINGS(gemm, bind)
//
// Device pointers arrive as Python ints (`uintptr_t`, from __cuda_array_interface__, or from
// __array_interface__ under the shim), sizes as int64, the stream as an int (CuPy's current
// stream's `.ptr`; 0 is the default stream). Bindings release the GIL around the launch and call
// nnl::cuda::check after it (csrc/cuda/README.md).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/device.h"

namespace nnl::cuda {
namespace py = pybind11;

using BindFn = void (*)(py::module_&);
struct Binding {
    const char* family;
    BindFn bind;
};
// every family's registration; bind_cuda.cpp's PYBIND11_MODULE runs them in name order
inline std::vector<Binding>& bindings() {
    static std::vector<Binding> all;
    return all;
}
struct Register {
    Register(const char* family, BindFn fn) { bindings().push_back({family, fn}); }
};

template <class T>
inline T* dev_ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
inline void* stream_of(uintptr_t s) { return reinterpret_cast<void*>(s); }

}  // namespace nnl::cuda

#define NNL_CUDA_BINDINGS(family, fn) \
    static const ::nnl::cuda::Register nnl_cuda_register_##family(#family, fn);
