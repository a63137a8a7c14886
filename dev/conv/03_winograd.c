/*
Convolution step 3: Winograd F(2x2, 3x3) for 3 x 3 windows at stride 1 (others: step 1).

Step 1 spends 9·C multiply-adds on each output pixel. Winograd's minimal filtering (Lavin &
Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) computes a 2 x 2 block of
outputs from the 4 x 4 input patch d under it with 16 products per channel instead of 36:

            [1  0 -1  0]        [ 1    0    0 ]
       Bᵀ = [0  1  1  0]    G = [1/2  1/2  1/2]    Aᵀ = [1 1  1  0]
            [0 -1  1  0]        [1/2 -1/2  1/2]         [0 1 -1 -1]
            [0  1  0 -1]        [ 0    0    1 ]

       U = G g Gᵀ (4 x 4, once per filter g),  V = Bᵀ d B (4 x 4, once per patch and channel)
       y (2 x 2) = Aᵀ [ Σ_c U[o, c] ⊙ V[c] ] A

The sum over channels is element-wise in the 4 x 4 domain, so for each of the 16 positions ξ
it is a matrix product: M_ξ (O, tiles) = U_ξ (O, C) @ V_ξ (C, tiles). That is 16 GEMMs with
K = C, 16·O·C multiply-adds per 4 outputs: 4·C per pixel against 9·C, 2.25x fewer. The
transforms are additions and subtractions only (G's halves are paid once per filter). The
price: rounding differs from the direct sum (the inputs are combined before they are
multiplied; about 1e-6 relative in float32 for 3 x 3), and padding the output up to whole
2 x 2 tiles. nnlite's kernel (csrc/cpu/conv.cpp, winograd_conv) runs the 16 products on the
packed GEMM, for a chunk of images at a time, with the transforms vectorised across tiles
(csrc/cpu/conv.inc: wino_in_row, wino_out_row), and uses it for the input gradient too.
Run:  make -C dev && dev/build/conv/03_winograd
*/
#include "harness.h"

static void im2col_conv(const float* x, const float* w, float* y, int N, int C, int H, int W,
                        int O, int K, int S, int P) {  // step 1, for what Winograd does not cover
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P), L = Ho * Wo;
    const int KK = C * K * K;
    float* cols = scratch(0, (size_t)KK * L);
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++)
            for (int i = 0; i < K; i++)
                for (int j = 0; j < K; j++) {
                    float* row = cols + (size_t)((c * K + i) * K + j) * L;
                    for (int oh = 0; oh < Ho; oh++)
                        for (int ow = 0; ow < Wo; ow++) {
                            const int ih = oh * S - P + i, iw = ow * S - P + j;
                            row[oh * Wo + ow] = (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                                    ? 0.0f
                                                    : x[((size_t)n * C + c) * H * W + ih * W + iw];
                        }
                }
        for (int o = 0; o < O; o++) {
            float* yr = y + ((size_t)n * O + o) * L;
            for (int l = 0; l < L; l++) yr[l] = 0.0f;
            for (int k = 0; k < KK; k++) {
                const float a = w[(size_t)o * KK + k];
                for (int l = 0; l < L; l++) yr[l] += a * cols[(size_t)k * L + l];
            }
        }
    }
}

static void conv_forward(const float* x, const float* w, float* y, int N, int C, int H, int W,
                         int O, int K, int S, int P) {
    if (K != 3 || S != 1) return im2col_conv(x, w, y, N, C, H, W, O, K, S, P);
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P);
    const int TH = (Ho + 1) / 2, TW = (Wo + 1) / 2, T = TH * TW;  // 2 x 2 tiles an image
    float* U = scratch(0, (size_t)16 * O * C);                    // U[ξ][o][c]
    float* V = scratch(1, (size_t)16 * C * T);                    // V[ξ][c][t]
    float* M = scratch(2, (size_t)16 * O * T);                    // M[ξ][o][t]
    for (int o = 0; o < O; o++)  // U = G g Gᵀ
        for (int c = 0; c < C; c++) {
            const float* g = w + ((size_t)o * C + c) * 9;
            float gg[4][3];  // G g
            for (int j = 0; j < 3; j++) {
                gg[0][j] = g[j];
                gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                gg[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {  // (G g) Gᵀ
                const float u[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                                    0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
                for (int j = 0; j < 4; j++) U[((size_t)(4 * i + j) * O + o) * C + c] = u[j];
            }
        }
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++)  // V = Bᵀ d B for every tile of channel c
            for (int ty = 0; ty < TH; ty++)
                for (int tx = 0; tx < TW; tx++) {
                    float d[4][4], t[4][4];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {  // the patch, 0 outside the image
                            const int ih = 2 * ty - P + i, iw = 2 * tx - P + j;
                            d[i][j] = (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                          ? 0.0f
                                          : x[((size_t)n * C + c) * H * W + ih * W + iw];
                        }
                    for (int i = 0; i < 4; i++) {  // t = d B (along each row)
                        t[i][0] = d[i][0] - d[i][2];
                        t[i][1] = d[i][1] + d[i][2];
                        t[i][2] = d[i][2] - d[i][1];
                        t[i][3] = d[i][1] - d[i][3];
                    }
                    const size_t at = (size_t)c * T + ty * TW + tx, vs = (size_t)C * T;
                    for (int j = 0; j < 4; j++) {  // V = Bᵀ t (along each column)
                        V[(0 + j) * vs + at] = t[0][j] - t[2][j];
                        V[(4 + j) * vs + at] = t[1][j] + t[2][j];
                        V[(8 + j) * vs + at] = t[2][j] - t[1][j];
                        V[(12 + j) * vs + at] = t[1][j] - t[3][j];
                    }
                }
        for (int xi = 0; xi < 16; xi++)  // M_ξ = U_ξ @ V_ξ, i-k-j as in step 1
            for (int o = 0; o < O; o++) {
                float* m = M + ((size_t)xi * O + o) * T;
                for (int t = 0; t < T; t++) m[t] = 0.0f;
                for (int c = 0; c < C; c++) {
                    const float u = U[((size_t)xi * O + o) * C + c];
                    const float* v = V + ((size_t)xi * C + c) * T;
                    for (int t = 0; t < T; t++) m[t] += u * v[t];
                }
            }
        for (int o = 0; o < O; o++)  // y = Aᵀ m A per tile, cut at the image's edge
            for (int ty = 0; ty < TH; ty++)
                for (int tx = 0; tx < TW; tx++) {
                    const size_t at = (size_t)o * T + ty * TW + tx, ms = (size_t)O * T;
                    float s[2][4];
                    for (int j = 0; j < 4; j++) {  // s = Aᵀ m
                        const float m0 = M[(0 + j) * ms + at], m1 = M[(4 + j) * ms + at];
                        const float m2 = M[(8 + j) * ms + at], m3 = M[(12 + j) * ms + at];
                        s[0][j] = m0 + m1 + m2;
                        s[1][j] = m1 - m2 - m3;
                    }
                    for (int a = 0; a < 2; a++) {  // then s A
                        const float out[2] = {s[a][0] + s[a][1] + s[a][2],
                                              s[a][1] - s[a][2] - s[a][3]};
                        for (int b = 0; b < 2; b++) {
                            const int oh = 2 * ty + a, ow = 2 * tx + b;
                            if (oh < Ho && ow < Wo)
                                y[(((size_t)n * O + o) * Ho + oh) * Wo + ow] = out[b];
                        }
                    }
                }
    }
}

int main(int argc, char** argv) { return conv_main(argc, argv, __FILE__, conv_forward); }
