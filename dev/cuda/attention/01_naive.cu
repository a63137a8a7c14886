// dev/cuda/attention/01_naive.cu: step 01's main(). The kernel is in 01_naive.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda attention/01_naive      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/attention/01_naive [--check] [B H T D]    default 4 6 1024 64
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "01_naive.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attn01::forward, nullptr, attn01::supports,
                          attn01::workspace_floats);
}
