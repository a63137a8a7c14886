/*
Attention step 1: one query row at a time, with the online softmax.

The softmax needs the row max before the first exp(); the online softmax (Milakov and
Gimelshein 2018) carries a running max m, running sum l and an unnormalised output o instead,
and rescales them whenever the max grows:

    m = -inf, l = 0, o = 0
    for each key j <= i:
        s = scale · q_i · k_j
        m' = max(m, s);  a = exp(m - m');  p = exp(s - m')        (a = 0 at the first key)
        l = a·l + p;     o = a·o + p·v_j;  m = m'
    out_i = o / l,  lse_i = m + log l

Each term ends up multiplied by exp(s_j - m_final), exactly as in step 0, and every exp()
argument is still <= 0. One pass over the keys, and the state of a row (m, l and the D floats
of o) stays in registers and L1: no T x T buffer at all, O(D) memory per query instead of O(T).
The price: two exp() per key instead of one, and the rescale of o (D multiplies) per key.

Standalone on purpose: the code this step shares with 00_naive.c is repeated, not included, so each
file reads (and compiles) alone; `diff 00_naive.c 01_online.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/attention/01_online 4 8 256 32
*/
#include "harness.h"

static void attention_forward(const float* q, const float* k, const float* v, float* out,
                              float* lse, int BH, int T, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    for (int bh = 0; bh < BH; bh++)
        for (int i = 0; i < T; i++) {
            const float* qi = q + (bh * T + i) * D;
            const float *K = k + bh * T * D, *V = v + bh * T * D;
            float* o = out + (bh * T + i) * D;  // o accumulates in place
            float m = -INFINITY, l = 0.0f;
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int j = 0; j <= i; j++) {
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += qi[d] * K[j * D + d];
                s *= scale;
                const float m_new = maxf(m, s);
                const float a = expf(m - m_new), p = expf(s - m_new);
                l = a * l + p;
                for (int d = 0; d < D; d++) o[d] = a * o[d] + p * V[j * D + d];
                m = m_new;
            }
            for (int d = 0; d < D; d++) o[d] /= l;
            lse[bh * T + i] = m + logf(l);
        }
}

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attention_forward, NULL);
}
