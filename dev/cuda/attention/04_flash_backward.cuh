// Attention step 4: the flash backward (FlashAttention-2, Dao 2023), from the saved lse.
//
// Given dO = ∂loss/∂out (P = the softmax of step 1, never stored; scale = 1/sqrt(D)):
//
//     Δ_i = Σ_d dO[i,d] O[i,d]                        (= Σ_j P[i,j] dP[i,j]; kernel 1)
//     P[i,j] = exp(scale q_i·k_j - lse_i)             (rebuilt: one exp, no max, no sum)
//     dS[i,j] = P[i,j] (dO_i·v_j - Δ_i)
//     dv_j = Σ_{i>=j} P[i,j] dO_i;   dk_j = scale Σ_{i>=j} dS[i,j] q_i        (kernel 2)
//     dq_i = scale Σ_{j<=i} dS[i,j] k_j                                      (kernel 3)
//
// What changed from step 3: the backward, with step 3's tiling. Nothing of size T² is stored:
// P is rebuilt from the forward's lse and Δ replaces the row sums Σ_j P dP, so each kernel is
// one pass over tiles in shared memory, as the forward.
// Kernel 2: a block per (head, tile of 64 keys), one thread per key j, dk_j and dv_j in
// registers; the tiles of 32 queries i >= the block's first key are walked with Q, dO, lse and
// Δ in shared memory (as step 3 walks K and V). Kernel 3: a block per (head, tile of 64
// queries), one thread per query, the key tiles up to the block's last query in shared memory.
// Splitting dq from dk/dv (FlashAttention-2) means each output element has exactly one writer:
// no atomics, no second pass; the price is P and dS computed twice (once per kernel).
// The forward is step 3's (03_flash_forward.cuh, included, unchanged), which saves lse.
// Sizes: as step 3 (any B·H, T; 1 <= D <= 128). Workspace: B·H·T floats (Δ).
#pragma once
#include "03_flash_forward.cuh"

namespace attn04 {

constexpr int BR = 64, BC = 32, DMAX = 128;   // BR: rows a block owns, BC: rows per shared tile

// Kernel 1: Δ_i = Σ_d dO[i,d] O[i,d], one thread per row of all heads
__global__ void attention_delta(const float* out, const float* dout, float* delta, long long rows,
                                int D) {
    const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float acc = 0.0f;
    for (int d = 0; d < D; d++) acc += dout[r * D + d] * out[r * D + d];
    delta[r] = acc;
}

// Kernel 2: dk, dv for the block's keys j0 .. j0+63
__global__ void __launch_bounds__(BR) flash_backward_dkdv(const float* q, const float* k,
        const float* v, const float* dout, const float* lse, const float* delta, float* dk,
        float* dv, int T, int D) {
    NNL_DYNAMIC_SHARED(float, Qs);            // BC x D, then dOs: BC x D, Ls: BC, Ds: BC
    float *dOs = Qs + BC * D, *Ls = dOs + BC * D, *Ds = Ls + BC;
    const int bh = blockIdx.y, j0 = blockIdx.x * BR, j = j0 + threadIdx.x;
    const size_t head = (size_t)bh * T * D;
    const bool active = j < T;
    const float scale = 1.0f / sqrtf((float)D);
    float kj[DMAX], vj[DMAX], gk[DMAX], gv[DMAX];
    for (int d = 0; d < D; d++) {
        kj[d] = active ? k[head + (size_t)j * D + d] * scale : 0.0f;
        vj[d] = active ? v[head + (size_t)j * D + d] : 0.0f;
        gk[d] = gv[d] = 0.0f;
    }
    for (int t0 = j0 / BC * BC; t0 < T; t0 += BC) {   // query tiles that can see a key >= j0
        const int nq = min(BC, T - t0);
        __syncthreads();
        for (int e = threadIdx.x; e < nq * D; e += BR) {
            Qs[e] = q[head + (size_t)t0 * D + e];
            dOs[e] = dout[head + (size_t)t0 * D + e];
        }
        for (int e = threadIdx.x; e < nq; e += BR) {
            Ls[e] = lse[(size_t)bh * T + t0 + e];
            Ds[e] = delta[(size_t)bh * T + t0 + e];
        }
        __syncthreads();
        if (!active) continue;
        for (int r = max(0, j - t0); r < nq; r++) {    // queries i = t0 + r >= j
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) s += Qs[r * D + d] * kj[d], dp += dOs[r * D + d] * vj[d];
            const float p = expf(s - Ls[r]);
            const float ds = p * (dp - Ds[r]);
            for (int d = 0; d < D; d++) gv[d] += p * dOs[r * D + d], gk[d] += ds * Qs[r * D + d];
        }
    }
    if (!active) return;
    for (int d = 0; d < D; d++) {
        dk[head + (size_t)j * D + d] = gk[d] * scale;
        dv[head + (size_t)j * D + d] = gv[d];
    }
}

