// dev/cuda/sgemm/02_smem_tiling.cu: step 02's main(): the kernel is in 02_smem_tiling.cuh, the check and the
// timing in harness.cuh.
//
//     nvcc -O3 -std=c++17 -arch=sm_80 -I../../../csrc/cuda -o 02_smem_tiling 02_smem_tiling.cu   (or: make -C dev/cuda 02_smem_tiling)
//     ./02_smem_tiling [--check] [M K N]      default 4096^3; exit 0 OK, 1 wrong, 2 usage, 77 no GPU
#include "02_smem_tiling.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm02::launch, sgemm02::supports, /*tf32=*/false);
}
