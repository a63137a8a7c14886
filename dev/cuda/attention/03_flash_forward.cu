// dev/cuda/attention/03_flash_forward.cu: step 03's main(). The kernel is in 03_flash_forward.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda attention/03_flash_forward      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/attention/03_flash_forward [--check] [B H T D]    default 4 6 1024 64
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "03_flash_forward.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attn03::forward, nullptr, attn03::supports,
                          attn03::workspace_floats);
}
