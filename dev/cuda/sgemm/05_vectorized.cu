// dev/cuda/sgemm/05_vectorized.cu: step 05's main(). The kernel is in 05_vectorized.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda sgemm/05_vectorized      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/sgemm/05_vectorized [--check] [M K N]      default 4096 4096 4096
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "05_vectorized.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm05::launch, sgemm05::supports, /*tf32=*/false);
}
