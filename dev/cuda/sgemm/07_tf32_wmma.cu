// dev/cuda/sgemm/07_tf32_wmma.cu: step 07's main(). The kernel is in 07_tf32_wmma.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda sgemm/07_tf32_wmma      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/sgemm/07_tf32_wmma [--check] [M K N]      default 4096 4096 4096
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "07_tf32_wmma.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm07::launch, sgemm07::supports, /*tf32=*/true);
}
