// device.h: what the CUDA runtime says about this machine (plain C++; device.cu answers).
#pragma once
#include <string>
#include <vector>

namespace nnl::cuda {

struct DeviceInfo {
    int index;
    std::string name;
    int major, minor;              // compute capability
    long long total_memory;        // bytes
    int multiprocessors;
    int max_shared_per_block;      // bytes, opt-in maximum
};

// Which build this is: "nvcc" (a real CUDA build) or "shim" (CPU threads, for tests).
const char* build_kind();
// The CUDA runtime's version as major*1000 + minor*10 (0 under the shim).
int runtime_version();
// The driver's CUDA version, or throws std::runtime_error("no GPU: <reason>").
int driver_version();
// The number of GPUs, or throws std::runtime_error("no GPU: <reason>") (no driver, no device).
int device_count();
DeviceInfo device_info(int index);
// After a launch: turn a pending CUDA error into std::runtime_error("nnlite CUDA <op>: <error>")
// (pybind11 makes it a RuntimeError). Never synchronises, so an error inside a kernel surfaces
// at the next synchronising call. A no-op under the shim, whose launches throw directly.
void check(const char* op);
// Block until the device has finished everything queued (a no-op under the shim).
void synchronize();
// The architectures compiled in (e.g. "sm_80 sm_90 compute_90"), from setup.py; "shim" there.
const char* compiled_archs();

}  // namespace nnl::cuda
