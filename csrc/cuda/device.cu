// device.cu: the device queries behind `python -m nnlite` and nnlite.ops.cuda_device. Every
// CUDA error becomes std::runtime_error("no GPU: <CUDA's reason>") — never an import error: the
// runtime is linked statically, so the extension imports on a machine with no driver, and only
// these calls find out.
#include "device.h"

#include <stdexcept>
#include <string>

#include "cuda_compat.h"

#ifndef NNLITE_CUDA_ARCHS
#define NNLITE_CUDA_ARCHS "unknown"
#endif

namespace nnl::cuda {

#if defined(__CUDACC__)

static void no_gpu_if(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        cudaGetLastError();   // clear it, so that the next launch does not report it again
        throw std::runtime_error(std::string("no GPU: ") + what + ": " + cudaGetErrorString(e) +
                                 " (" + cudaGetErrorName(e) + ")");
    }
}

const char* build_kind() { return "nvcc"; }
const char* compiled_archs() { return NNLITE_CUDA_ARCHS; }

int runtime_version() {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return v;
}

int driver_version() {
    int v = 0;
    no_gpu_if(cudaDriverGetVersion(&v), "cudaDriverGetVersion");
    if (v == 0) throw std::runtime_error("no GPU: no NVIDIA driver is installed (libcuda not found)");
    return v;
}

int device_count() {
    int n = 0;
    no_gpu_if(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
    if (n == 0) throw std::runtime_error("no GPU: the driver reports no CUDA device");
    return n;
}

DeviceInfo device_info(int index) {
    cudaDeviceProp p{};
    no_gpu_if(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
    return {index, p.name, p.major, p.minor, (long long)p.totalGlobalMem, p.multiProcessorCount,
            (int)p.sharedMemPerBlockOptin};
}

void synchronize() { no_gpu_if(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void check(const char* op) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        throw std::runtime_error(std::string("nnlite CUDA ") + op + ": " + cudaGetErrorString(e));
}

#else  // the shim: one pretend device made of CPU threads

const char* build_kind() { return "shim"; }
const char* compiled_archs() { return "shim"; }
int runtime_version() { return 0; }
int driver_version() { return 0; }
int device_count() { return 1; }
DeviceInfo device_info(int index) {
    if (index != 0) throw std::runtime_error("no GPU: the shim has one device, 0");
    return {0, "nnlite CUDA shim (CPU threads)", 0, 0, 0, 1, 227 * 1024};
}
void synchronize() {}
void check(const char*) {}

#endif

}  // namespace nnl::cuda
