// Attention step 1: naive, one thread per query row, the full softmax.
//
//     thread (head, i):  s[j] = q_i · k_j / sqrt(D)       for keys j <= i    (written to memory)
//                        m = max_j s[j];  p[j] = exp(s[j] - m);  l = Σ_j p[j]
//                        out_i = Σ_j p[j] v_j / l;          lse_i = m + log l
//
// The definition, as dev/attention/00_naive.c: three passes over a row of scores kept in a
// (B·H, T, T) buffer in global memory (the workspace), causal (keys j <= i only). Every thread
// reads all of its head's k and v from global memory, uncoalesced (thread i reads row i of q
// and walks its own scores row), and writes and rereads T scores: memory traffic ~T² per head
// for 4·D·T²/2 flops.
// Sizes: any B·H, T >= 1, D >= 1. Workspace: B·H·T·T floats.
#pragma once
#include "cuda_compat.h"

namespace attn01 {

constexpr int THREADS = 64;

__global__ void attention_naive(const float* q, const float* k, const float* v, float* out,
                                float* lse, float* scores, int BH, int T, int D) {
    const long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // bh*T + i
    if (row >= (long long)BH * T) return;
    const int i = int(row % T);
    const size_t head = (size_t)(row / T) * T * D;
    const float *qi = q + row * D, *K = k + head, *V = v + head;
    float* s = scores + row * T;
    const float scale = 1.0f / sqrtf((float)D);
    float m = -INFINITY;
    for (int j = 0; j <= i; j++) {              // pass 1: scores and their max
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += qi[d] * K[(size_t)j * D + d];
        s[j] = dot * scale;
        m = fmaxf(m, s[j]);
    }
    float l = 0.0f;
    for (int j = 0; j <= i; j++) {              // pass 2: exp and their sum
        s[j] = expf(s[j] - m);
        l += s[j];
    }
    for (int d = 0; d < D; d++) {               // pass 3: the weighted sum of v
        float acc = 0.0f;
        for (int j = 0; j <= i; j++) acc += s[j] * V[(size_t)j * D + d];
        out[row * D + d] = acc / l;
    }
    lse[row] = m + logf(l);
}

inline const char* supports(int, int, int) { return nullptr; }
inline size_t workspace_floats(int BH, int T, int) { return (size_t)BH * T * T; }

inline void forward(const float* q, const float* k, const float* v, float* out, float* lse,
                    float* workspace, int BH, int T, int D, cudaStream_t stream) {
    NNL_LAUNCH(nnl::cuda::blocks_for((long long)BH * T, THREADS), THREADS, 0, stream,
               attention_naive)(q, k, v, out, lse, workspace, BH, T, D);
}

}  // namespace attn01
