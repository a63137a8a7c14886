// dev/cuda/sgemm/04_blocktile_2d.cu: step 04's main(). The kernel is in 04_blocktile_2d.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda sgemm/04_blocktile_2d      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/sgemm/04_blocktile_2d [--check] [M K N]      default 4096 4096 4096
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "04_blocktile_2d.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm04::launch, sgemm04::supports, /*tf32=*/false);
}
