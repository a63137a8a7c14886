// dev/cuda/attention/02_online_softmax.cu: step 02's main(). The kernel is in 02_online_softmax.cuh,
// the check and the timing in harness.cuh.
//
//     make -C dev/cuda attention/02_online_softmax      (nvcc -O3 -std=c++17 -arch=sm_80 -I csrc/cuda)
//     dev/cuda/build/attention/02_online_softmax [--check] [B H T D]    default 4 6 1024 64
//     exit 0 checked (and timed), 1 wrong answer or CUDA error, 2 usage, 77 no GPU
#include "02_online_softmax.cuh"
#include "harness.cuh"

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attn02::forward, nullptr, attn02::supports,
                          attn02::workspace_floats);
}
