// dev/cuda/sgemm/02_smem_tiling.cu: step 02's main(). The kernel is in 02_smem_tiling.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda sgemm/02_smem_tiling      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/sgemm/02_smem_tiling [--check] [M K N]      default 4096 4096 4096
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "02_smem_tiling.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm02::launch, sgemm02::supports, /*tf32=*/false);
}
