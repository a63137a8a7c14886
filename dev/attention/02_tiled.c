/*
Attention step 2: tiles of queries x keys (FlashAttention's loop, Dao et al. 2022).

Step 1's loop for BR = 64 queries at once, over keys BC = 64 at a time:

    for each query tile i (BR rows):       m = -inf, l = 0, O = 0  (per row)
      for each key tile j (BC keys):
        S = scale · Q_i K_jᵀ                        BR x BC, the only score buffer (16 KiB)
        mask: S[r,c] = -inf where key > query
        m' = max(m, rowmax S);  P = exp(S - m');  a = exp(m - m')
        l = a·l + rowsum P;  O = a·O + P V_j;  m = m'        (one rescale per tile, not per key)
      out_i = O / l,  lse_i = m + log l

Why it is faster: the work becomes two small matrix products per tile, whose inner loops are
independent multiply-adds along a row, so the compiler vectorises them. S = Q Kᵀ runs along
keys: with Kᵀ (D x T) transposed once per head, S[r, c:c+4] += Q[r,d] · Kᵀ[d, c:c+4], no sum
across lanes. P V runs along D. Each K and V row loaded is used by BR queries, not one, and
the rescale and the exp(m - m') happen once per tile. Memory stays O(BR·BC) per head.
What it loses: every key tile is visited, also those entirely above the causal diagonal (10 of
the 16 tiles at T = 256 hold work, the other 6 are fully masked), and scalar expf() remains.

Standalone on purpose: the code this step shares with 01_online.c is repeated, not included, so each
file reads (and compiles) alone; `diff 01_online.c 02_tiled.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/attention/02_tiled 4 8 256 32
*/
#include "harness.h"

#define BR 64  // queries per tile
#define BC 64  // keys per tile

static void attention_forward(const float* q, const float* k, const float* v, float* out,
                              float* lse, int BH, int T, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    float *Kt = scratch(0, (size_t)D * T), *S = scratch(1, BR * BC), *stats = scratch(2, 2 * BR);
    float *m = stats, *l = stats + BR;
    for (int bh = 0; bh < BH; bh++) {
        const float *Q = q + bh * T * D, *K = k + bh * T * D, *V = v + bh * T * D;
        float* O = out + bh * T * D;
        for (int j = 0; j < T; j++)  // Kᵀ: the score loop then runs along keys
            for (int d = 0; d < D; d++) Kt[d * T + j] = K[j * D + d];
        for (int i0 = 0; i0 < T; i0 += BR) {
            const int rows = imin(BR, T - i0);
            for (int r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;
            memset(O + i0 * D, 0, sizeof(float) * rows * D);
            for (int j0 = 0; j0 < T; j0 += BC) {
                const int cols = imin(BC, T - j0);
                for (int r = 0; r < rows; r++) {
                    float* s = S + r * BC;
                    const float* qr = Q + (i0 + r) * D;
                    for (int c = 0; c < cols; c++) s[c] = 0.0f;  // S = scale · Q_i K_jᵀ
                    for (int d = 0; d < D; d++)
                        for (int c = 0; c < cols; c++) s[c] += qr[d] * Kt[d * T + j0 + c];
                    for (int c = 0; c < cols; c++)
                        s[c] = j0 + c <= i0 + r ? scale * s[c] : -INFINITY;  // causal mask
                    float m_new = m[r], sum = 0.0f;  // online softmax, once per tile
                    for (int c = 0; c < cols; c++) m_new = maxf(m_new, s[c]);
                    for (int c = 0; c < cols; c++) sum += (s[c] = expf(s[c] - m_new));
                    const float a = expf(m[r] - m_new);
                    l[r] = a * l[r] + sum, m[r] = m_new;
                    float* o = O + (i0 + r) * D;
                    for (int d = 0; d < D; d++) o[d] *= a;
                    for (int c = 0; c < cols; c++)  // O += P V_j
                        for (int d = 0; d < D; d++) o[d] += s[c] * V[(j0 + c) * D + d];
                }
            }
            for (int r = 0; r < rows; r++) {
                float* o = O + (i0 + r) * D;
                for (int d = 0; d < D; d++) o[d] /= l[r];
                lse[bh * T + i0 + r] = m[r] + logf(l[r]);
            }
        }
    }
}

int main(int argc, char** argv) {
    return attention_main(argc, argv, __FILE__, attention_forward, NULL);
}
