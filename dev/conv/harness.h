/*
dev/conv/harness.h: the main() of every convolution step.

    build/conv/<step> [--check] [N C H W O K S P]    default 128 32 14 14 64 3 1 1; --check: no timing

2-D convolution, NCHW float32, no groups or dilation: x (N, C, H, W), w (O, C, K, K),
y (N, O, Ho, Wo) with Ho = (H + 2P - K) / S + 1 (and Wo alike):

    y[n, o, oh, ow] = Σ_{c, i, j} w[o, c, i, j] · x[n, c, oh·S - P + i, ow·S - P + j]

(x read as 0 outside the image). The default is the middle convolution of
examples/mnist_cnn.py (32 → 64 channels on 14 × 14 images, a batch of 128). x and w are uniform
in [-1, 1). Checked against the definition run in double, to 1e-5·√(C·K·K) + 1e-4 |want|,
then timed. Flops: 2·N·O·Ho·Wo·C·K·K.
*/
#include "../common.h"

typedef void (*conv_fn)(const float* x, const float* w, float* y, int N, int C, int H, int W,
                        int O, int K, int S, int P);

static inline int conv_out(int n, int K, int S, int P) { return (n + 2 * P - K) / S + 1; }

static inline void conv_reference(const float* x, const float* w, double* y, int N, int C,
                                  int H, int W, int O, int K, int S, int P) {
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double s = 0;
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < K; i++)
                            for (int j = 0; j < K; j++) {
                                const int ih = oh * S - P + i, iw = ow * S - P + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += (double)w[((o * C + c) * K + i) * K + j] *
                                     x[((n * C + c) * H + ih) * W + iw];
                            }
                    y[((size_t)(n * O + o) * Ho + oh) * Wo + ow] = s;
                }
}

static inline int conv_main(int argc, char** argv, const char* file, conv_fn conv) {
    const int check_only = argc > 1 && !strcmp(argv[1], "--check");
    if (check_only) argc--, argv++;
    int a[8] = {128, 32, 14, 14, 64, 3, 1, 1};
    if (argc > 8)
        for (int i = 0; i < 8; i++) a[i] = atoi(argv[i + 1]);
    const int N = a[0], C = a[1], H = a[2], W = a[3], O = a[4], K = a[5], S = a[6], P = a[7];
    if (N < 1 || C < 1 || H < 1 || W < 1 || O < 1 || K < 1 || S < 1 || P < 0 ||
        conv_out(H, K, S, P) < 1 || conv_out(W, K, S, P) < 1) {
        fprintf(stderr, "usage: %s [--check] [N C H W O K S P]  (a K x K window must fit)\n",
                argv[0]);
        return 2;
    }
    const int Ho = conv_out(H, K, S, P), Wo = conv_out(W, K, S, P);
    const char* step = step_name(file);
    char size[160];
    snprintf(size, sizeof size, "N=%d C=%d H=%d W=%d O=%d K=%d S=%d P=%d", N, C, H, W, O, K, S,
             P);
    const size_t nx = (size_t)N * C * H * W, nw = (size_t)O * C * K * K;
    const size_t ny = (size_t)N * O * Ho * Wo;
    float *x = floats(nx), *w = floats(nw), *y = floats(ny);
    double* want = (double*)malloc(sizeof(double) * ny);
    fill_uniform(x, nx, 1), fill_uniform(w, nw, 2);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    double t0 = now_s();
    conv(x, w, y, N, C, H, W, O, K, S, P);
    const double first_ms = (now_s() - t0) * 1e3;
    conv_reference(x, w, want, N, C, H, W, O, K, S, P);
    const int ok = check_close(step, size, "y", y, want, ny, 1e-5 * sqrt((double)C * K * K),
                               1e-4);
    if (ok && !check_only) {
        double best_ms;
        TIME_BEST(best_ms, first_ms, conv(x, w, y, N, C, H, W, O, K, S, P));
        print_time(step, size, max_threads(), best_ms, 2.0 * ny * C * K * K);
    }
    free(x), free(w), free(y), free(want);
    return ok ? 0 : 1;
}
