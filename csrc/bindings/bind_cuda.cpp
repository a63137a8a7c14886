// nnlite.ops._cuda (and _cuda_shim, the same sources built with the shim for the tests): the
// device queries, and every kernel family's bindings (each bind_cuda_*.cpp registers itself
// through NNL_CUDA_BINDINGS; see bind_cuda.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>

#include "bindings/bind_cuda.h"
#include "cuda/device.h"

#ifndef NNL_CUDA_MODULE
#define NNL_CUDA_MODULE _cuda
#endif

namespace py = pybind11;

PYBIND11_MODULE(NNL_CUDA_MODULE, m) {
    m.doc() = "nnlite's CUDA kernels (csrc/cuda); see nnlite.ops.cuda_device";
    m.def("build_kind", [] { return std::string(nnl::cuda::build_kind()); },
          "'nvcc' for a real CUDA build, 'shim' for the CPU-thread build used by the tests");
    m.def("compiled_archs", [] { return std::string(nnl::cuda::compiled_archs()); });
    m.def("runtime_version", &nnl::cuda::runtime_version,
          "the CUDA runtime linked in, as 1000*major + 10*minor");
    m.def("driver_version", &nnl::cuda::driver_version,
          "the driver's CUDA version; RuntimeError('no GPU: ...') without one");
    m.def("device_count", &nnl::cuda::device_count,
          "the number of GPUs; RuntimeError('no GPU: ...') when there are none");
    m.def("device_info", [](int index) {
        nnl::cuda::DeviceInfo d = nnl::cuda::device_info(index);
        py::dict info;
        info["index"] = d.index;
        info["name"] = d.name;
        info["compute_capability"] = py::make_tuple(d.major, d.minor);
        info["total_memory"] = d.total_memory;
        info["multiprocessors"] = d.multiprocessors;
        info["max_shared_per_block"] = d.max_shared_per_block;
        return info;
    }, py::arg("index") = 0);
    m.def("synchronize", [] {
        py::gil_scoped_release nogil;
        nnl::cuda::synchronize();
    });
    auto& all = nnl::cuda::bindings();
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return std::strcmp(a.family, b.family) < 0;
    });
    py::list families;
    for (const auto& b : all) {
        b.bind(m);
        families.append(b.family);
    }
    m.attr("families") = families;
}
