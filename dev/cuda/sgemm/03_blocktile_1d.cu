// dev/cuda/sgemm/03_blocktile_1d.cu: step 03's main(): the kernel is in 03_blocktile_1d.cuh, the check and the
// timing in harness.cuh.
//
//     nvcc -O3 -std=c++17 -arch=sm_80 -I../../../csrc/cuda -o 03_blocktile_1d 03_blocktile_1d.cu   (or: make -C dev/cuda 03_blocktile_1d)
//     ./03_blocktile_1d [--check] [M K N]      default 4096^3; exit 0 OK, 1 wrong, 2 usage, 77 no GPU
#include "03_blocktile_1d.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return sgemm_main(argc, argv, __FILE__, sgemm03::launch, sgemm03::supports, /*tf32=*/false);
}
