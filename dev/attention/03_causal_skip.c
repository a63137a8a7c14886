/*
Attention step 3: causal tile skipping.

Step 2 visited every key tile and masked. With queries and keys in tiles of the same size
(BR = BC), a key tile j lies

    entirely above the diagonal (j0 > last query of the tile):   skip it, all -inf
    on the diagonal (j0 + BC - 1 > i0):                           mask inside it
    entirely below:                                               no mask at all

so the key loop stops at the last key the tile's last query sees (kend = i0 + rows), and only
the diagonal tile pays for the mask. At T = 256 that is 10 of the 16 tiles per head; as T grows
the share tends to half: a causal model does half the work of a bidirectional one, and now
this code does too.

Standalone on purpose: the code this step shares with 02_tiled.c is repeated, not included, so each
file reads (and compiles) alone; `diff 02_tiled.c 03_causal_skip.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/attention/03_causal_skip 4 8 256 32
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
            const int kend = i0 + rows;  // keys the tile's last query sees; tiles past it: skipped
            for (int j0 = 0; j0 < kend; j0 += BC) {
                const int cols = imin(BC, kend - j0), on_diagonal = j0 + cols - 1 > i0;
                for (int r = 0; r < rows; r++) {
                    float* s = S + r * BC;
                    const float* qr = Q + (i0 + r) * D;
                    for (int c = 0; c < cols; c++) s[c] = 0.0f;  // S = scale · Q_i K_jᵀ
                    for (int d = 0; d < D; d++)
                        for (int c = 0; c < cols; c++) s[c] += qr[d] * Kt[d * T + j0 + c];
                    for (int c = 0; c < cols; c++) s[c] *= scale;
                    if (on_diagonal)  // the causal mask, in this tile only
                        for (int c = 0; c < cols; c++)
                            if (j0 + c > i0 + r) s[c] = -INFINITY;
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
