// dev/cuda/attention/04_flash_backward.cu: step 04's main(). The kernel is in 04_flash_backward.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda attention/04_flash_backward      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/attention/04_flash_backward [--check] [B H T D]    default 4 6 1024 64
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "04_flash_backward.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attn04::forward, attn04::backward, attn04::supports,
                          attn04::workspace_floats);
}
