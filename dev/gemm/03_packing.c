/*
GEMM step 3: packed panels and a register-tile micro-kernel (the BLIS loop nest).

    for jc in N step NC:                           B block (KC x NC) in L3
      for pc in K step KC:
        pack B[pc:+KC, jc:+NC] into NR-wide panels
        for ic in M step MC:                       A block (MC x KC) in L2
          pack A[ic:+MC, pc:+KC] into MR-tall panels
          for each NR panel, for each MR panel:    B panel (KC x NR) in L1
            micro-kernel: C tile (MR x NR) += A panel (MR x KC) @ B panel (KC x NR)

Step 2 still loads and stores C[i, j] once per k. The micro-kernel keeps an MR x NR tile of C in
registers for all KC steps of k: per k it loads MR values of A and NR of B and does MR·NR
multiply-adds, so the loads per flop fall by ~MR (C is touched once per KC, not once per k).
Packing copies each panel into the order the kernel reads it (Bp[k][0:NR], Ap[k][0:MR]):
unit stride, no TLB misses on 4 KiB-apart rows, and zero padding so edge tiles run the same
loop and only their final store is partial.
The kernel is plain C, MR x NR = 4 x 8 (8 SSE registers of accumulators): the compiler
vectorises it at the x86-64 baseline. This is csrc/gemm.cpp's scalar path (its 4 x 8 and
blocks KC = 256, MC = 128).

Standalone on purpose: the code this step shares with 02_blocking.c is repeated, not included, so each
file reads (and compiles) alone; `diff 02_blocking.c 03_packing.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/03_packing 1024 1024 1024
*/
#include "harness.h"

#define MR 4
#define NR 8
#define KC 256
#define MC 128   // MC x KC x 4 bytes = 128 KiB of packed A
#define NC 2048  // KC x NC x 4 bytes = 2 MiB of packed B

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

// C[0:mr, 0:nr] += Ap (MR x kc) @ Bp (kc x NR), C with row stride ldc
static void kernel(int kc, const float* Ap, const float* Bp, float* C, int ldc, int mr, int nr) {
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++, Ap += MR, Bp += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += Ap[i] * Bp[j];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) C[i * ldc + j] += acc[i][j];
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

int main(int argc, char** argv) { return gemm_main(argc, argv, __FILE__, gemm); }
