/*
GEMM step 5: the AVX-512 micro-kernel, 8 x 32.

Step 4 with 512-bit registers: twice the lanes per FMA, and 32 zmm registers instead of 16 ymm.

               B panel row k:  b0 = Bp[k][0:16]  b1 = Bp[k][16:32]       2 zmm loads
    A[i,k] -> broadcast a:     c[i][0] += a*b0   c[i][1] += a*b1         i = 0..7, 16 FMAs
                               -> 16 zmm accumulators + 2 for B + 1 broadcast

Why 8 x 32 and not the taller 14 x 32 that 32 registers allow: on Zen 4 a zmm FMA issues once
per cycle with 4 cycles of latency, so 16 independent accumulators already saturate it, and 8
broadcasts + 2 loads per 16 FMAs fit its 2 loads per cycle. A 64-row MLP batch is 8 tiles of 8
exactly, but 5 tiles of 14 (70 rows, 6 of padding). Blocks as csrc/gemm.cpp's AVX-512 path:
KC = 512 (fewer passes over C; the 64 KiB B panel sits in L2), MC = 240.
On a CPU without AVX-512F main() prints "skipped": only the kernel is compiled for AVX-512
(target attribute), so main() itself runs anywhere.

Standalone on purpose: the code this step shares with 04_avx2.c is repeated, not included, so each
file reads (and compiles) alone; `diff 04_avx2.c 05_avx512.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/05_avx512 1024 1024 1024
*/
#include "harness.h"

#define MR 8
#define NR 32
#define KC 512
#define MC 240   // MC x KC x 4 bytes = 480 KiB of packed A
#define NC 4096  // KC x NC x 4 bytes = 8 MiB of packed B

// Bp[k*NR + j] = B[k, j] for j < n, 0 for n <= j < NR   (B: kc rows, row stride ldb)
static void pack_B(int n, int kc, const float* B, int ldb, float* Bp) {
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < NR; j++) Bp[k * NR + j] = j < n ? B[k * ldb + j] : 0.0f;
}

// Ap[k*MR + i] = A[i, k] for i < m, 0 for m <= i < MR   (A: row stride lda)
static void pack_A(int m, int kc, const float* A, int lda, float* Ap) {
    for (int k = 0; k < kc; k++)
        for (int i = 0; i < MR; i++) Ap[k * MR + i] = i < m ? A[i * lda + k] : 0.0f;
}

#if X86
// C[0:mr, 0:nr] += Ap (MR x kc) @ Bp (kc x NR), C with row stride ldc
AVX512 static void kernel(int kc, const float* Ap, const float* Bp, float* C, int ldc, int mr,
                          int nr) {
    __m512 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, Ap += MR, Bp += NR) {
        const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
        for (int i = 0; i < MR; i++) {
            const __m512 a = _mm512_set1_ps(Ap[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
    if (mr == MR && nr == NR) {  // a full tile: straight from registers into C
        for (int i = 0; i < MR; i++) {
            float* ci = C + i * ldc;
            _mm512_storeu_ps(ci, _mm512_add_ps(_mm512_loadu_ps(ci), c[i][0]));
            _mm512_storeu_ps(ci + 16, _mm512_add_ps(_mm512_loadu_ps(ci + 16), c[i][1]));
        }
    } else {  // an edge tile: through a buffer, only the mr x nr corner
        float tile[MR][NR];
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_ps(tile[i], c[i][0]);
            _mm512_storeu_ps(tile[i] + 16, c[i][1]);
        }
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) C[i * ldc + j] += tile[i][j];
    }
}

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    float* Bp = scratch(0, (size_t)KC * (NC + NR));
    float* Ap = scratch(1, (size_t)MC * KC);
    memset(C, 0, sizeof(float) * M * N);
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = imin(NC, N - jc);
        for (int pc = 0; pc < K; pc += KC) {
            const int kc = imin(KC, K - pc);
            for (int jr = 0; jr < nc; jr += NR)
                pack_B(imin(NR, nc - jr), kc, B + pc * N + jc + jr, N, Bp + jr * kc);
            for (int ic = 0; ic < M; ic += MC) {
                const int mc = imin(MC, M - ic);
                for (int ir = 0; ir < mc; ir += MR)
                    pack_A(imin(MR, mc - ir), kc, A + (ic + ir) * K + pc, K, Ap + ir * kc);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR)
                        kernel(kc, Ap + ir * kc, Bp + jr * kc, C + (ic + ir) * N + jc + jr, N,
                               imin(MR, mc - ir), imin(NR, nc - jr));
            }
        }
    }
}
#endif

int main(int argc, char** argv) {
#if X86
    if (HAS_AVX512()) return gemm_main(argc, argv, __FILE__, gemm);
#endif
    return skipped(__FILE__, "this CPU has no AVX-512F");
}
