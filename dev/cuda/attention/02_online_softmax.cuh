// Attention step 2: the online softmax, one pass, no score buffer.
//
//     thread (head, i):  m = -inf, l = 0, o = 0
//         for keys j <= i:   s = q_i · k_j / sqrt(D)
//                            m' = max(m, s);  a = exp(m - m');  p = exp(s - m')
//                            l = a l + p;     o = a o + p v_j;   m = m'
//         out_i = o / l;  lse_i = m + log l
//
// What changed from step 1: the max, the sum and the weighted sum of v are carried along in one
// pass over the keys (Milakov & Gimelshein 2018): when a larger score arrives, everything summed
// so far is rescaled by exp(m - m'). No (B·H, T, T) buffer: the scores never touch memory, the
// row's output o lives in registers (local memory beyond what fits), and k_j, v_j are read
// once per thread instead of twice. The price: two exp per key instead of one.
// Sizes: any B·H, T >= 1; 1 <= D <= 128 (o and q held per thread). No workspace.
#pragma once
#include "cuda_compat.h"

namespace attn02 {

constexpr int THREADS = 64, DMAX = 128;

__global__ void attention_online(const float* q, const float* k, const float* v, float* out,
                                 float* lse, int BH, int T, int D) {
    const long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // bh*T + i
    if (row >= (long long)BH * T) return;
    const int i = int(row % T);
    const size_t head = (size_t)(row / T) * T * D;
    const float *K = k + head, *V = v + head;
    const float scale = 1.0f / sqrtf((float)D);
    float qi[DMAX], o[DMAX];
    for (int d = 0; d < D; d++) qi[d] = q[row * D + d] * scale, o[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j <= i; j++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += qi[d] * K[(size_t)j * D + d];
        const float m_new = fmaxf(m, s);
        const float a = expf(m - m_new), p = expf(s - m_new);   // a = 0 at the first key
        l = a * l + p;
        for (int d = 0; d < D; d++) o[d] = a * o[d] + p * V[(size_t)j * D + d];
        m = m_new;
    }
    for (int d = 0; d < D; d++) out[row * D + d] = o[d] / l;
    lse[row] = m + logf(l);
}

inline const char* supports(int, int, int D) { return D > DMAX ? "D must be <= 128" : nullptr; }
inline size_t workspace_floats(int, int, int) { return 0; }

inline void forward(const float* q, const float* k, const float* v, float* out, float* lse,
                    float*, int BH, int T, int D, cudaStream_t stream) {
    NNL_LAUNCH(nnl::cuda::blocks_for((long long)BH * T, THREADS), THREADS, 0, stream,
               attention_online)(q, k, v, out, lse, BH, T, D);
}

}  // namespace attn02
