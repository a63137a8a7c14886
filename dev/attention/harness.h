/*
dev/attention/harness.h: the main() of every attention step.

    build/attention/<step> [--check] [B H T D]      default 4 8 256 32; --check: no timing

Causal scaled dot-product attention, float32, q, k, v, out of shape (B·H, T, D), lse (B·H, T):
    S = q kᵀ / sqrt(D),  masked to keys j <= i;  out = softmax(S) v;  lse[i] = log Σ_j exp(S[i,j])
and, for the backward step, dq, dk, dv from dout. q is uniform in [-2, 2), k, v, dout in [-1, 1)
(scores of std ~0.7, so rows really have different maxima and the running max is exercised).

Checked against step 0's math run in double, to 2e-5 + 1e-4 |want| (out, lse) and
1e-4 + 1e-3 |want| (dq, dk, dv, against the textbook softmax backward over the full P,
dS = P ⊙ (dP - Σ_j P dP): not the Δ = Σ_d dO·O shortcut the kernels use), then timed.
Flops counted are the useful ones: per (query, visible key) pair, 4·D forward (q·k and p·v)
and 10·D backward (q·k again, dV, dP, dQ, dK); T(T+1)/2 pairs per head. Work a step does on
masked pairs earns it nothing.
*/
#include "../common.h"

typedef void (*attn_fwd_fn)(const float* q, const float* k, const float* v, float* out,
                            float* lse, int BH, int T, int D);
typedef void (*attn_bwd_fn)(const float* q, const float* k, const float* v, const float* out,
                            const float* dout, const float* lse, float* dq, float* dk,
                            float* dv, int BH, int T, int D);

// Step 0 in double, plus the backward when dout is given: one head at a time, with the
// T x T matrices P and dS.
static inline void attention_reference(const float* q, const float* k, const float* v,
                                       const float* dout, double* out, double* lse, double* dq,
                                       double* dk, double* dv, int BH, int T, int D) {
    const double scale = 1.0 / sqrt((double)D);
    double* P = (double*)malloc(sizeof(double) * T * T);
    double* dS = (double*)malloc(sizeof(double) * T * T);
    for (int bh = 0; bh < BH; bh++) {
        const size_t o = (size_t)bh * T * D;
        const float *Q = q + o, *K = k + o, *V = v + o;
        for (int i = 0; i < T; i++) {
            double* p = P + (size_t)i * T;
            double m = -INFINITY, l = 0;
            for (int j = 0; j < T; j++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)Q[i * D + d] * K[j * D + d];
                p[j] = j <= i ? s * scale : -INFINITY;
                if (p[j] > m) m = p[j];
            }
            for (int j = 0; j < T; j++) l += (p[j] = exp(p[j] - m));
            for (int j = 0; j < T; j++) p[j] /= l;
            lse[bh * T + i] = m + log(l);
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int j = 0; j < T; j++) acc += p[j] * V[j * D + d];
                out[o + i * D + d] = acc;
            }
        }
        if (!dout) continue;
        const float* dO = dout + o;
        for (int i = 0; i < T; i++) {  // dP = dO Vᵀ;  dS = P ⊙ (dP - Σ_j P dP)
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
        for (int i = 0; i < T; i++)  // dQ = dS K · scale,  dK = dSᵀ Q · scale,  dV = Pᵀ dO
            for (int d = 0; d < D; d++) {
                double gq = 0, gk = 0, gv = 0;
                for (int j = 0; j < T; j++) {
                    gq += dS[(size_t)i * T + j] * K[j * D + d];
                    gk += dS[(size_t)j * T + i] * Q[j * D + d];
                    gv += P[(size_t)j * T + i] * dO[j * D + d];
                }
                dq[o + i * D + d] = gq * scale, dk[o + i * D + d] = gk * scale;
                dv[o + i * D + d] = gv;
            }
    }
    free(P), free(dS);
}

static inline int attention_main(int argc, char** argv, const char* file, attn_fwd_fn forward,
                                 attn_bwd_fn backward) {
    const int check_only = argc > 1 && !strcmp(argv[1], "--check");
    if (check_only) argc--, argv++;
    const int B = argc > 4 ? atoi(argv[1]) : 4, H = argc > 4 ? atoi(argv[2]) : 8;
    const int T = argc > 4 ? atoi(argv[3]) : 256, D = argc > 4 ? atoi(argv[4]) : 32;
    if (B < 1 || H < 1 || T < 1 || D < 1) {
        fprintf(stderr, "usage: %s [--check] [B H T D]   (all >= 1)\n", argv[0]);
        return 2;
    }
    const char* step = step_name(file);
    char size[64], size_bwd[80];
    snprintf(size, sizeof size, "B=%d H=%d T=%d D=%d", B, H, T, D);
    snprintf(size_bwd, sizeof size_bwd, "%s backward", size);
    const int BH = B * H;
    const size_t n = (size_t)BH * T * D, nl = (size_t)BH * T;
    float *q = floats(n), *k = floats(n), *v = floats(n), *dout = floats(n);
    float *out = floats(n), *lse = floats(nl), *dq = floats(n), *dk = floats(n), *dv = floats(n);
    double* want = (double*)malloc(sizeof(double) * (4 * n + nl));
    double *w_out = want, *w_dq = want + n, *w_dk = want + 2 * n, *w_dv = want + 3 * n;
    double* w_lse = want + 4 * n;
    fill_uniform(q, n, 1), fill_uniform(k, n, 2), fill_uniform(v, n, 3), fill_uniform(dout, n, 4);
    for (size_t i = 0; i < n; i++) q[i] *= 2.0f;
    for (size_t i = 0; i < n; i++) out[i] = dq[i] = dk[i] = dv[i] = NAN;
    for (size_t i = 0; i < nl; i++) lse[i] = NAN;

    double t0 = now_s();
    forward(q, k, v, out, lse, BH, T, D);
    const double fwd_first_ms = (now_s() - t0) * 1e3;
    attention_reference(q, k, v, backward ? dout : NULL, w_out, w_lse, w_dq, w_dk, w_dv, BH, T,
                        D);
    int ok = check_close(step, size, "out", out, w_out, n, 2e-5, 1e-4);
    ok = check_close(step, size, "lse", lse, w_lse, nl, 2e-5, 1e-4) && ok;
    double bwd_first_ms = 0;
    if (backward) {
        t0 = now_s();
        backward(q, k, v, out, dout, lse, dq, dk, dv, BH, T, D);
        bwd_first_ms = (now_s() - t0) * 1e3;
        ok = check_close(step, size_bwd, "dq", dq, w_dq, n, 1e-4, 1e-3) && ok;
        ok = check_close(step, size_bwd, "dk", dk, w_dk, n, 1e-4, 1e-3) && ok;
        ok = check_close(step, size_bwd, "dv", dv, w_dv, n, 1e-4, 1e-3) && ok;
    }
    if (!ok) return 1;
    if (!check_only) {
        const double pairs = (double)BH * T * (T + 1) / 2;
        double ms;
        TIME_BEST(ms, fwd_first_ms, forward(q, k, v, out, lse, BH, T, D));
        print_time(step, size, max_threads(), ms, 4.0 * D * pairs);
        if (backward) {
            TIME_BEST(ms, bwd_first_ms, backward(q, k, v, out, dout, lse, dq, dk, dv, BH, T, D));
            print_time(step, size_bwd, max_threads(), ms, 10.0 * D * pairs);
        }
    }
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
    free(want);
    return 0;
}
