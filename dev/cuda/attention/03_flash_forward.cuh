// Attention step 3: the tiled flash forward (FlashAttention, Dao et al. 2022): K and V tiles in
// shared memory, one rescale per tile.
//
//     block (head, query tile of BR = 64 rows), one thread per query row i:
//     for each key tile t of BC = 32 keys, up to the block's last query (causal):
//         Ks, Vs = k[t], v[t]                               (loaded once per block, shared)
//         s[j] = q_i · Ks[j] / sqrt(D)   for the tile's keys j <= i;  m_t = max_j s[j]
//         m' = max(m, m_t);  a = exp(m - m');  l = a l;  o = a o        (one rescale per tile)
//         for j:  p = exp(s[j] - m');  l += p;  o += p Vs[j]
//         m = m'
//     out_i = o / l;  lse_i = m + log l
//
// What changed from step 2: the 64 threads of a block are 64 consecutive queries of one head,
// so they all need the same keys: each tile of K and V is read from global memory once per
// block into shared memory (64x less global traffic than every thread reading every key), and
// every thread reads Ks[j][d] at the same address (a broadcast, no bank conflicts). The key
// tiles past the block's last query row are skipped (causal), and the online softmax rescales
// once per tile of 32 keys (one exp(m - m') per tile instead of one per key).
// Sizes: any B·H, T >= 1; 1 <= D <= 128 (2·32·D floats of dynamic shared memory, <= 32 KiB).
#pragma once
#include "cuda_compat.h"

namespace attn03 {

constexpr int BR = 64, BC = 32, DMAX = 128;

__global__ void __launch_bounds__(BR) flash_forward(const float* q, const float* k,
                                                    const float* v, float* out, float* lse,
                                                    int T, int D) {
    NNL_DYNAMIC_SHARED(float, Ks);            // BC x D, then Vs: BC x D
    float* Vs = Ks + BC * D;
    const int bh = blockIdx.y, i0 = blockIdx.x * BR, i = i0 + threadIdx.x;
    const size_t head = (size_t)bh * T * D;
    const bool active = i < T;                // inactive threads still load tiles and sync
    const float scale = 1.0f / sqrtf((float)D);
    float qi[DMAX], o[DMAX], s[BC];
    for (int d = 0; d < D; d++) {
        qi[d] = active ? q[head + (size_t)i * D + d] * scale : 0.0f;
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last = min(T, i0 + BR) - 1;     // the block's last query: no key beyond it
    for (int j0 = 0; j0 <= last; j0 += BC) {
        const int nk = min(BC, T - j0);
        __syncthreads();                       // the previous tile is no longer being read
        for (int e = threadIdx.x; e < nk * D; e += BR) {
            Ks[e] = k[head + (size_t)j0 * D + e];
            Vs[e] = v[head + (size_t)j0 * D + e];
        }
        __syncthreads();                       // the tile is complete
        const int nj = active ? min(nk, i - j0 + 1) : 0;   // this row's visible keys here
        if (nj <= 0) continue;
        float mt = -INFINITY;
        for (int j = 0; j < nj; j++) {
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += qi[d] * Ks[j * D + d];
            s[j] = dot;
            mt = fmaxf(mt, dot);
        }
        const float m_new = fmaxf(m, mt), a = expf(m - m_new);
        l *= a;
        for (int d = 0; d < D; d++) o[d] *= a;
        for (int j = 0; j < nj; j++) {
            const float p = expf(s[j] - m_new);
            l += p;
            for (int d = 0; d < D; d++) o[d] += p * Vs[j * D + d];
        }
        m = m_new;
    }
    if (!active) return;
    for (int d = 0; d < D; d++) out[head + (size_t)i * D + d] = o[d] / l;
    lse[(size_t)bh * T + i] = m + logf(l);
}

inline const char* supports(int BH, int, int D) {
    if (D > DMAX) return "D must be <= 128";
    if (BH > 65535) return "B·H must be <= 65535 (grid.y)";
    return nullptr;
}
inline size_t workspace_floats(int, int, int) { return 0; }

inline void forward(const float* q, const float* k, const float* v, float* out, float* lse,
                    float*, int BH, int T, int D, cudaStream_t stream) {
    const dim3 grid((T + BR - 1) / BR, BH);
    NNL_LAUNCH(grid, BR, 2 * BC * D * sizeof(float), stream, flash_forward)(q, k, v, out, lse,
                                                                            T, D);
}

}  // namespace attn03
