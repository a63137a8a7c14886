// dev/cuda/attention/harness.cuh: the main() of every attention step (nvcc only).
//
//     build/attention/<step> [--check] [B H T D]     default 4 6 1024 64; --check: no timing
//
// Causal attention over (B·H, T, D), float32 (reference.h). q uniform in [-2, 2), k, v, dout in
// [-1, 1) (dev/common.h's stream, as dev/attention/harness.h). Checked against the CPU reference
// in double: every head when B·H·T²·D <= 2^27, else the first and the last head (the full
// reference at (4, 6, 1024, 64) would take a minute); out, lse to 2e-5 + 1e-4 |want|, and for
// the backward step dq, dk, dv to 1e-4 + 1e-3 |want|. Then timed with cudaEvents (forward; the
// backward separately): 4·D flops per (query, visible key) pair forward, 10·D backward.
// Exit codes: dev/cuda/harness.cuh (77: no GPU).
#pragma once
#include "../harness.cuh"
#include "reference.h"

using attn_fwd_fn = void (*)(const float*, const float*, const float*, float*, float*, float*,
                             int, int, int, cudaStream_t);
using attn_bwd_fn = void (*)(const float*, const float*, const float*, const float*,
                             const float*, const float*, float*, float*, float*, float*, int, int,
                             int, cudaStream_t);
using attn_supports_fn = const char* (*)(int BH, int T, int D);
using attn_workspace_fn = size_t (*)(int BH, int T, int D);

// got (device, n floats) against want at the checked heads only
inline bool attn_check(const char* step, const char* size, const char* what, const float* dev,
                       const std::vector<double>& want, const std::vector<int>& heads,
                       size_t per_head, double atol, double rtol) {
    std::vector<float> all = to_host(dev, want.size());
    std::vector<float> g;
    std::vector<double> w;
    for (int h : heads) {
        g.insert(g.end(), all.begin() + h * per_head, all.begin() + (h + 1) * per_head);
        w.insert(w.end(), want.begin() + h * per_head, want.begin() + (h + 1) * per_head);
    }
    return check_close(step, size, what, g.data(), w.data(), g.size(), atol, rtol);
}

inline int attention_main(int argc, char** argv, const char* file, attn_fwd_fn forward,
                          attn_bwd_fn backward, attn_supports_fn supports,
                          attn_workspace_fn workspace) {
    const bool check_only = argc > 1 && !std::strcmp(argv[1], "--check");
    if (check_only) argc--, argv++;
    const int B = argc > 4 ? std::atoi(argv[1]) : 4, H = argc > 4 ? std::atoi(argv[2]) : 6;
    const int T = argc > 4 ? std::atoi(argv[3]) : 1024, D = argc > 4 ? std::atoi(argv[4]) : 64;
    const char* step = step_name(file);
    if (B < 1 || H < 1 || T < 1 || D < 1) {
        std::fprintf(stderr, "usage: %s [--check] [B H T D]   (all >= 1)\n", argv[0]);
        return 2;
    }
    const int BH = B * H;
    if (const char* why = supports(BH, T, D)) {
        std::fprintf(stderr, "%s: B=%d H=%d T=%d D=%d not supported: %s\n", step, B, H, T, D, why);
        return 2;
    }
    gpu_or_exit(step);
    char size[64], size_bwd[80];
    std::snprintf(size, sizeof size, "B=%d H=%d T=%d D=%d", B, H, T, D);
    std::snprintf(size_bwd, sizeof size_bwd, "%s backward", size);
    const size_t n = (size_t)BH * T * D, nl = (size_t)BH * T;
    std::vector<float> q(n), k(n), v(n), dout(n), nan_n(n, NAN), nan_l(nl, NAN);
    fill_uniform(q.data(), n, 1), fill_uniform(k.data(), n, 2), fill_uniform(v.data(), n, 3);
    fill_uniform(dout.data(), n, 4);
    for (auto& x : q) x *= 2.0f;
    float *dq_ = to_device(q), *dk_ = to_device(k), *dv_ = to_device(v), *ddo = to_device(dout);
    float *dout_ = to_device(nan_n), *dlse = to_device(nan_l);
    float *gq = to_device(nan_n), *gk = to_device(nan_n), *gv = to_device(nan_n);
    float* ws = to_device(std::vector<float>(std::max<size_t>(1, workspace(BH, T, D)), NAN));

    forward(dq_, dk_, dv_, dout_, dlse, ws, BH, T, D, 0);
    CUDA_CHECK(cudaGetLastError());
    if (backward) backward(dq_, dk_, dv_, dout_, ddo, dlse, gq, gk, gv, ws, BH, T, D, 0);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());

    std::vector<int> heads;
    if ((double)BH * T * T * D <= (double)(1 << 27)) {
        for (int h = 0; h < BH; h++) heads.push_back(h);
    } else {
        heads.push_back(0);
        if (BH > 1) heads.push_back(BH - 1);
    }
    std::vector<double> w_out(n), w_lse(nl), w_dq(n), w_dk(n), w_dv(n);
    for (int h : heads)
        attention_reference_head(q.data(), k.data(), v.data(), backward ? dout.data() : nullptr,
                                 w_out.data(), w_lse.data(), w_dq.data(), w_dk.data(),
                                 w_dv.data(), h, T, D);
    const size_t per = (size_t)T * D;
    bool ok = attn_check(step, size, "out", dout_, w_out, heads, per, 2e-5, 1e-4);
    ok = attn_check(step, size, "lse", dlse, w_lse, heads, T, 2e-5, 1e-4) && ok;
    if (backward) {
        ok = attn_check(step, size_bwd, "dq", gq, w_dq, heads, per, 1e-4, 1e-3) && ok;
        ok = attn_check(step, size_bwd, "dk", gk, w_dk, heads, per, 1e-4, 1e-3) && ok;
        ok = attn_check(step, size_bwd, "dv", gv, w_dv, heads, per, 1e-4, 1e-3) && ok;
    }
    if (ok && !check_only) {
        const double pairs = attention_pairs(BH, T);
        Timing t = time_ms([&] { forward(dq_, dk_, dv_, dout_, dlse, ws, BH, T, D, 0); });
        print_time(step, size, t, 4.0 * D * pairs);
        if (backward) {
            t = time_ms([&] {
                backward(dq_, dk_, dv_, dout_, ddo, dlse, gq, gk, gv, ws, BH, T, D, 0);
            });
            print_time(step, size_bwd, t, 10.0 * D * pairs);
        }
    }
    for (float* p : {dq_, dk_, dv_, ddo, dout_, dlse, gq, gk, gv, ws}) cudaFree(p);
    return ok ? 0 : 1;
}
