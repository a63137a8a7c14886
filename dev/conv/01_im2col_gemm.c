/*
Convolution step 1: im2col, then one matrix product per image.

    cols (C·K·K, L), L = Ho·Wo:  cols[(c, i, j), (oh, ow)] = x[n, c, oh·S - P + i, ow·S - P + j]
    y[n] (O, L) = W (O, C·K·K) @ cols

The window of every output pixel is copied out once into a column (zeros where it hangs over
the border), so the convolution becomes a GEMM with M = O, K = C·K·K, N = L, and the padding
tests leave the inner loop. The product is written i-k-j (dev/gemm/01_loop_order.c): the
innermost loop runs along a row of cols and of y, unit stride, which the compiler vectorises,
and each weight is loaded once per row instead of once per pixel. The cost is the cols buffer
(C·K·K·L floats per image, 288 × 196 here) and one extra pass to fill it, small next to the
2·O·C·K·K·L flops. nnlite's kernel (csrc/cpu/conv.cpp) is this step with the packed, blocked
and threaded GEMM of csrc/cpu/gemm.cpp in place of the loop below.
Run:  make -C dev && dev/build/conv/01_im2col_gemm
*/
#include "harness.h"

static void im2col(const float* x, float* cols, int C, int H, int W, int K, int S, int P,
                   int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                float* row = cols + (size_t)((c * K + i) * K + j) * Ho * Wo;
                for (int oh = 0; oh < Ho; oh++)
                    for (int ow = 0; ow < Wo; ow++) {
                        const int ih = oh * S - P + i, iw = ow * S - P + j;
                        row[oh * Wo + ow] = (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                                ? 0.0f
                                                : x[(c * H + ih) * W + iw];
                    }
            }
}

static void conv_forward(const float* x, const float* w, float* y, int N, int C, int H, int W,
                         int O, int K, int S, int P) {
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P), L = Ho * Wo;
    const int KK = C * K * K;
    float* cols = scratch(0, (size_t)KK * L);
    for (int n = 0; n < N; n++) {
        im2col(x + (size_t)n * C * H * W, cols, C, H, W, K, S, P, Ho, Wo);
        float* yn = y + (size_t)n * O * L;
        for (int o = 0; o < O; o++) {  // y[o, :] = Σ_k W[o, k] cols[k, :]
            float* yr = yn + (size_t)o * L;
            for (int l = 0; l < L; l++) yr[l] = 0.0f;
            for (int k = 0; k < KK; k++) {
                const float a = w[(size_t)o * KK + k];
                const float* cr = cols + (size_t)k * L;
                for (int l = 0; l < L; l++) yr[l] += a * cr[l];
            }
        }
    }
}

int main(int argc, char** argv) { return conv_main(argc, argv, __FILE__, conv_forward); }
