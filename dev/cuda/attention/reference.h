// dev/cuda/attention/reference.h: the CPU reference of the attention ladder (plain C++: used by
// the steps' main()s and by the shim test driver, shim_test.cpp). dev/attention/harness.h's
// math, for one head at a time.
//
// Causal scaled dot-product attention, float32, q, k, v, out of shape (B·H, T, D), lse (B·H, T):
//     S = q kᵀ / sqrt(D), masked to keys j <= i;  out = softmax(S) v;  lse[i] = log Σ_j exp(S[i,j])
// and, given dout, the textbook backward over the full P (not the Δ = Σ dO·O shortcut the
// kernels use):  dP = dO vᵀ;  dS = P ⊙ (dP - Σ_j P dP);  dq = dS k / sqrt(D);
//                dk = dSᵀ q / sqrt(D);  dv = Pᵀ dO.
// Tolerances (dev/attention's): out, lse 2e-5 + 1e-4 |want|; dq, dk, dv 1e-4 + 1e-3 |want|.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

// Head `bh`: writes out, lse and (when dout) dq, dk, dv of that head, at the head's offsets.
inline void attention_reference_head(const float* q, const float* k, const float* v,
                                     const float* dout, double* out, double* lse, double* dq,
                                     double* dk, double* dv, int bh, int T, int D) {
    const double scale = 1.0 / std::sqrt((double)D);
    std::vector<double> P((size_t)T * T), dS((size_t)T * T);
    const size_t o = (size_t)bh * T * D;
    const float *Q = q + o, *K = k + o, *V = v + o;
    for (int i = 0; i < T; i++) {
        double* p = P.data() + (size_t)i * T;
        double m = -INFINITY, l = 0;
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)Q[i * D + d] * K[j * D + d];
            p[j] = j <= i ? s * scale : -INFINITY;
            if (p[j] > m) m = p[j];
        }
        for (int j = 0; j < T; j++) l += (p[j] = std::exp(p[j] - m));
        for (int j = 0; j < T; j++) p[j] /= l;
        lse[(size_t)bh * T + i] = m + std::log(l);
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int j = 0; j <= i; j++) acc += p[j] * V[j * D + d];
            out[o + i * D + d] = acc;
        }
    }
    if (!dout) return;
    const float* dO = dout + o;
    for (int i = 0; i < T; i++) {
        double rowdot = 0;
        for (int j = 0; j < T; j++) {
            double dp = 0;
            for (int d = 0; d < D; d++) dp += (double)dO[i * D + d] * V[j * D + d];
            dS[(size_t)i * T + j] = dp;
            rowdot += P[(size_t)i * T + j] * dp;
        }
        for (int j = 0; j < T; j++)
            dS[(size_t)i * T + j] = P[(size_t)i * T + j] * (dS[(size_t)i * T + j] - rowdot);
    }
    for (int i = 0; i < T; i++)
        for (int d = 0; d < D; d++) {
            double gq = 0, gk = 0, gv = 0;
            for (int j = 0; j < T; j++) {
                gq += dS[(size_t)i * T + j] * K[j * D + d];
                gk += dS[(size_t)j * T + i] * Q[j * D + d];
                gv += P[(size_t)j * T + i] * dO[j * D + d];
            }
            dq[o + i * D + d] = gq * scale, dk[o + i * D + d] = gk * scale, dv[o + i * D + d] = gv;
        }
}

// FLOPs counted (dev/attention's): per (query, visible key) pair 4·D forward (q·k, p·v) and
// 10·D backward; T(T+1)/2 pairs per head.
inline double attention_pairs(int BH, int T) { return (double)BH * T * (T + 1) / 2; }
