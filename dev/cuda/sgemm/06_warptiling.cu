// dev/cuda/sgemm/06_warptiling.cu: step 06's main(). The kernel is in 06_warptiling.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda sgemm/06_warptiling      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/sgemm/06_warptiling [--check] [M K N]      default 4096 4096 4096
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "06_warptiling.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm06::launch, sgemm06::supports, /*tf32=*/false);
}