// Kernel 3: dq for the block's queries i0 .. i0+63
__global__ void __launch_bounds__(BR) flash_backward_dq(const float* q, const float* k,
        const float* v, const float* dout, const float* lse, const float* delta, float* dq,
        int T, int D) {
    NNL_DYNAMIC_SHARED(float, Ks);            // BC x D, then Vs: BC x D
    float* Vs = Ks + BC * D;
    const int bh = blockIdx.y, i0 = blockIdx.x * BR, i = i0 + threadIdx.x;
    const size_t head = (size_t)bh * T * D;
    const bool active = i < T;
    const float scale = 1.0f / sqrtf((float)D);
    float qi[DMAX], doi[DMAX], gq[DMAX];
    for (int d = 0; d < D; d++) {
        qi[d] = active ? q[head + (size_t)i * D + d] * scale : 0.0f;
        doi[d] = active ? dout[head + (size_t)i * D + d] : 0.0f;
        gq[d] = 0.0f;
    }
    const float li = active ? lse[(size_t)bh * T + i] : 0.0f;
    const float di = active ? delta[(size_t)bh * T + i] : 0.0f;
    const int last = min(T, i0 + BR) - 1;
    for (int j0 = 0; j0 <= last; j0 += BC) {
        const int nk = min(BC, T - j0);
        __syncthreads();
        for (int e = threadIdx.x; e < nk * D; e += BR) {
            Ks[e] = k[head + (size_t)j0 * D + e];
            Vs[e] = v[head + (size_t)j0 * D + e];
        }
        __syncthreads();
        const int nj = active ? min(nk, i - j0 + 1) : 0;
        for (int c = 0; c < nj; c++) {
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) s += qi[d] * Ks[c * D + d], dp += doi[d] * Vs[c * D + d];
            const float ds = expf(s - li) * (dp - di);
            for (int d = 0; d < D; d++) gq[d] += ds * Ks[c * D + d];
        }
    }
    if (!active) return;
    for (int d = 0; d < D; d++) dq[head + (size_t)i * D + d] = gq[d] * scale;
}

inline const char* supports(int BH, int T, int D) { return attn03::supports(BH, T, D); }
inline size_t workspace_floats(int BH, int T, int) { return (size_t)BH * T; }

inline void forward(const float* q, const float* k, const float* v, float* out, float* lse,
                    float* workspace, int BH, int T, int D, cudaStream_t stream) {
    attn03::forward(q, k, v, out, lse, workspace, BH, T, D, stream);
}

inline void backward(const float* q, const float* k, const float* v, const float* out,
                     const float* dout, const float* lse, float* dq, float* dk, float* dv,
                     float* workspace, int BH, int T, int D, cudaStream_t stream) {
    float* delta = workspace;
    const long long rows = (long long)BH * T;
    NNL_LAUNCH(nnl::cuda::blocks_for(rows, 256), 256, 0, stream, attention_delta)(out, dout, delta,
                                                                                  rows, D);
    const dim3 grid((T + BR - 1) / BR, BH);
    NNL_LAUNCH(grid, BR, (2 * BC * D + 2 * BC) * sizeof(float), stream, flash_backward_dkdv)(
        q, k, v, dout, lse, delta, dk, dv, T, D);
    NNL_LAUNCH(grid, BR, 2 * BC * D * sizeof(float), stream, flash_backward_dq)(
        q, k, v, dout, lse, delta, dq, T, D);
}

}  // namespace attn04
