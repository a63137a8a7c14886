// dev/cuda/sgemm/07_tf32_wmma.cu: step 07's main(): the kernel is in 07_tf32_wmma.cuh, the check and the
// timing in harness.cuh.
//
//     nvcc -O3 -std=c++17 -arch=sm_80 -I../../../csrc/cuda -o 07_tf32_wmma 07_tf32_wmma.cu   (or: make -C dev/cuda 07_tf32_wmma)
//     ./07_tf32_wmma [--check] [M K N]      default 4096^3; exit 0 OK, 1 wrong, 2 usage, 77 no GPU
#include "07_tf32_wmma.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm07::launch, sgemm07::supports, /*tf32=*/true);
}
