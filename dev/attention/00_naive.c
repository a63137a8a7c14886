/*
Attention step 0: the definition, with a T x T buffer of scores.

For each head (B·H of them; q, k, v, out are (T, D) per head), causal, scale = 1/sqrt(D):

    S[i,j] = scale · q_i · k_j        for keys j <= i (query i sees keys 0..i)
    m_i = max_j S[i,j],   l_i = Σ_j exp(S[i,j] - m_i)
    P[i,j] = exp(S[i,j] - m_i) / l_i                 softmax over the row
    out_i = Σ_j P[i,j] v_j,   lse_i = m_i + log l_i   (saved: the backward rebuilds P from it)

Three passes over a T x T buffer: S, then P in place, then P V. That buffer is T² floats per
head (256 KiB at T = 256, 16 MiB at T = 2048), written and read back from cache or memory:
what the next steps get rid of. Subtracting the row max first keeps every exp() argument <= 0,
so nothing overflows. The dot products are reductions over D, one chain of dependent adds that
the compiler may not reorder (float addition is not associative), so nothing is vectorised.

Every later step is checked against this math, run in double (harness.h).
Run:  make -C dev && dev/build/attention/00_naive 4 8 256 32
*/
#include "harness.h"

static void attention_forward(const float* q, const float* k, const float* v, float* out,
                              float* lse, int BH, int T, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    float* S = scratch(0, (size_t)T * T);
    for (int bh = 0; bh < BH; bh++) {
        const float *Q = q + bh * T * D, *K = k + bh * T * D, *V = v + bh * T * D;
        float* O = out + bh * T * D;
        for (int i = 0; i < T; i++)  // S = scale · Q Kᵀ, lower triangle
            for (int j = 0; j <= i; j++) {
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += Q[i * D + d] * K[j * D + d];
                S[i * T + j] = scale * s;
            }
        for (int i = 0; i < T; i++) {  // P = softmax(S), row by row, in place
            float* p = S + i * T;
            float m = -INFINITY, l = 0.0f;
            for (int j = 0; j <= i; j++) m = maxf(m, p[j]);
            for (int j = 0; j <= i; j++) l += (p[j] = expf(p[j] - m));
            for (int j = 0; j <= i; j++) p[j] /= l;
            lse[bh * T + i] = m + logf(l);
        }
        for (int i = 0; i < T; i++)  // out = P V
            for (int d = 0; d < D; d++) {
                float o = 0.0f;
                for (int j = 0; j <= i; j++) o += S[i * T + j] * V[j * D + d];
                O[i * D + d] = o;
            }
    }
}

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attention_forward, NULL);
}
