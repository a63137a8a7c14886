/*
Convolution step 0: the definition, seven nested loops.

    y[n, o, oh, ow] = Σ_{c, i, j} w[o, c, i, j] · x[n, c, oh·S - P + i, ow·S - P + j]

For every output (n, o, oh, ow) the innermost three loops walk a C × K × K window, testing
each tap against the image border (the zero padding) and summing into one chain of dependent
adds, which the compiler may not reorder: nothing is vectorised, and each w[o] is re-read from
cache for every output pixel. Every later step is checked against this math, run in double
(harness.h).
Run:  make -C dev && dev/build/conv/00_naive
*/
#include "harness.h"

static void conv_forward(const float* x, const float* w, float* y, int N, int C, int H, int W,
                         int O, int K, int S, int P) {
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    float s = 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < K; i++)
                            for (int j = 0; j < K; j++) {
                                const int ih = oh * S - P + i, iw = ow * S - P + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += w[((o * C + c) * K + i) * K + j] *
                                     x[((n * C + c) * H + ih) * W + iw];
                            }
                    y[((n * O + o) * Ho + oh) * Wo + ow] = s;
                }
}

int main(int argc, char** argv) { return conv_main(argc, argv, __FILE__, conv_forward); }
