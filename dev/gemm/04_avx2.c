/*
GEMM step 4: an AVX2/FMA micro-kernel in intrinsics, 6 x 16.

Step 3's loops with a micro-kernel written for the machine (Salykova's "Beating OpenBLAS"):

               B panel row k:  b0 = Bp[k][0:8]   b1 = Bp[k][8:16]        2 ymm loads
    A[i,k] -> broadcast a:     c[i][0] += a*b0   c[i][1] += a*b1         i = 0..5, 12 FMAs
                               -> 12 ymm accumulators + 2 for B + 1 broadcast (of 16)

Why it is faster: a fused multiply-add does 2 flops per lane in one instruction, a ymm holds 8
floats (SSE: 4), and 12 independent accumulators are enough to keep both FMA pipes busy through
the FMA latency (2 pipes x 4 cycles = 8 in flight at least), while per k there are only
2 loads + 6 broadcasts for 12 FMAs. The tile stays in registers for all KC values of k.
Blocks as csrc/gemm.cpp's AVX2 path: KC = 256 (B panel 16 KiB in L1), MC = 144 (A block
144 KiB in L2), NC = 4096. The kernel alone is compiled for AVX2 (target attribute), so on a
CPU without it main() prints "skipped" instead of dying on an illegal instruction.

Standalone on purpose: the code this step shares with 03_packing.c is repeated, not included, so each
file reads (and compiles) alone; `diff 03_packing.c 04_avx2.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/04_avx2 1024 1024 1024
*/
#include "harness.h"

#define MR 6
#define NR 16
#define KC 256
#define MC 144   // MC x KC x 4 bytes = 144 KiB of packed A
#define NC 4096  // KC x NC x 4 bytes = 4 MiB of packed B

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
AVX2 static void kernel(int kc, const float* Ap, const float* Bp, float* C, int ldc, int mr,
                        int nr) {
    __m256 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, Ap += MR, Bp += NR) {
        const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
        for (int i = 0; i < MR; i++) {
            const __m256 a = _mm256_broadcast_ss(Ap + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
    if (mr == MR && nr == NR) {  // a full tile: straight from registers into C
        for (int i = 0; i < MR; i++) {
            float* ci = C + i * ldc;
            _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), c[i][0]));
            _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), c[i][1]));
        }
    } else {  // an edge tile: through a buffer, only the mr x nr corner
        float tile[MR][NR];
        for (int i = 0; i < MR; i++) {
            _mm256_storeu_ps(tile[i], c[i][0]);
            _mm256_storeu_ps(tile[i] + 8, c[i][1]);
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
    if (HAS_AVX2()) return gemm_main(argc, argv, __FILE__, gemm);
#endif
    return skipped(__FILE__, "this CPU has no AVX2/FMA");
}
