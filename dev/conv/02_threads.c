/*
Convolution step 2: step 1 with the images split among OpenMP threads.

Each thread takes whole images and has its own cols buffer (one per thread, from scratch()
slots), so the threads share nothing but the read-only weights: no locks, no false sharing on
y (each image's output is its own block). A batch of 128 images splits evenly over any small
thread count. nnlite's kernel threads inside the GEMM and over channels in im2col instead,
because it calls the GEMM image by image and a thread team per image would be nested.
Run:  make -C dev && OMP_NUM_THREADS=2 dev/build/conv/02_threads
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
    const int KK = C * K * K, T = imin(max_threads(), 8);   // scratch() has 8 slots
    float* bufs[8];
    for (int t = 0; t < T; t++) bufs[t] = scratch(t, (size_t)KK * L);
#pragma omp parallel for schedule(static) num_threads(T)
    for (int n = 0; n < N; n++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float* cols = bufs[t];
        im2col(x + (size_t)n * C * H * W, cols, C, H, W, K, S, P, Ho, Wo);
        float* yn = y + (size_t)n * O * L;
        for (int o = 0; o < O; o++) {
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
