/*
GEMM step 2: cache blocking.       C (M,N) = A (M,K) @ B (K,N), row-major float32

    for jc in N step NC, for pc in K step KC:          one KC x NC block of B ...
        for i, for k in the block: C[i, jc:jc+NC] += A[i,k] * B[k, jc:jc+NC]
                                                        ... reused by every row of A

Step 1 streamed all of B (4 MiB at 1024^2) once per row of A, from L3 or memory. Here the
loops over K and N are cut into blocks: one KC x NC block of B (128 x 1024 floats = 512 KiB)
stays in the L2 cache while all M rows of A pass over it, and the slice of a C row it updates
(NC floats = 4 KiB) stays in L1 across the KC updates. Same inner loop as step 1.
Measured, this alone buys little while B fits in L3 (4 MiB at 1024^2; Zen 4 has 32 MiB): the
inner loop still loads and stores C once per multiply-add, and that, not the B stream, is its
limit. The blocks matter from step 3 on, where they are what makes packing affordable.

Standalone on purpose: the code this step shares with 01_loop_order.c is repeated, not included, so each
file reads (and compiles) alone; `diff 01_loop_order.c 02_blocking.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/02_blocking 1024 1024 1024
*/
#include "harness.h"

#define KC 128   // rows of the B block
#define NC 1024  // columns of the B block: KC x NC x 4 bytes = 512 KiB, half of a 1 MiB L2

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    memset(C, 0, sizeof(float) * M * N);
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = imin(NC, N - jc);
        for (int pc = 0; pc < K; pc += KC) {
            const int kc = imin(KC, K - pc);
            for (int i = 0; i < M; i++)
                for (int k = pc; k < pc + kc; k++) {
                    const float a = A[i * K + k];
                    for (int j = jc; j < jc + nc; j++) C[i * N + j] += a * B[k * N + j];
                }
        }
    }
}

int main(int argc, char** argv) { return gemm_main(argc, argv, __FILE__, gemm); }
