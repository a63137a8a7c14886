/*
GEMM step 7: the small-M path for MLP batches: A and B read in place, no barriers.

The MLP shape here: M = 64 rows (the batch), K = 784, N = 256.

Step 6 at 64 x 784 x 256 spends much of its time on things that do not pay at this size:
  - packing A: a 64-row A (196 KiB) stays in L2 as it is, and the kernel only ever broadcasts
    one A[i,k] at a time, which costs the same from the caller's matrix (row stride K) as from
    a packed panel. So the kernel learns strides (rs_a, cs_a), and A is read in place.
  - packing B: each B panel serves only M/MR = 11 tiles; the copy is not repaid. A full panel is
    read in place (ldb = N, unaligned loads); only the ragged last one is packed (zero padding).
  - barriers: with nothing shared to pack, each thread owns a rectangle of tiles (a range of
    B panels x a range of A panels) and the only synchronisation is the final join. On a busy
    machine a barrier can cost a whole scheduler time slice when a team-mate is descheduled.
  - threads at all below 2^19 multiply-adds (~15 us of work for one core): waking them costs
    more than that.
This is the BLIS "sup" (small/skinny, unpacked) idea; csrc/gemm.cpp's gemm_sup_thread.
Large M (> 16 MR rows) still takes step 6's path, unchanged but for the kernel's strides
(the kernels keep step 6's do-while k loop, for the same reason).

Standalone on purpose: the code this step shares with 06_openmp.c is repeated, not included, so each
file reads (and compiles) alone; `diff 06_openmp.c 07_small_m.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/07_small_m 64 784 256
*/
#include "harness.h"

#if X86
// C[0:mr, 0:nr] += A (MR x kc, element A[i*rs_a + k*cs_a]) @ B (kc x NR, row stride ldb).
// Rows i >= mr read row 0 (nothing past the matrix is touched); their results are dropped.
// Packed A panels: rs_a = 1, cs_a = MR.  A in place: rs_a = K, cs_a = 1.
typedef void (*kernel_fn)(int kc, const float* A, int rs_a, int cs_a, const float* B, int ldb,
                          float* C, int ldc, int mr, int nr);

AVX2 static void kernel_avx2(int kc, const float* A, int rs_a, int cs_a, const float* B,
                             int ldb, float* C, int ldc, int mr, int nr) {
    enum { MR = 6, NR = 16 };
    const float* a[MR];
    for (int i = 0; i < MR; i++) a[i] = A + (i < mr ? i : 0) * rs_a;
    __m256 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    int k = 0, off = 0;
    do {  // kc >= 1: a do-while, not a for (see the header)
        const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a[i] + off);
            c[i][0] = _mm256_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(ai, b1, c[i][1]);
        }
        off += cs_a, B += ldb;
    } while (++k < kc);
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

AVX512 static void kernel_avx512(int kc, const float* A, int rs_a, int cs_a, const float* B,
                                 int ldb, float* C, int ldc, int mr, int nr) {
    enum { MR = 8, NR = 32 };
    const float* a[MR];
    for (int i = 0; i < MR; i++) a[i] = A + (i < mr ? i : 0) * rs_a;
    __m512 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    int k = 0, off = 0;
    do {  // kc >= 1: a do-while, not a for (see the header)
        const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i][off]);
            c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
        }
        off += cs_a, B += ldb;
    } while (++k < kc);
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

typedef struct { int MR, NR, KC, MC, NC; kernel_fn kernel; } Config;

static Config pick_config(void) {  // the widest kernel this CPU runs, with its blocks
    if (HAS_AVX512()) return (Config){8, 32, 512, 240, 4096, kernel_avx512};
    return (Config){6, 16, 256, 144, 4096, kernel_avx2};
}

// P[k*W + j] = X[j*vs + k*ks] for j < n, 0 for n <= j < W: one panel, W wide, kc deep.
static void pack(int n, int W, int kc, const float* X, int vs, int ks, float* P) {
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < W; j++) P[k * W + j] = j < n ? X[j * vs + k * ks] : 0.0f;
}

// Step 6's driver (large M): A and B packed, all threads share the blocks, barriers between.
static void gemm_packed(const Config cfg, const float* A, const float* B, float* C, int M,
                        int N, int K, int nt) {
    const int MR = cfg.MR, NR = cfg.NR, KC = cfg.KC, MC = cfg.MC, NC = cfg.NC;
    float* Bp = scratch(0, (size_t)KC * (NC + NR));
    float* Ap = scratch(1, (size_t)(MC + MR) * KC);
    (void)nt;  // unused without OpenMP
#pragma omp parallel num_threads(nt)
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = imin(NC, N - jc), npb = (nc + NR - 1) / NR;
        for (int pc = 0; pc < K; pc += KC) {
            const int kc = imin(KC, K - pc);
#pragma omp for schedule(static)
            for (int jp = 0; jp < npb; jp++)
                pack(imin(NR, nc - jp * NR), NR, kc, B + pc * N + jc + jp * NR, 1, N,
                     Bp + jp * NR * kc);
            for (int ic = 0; ic < M; ic += MC) {
                const int mc = imin(MC, M - ic), npa = (mc + MR - 1) / MR;
#pragma omp for schedule(static)
                for (int ip = 0; ip < npa; ip++)
                    pack(imin(MR, mc - ip * MR), MR, kc, A + (ic + ip * MR) * K + pc, K, 1,
                         Ap + ip * MR * kc);
#pragma omp for schedule(static)
                for (int t = 0; t < npa * npb; t++) {
                    const int jp = t / npa, ip = t % npa;
                    cfg.kernel(kc, Ap + ip * MR * kc, 1, MR, Bp + jp * NR * kc, NR,
                               C + (ic + ip * MR) * N + jc + jp * NR, N,
                               imin(MR, mc - ip * MR), imin(NR, nc - jp * NR));
                }
            }
        }
    }
}

// One thread's rectangle of tiles, B panels [jp0, jp1) x A panels [ip0, ip1), A and full B
// panels read in place; only a ragged last B panel is packed, into this thread's own Bp.
static void gemm_small_m_thread(const Config cfg, const float* A, const float* B, float* C,
                                int M, int N, int K, int jp0, int jp1, int ip0, int ip1,
                                float* Bp) {
    const int MR = cfg.MR, NR = cfg.NR;
    for (int pc = 0; pc < K; pc += cfg.KC) {
        const int kc = imin(cfg.KC, K - pc);
        for (int jp = jp0; jp < jp1; jp++) {
            const int j0 = jp * NR, nr = imin(NR, N - j0);
            const float* b = B + pc * N + j0;
            int ldb = N;
            if (nr < NR) pack(nr, NR, kc, b, 1, N, Bp), b = Bp, ldb = NR;
            for (int ip = ip0; ip < ip1; ip++)
                cfg.kernel(kc, A + ip * MR * K + pc, K, 1, b, ldb, C + ip * MR * N + j0, N,
                           imin(MR, M - ip * MR), nr);
        }
    }
}

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    const Config cfg = pick_config();
    int nt = (double)M * N * K < (1 << 19) ? 1 : max_threads();
    memset(C, 0, sizeof(float) * M * N);
    if (M > 16 * cfg.MR) return gemm_packed(cfg, A, B, C, M, N, K, nt);

    const int npa = (M + cfg.MR - 1) / cfg.MR, npb = (N + cfg.NR - 1) / cfg.NR;
    nt = imax(1, imin(nt, npa * npb));
    // thread grid tn x tm over (B panels, A panels) with the fewest tiles on the busiest thread
    int tn = 1, tm = nt, best = 1 << 30;
    for (int d = 1; d <= nt; d++) {
        if (nt % d) continue;
        const int w = (npb + d - 1) / d * ((npa + nt / d - 1) / (nt / d));
        if (w <= best) best = w, tn = d, tm = nt / d;  // ties: split N (no panel packed twice)
    }
    float* Bp = scratch(0, (size_t)nt * cfg.KC * cfg.NR);
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        const int bi = tid / tm, ai = tid % tm;
        gemm_small_m_thread(cfg, A, B, C, M, N, K, bi * npb / tn, (bi + 1) * npb / tn,
                            ai * npa / tm, (ai + 1) * npa / tm, Bp + tid * cfg.KC * cfg.NR);
    }
}
#endif

int main(int argc, char** argv) {
#if X86
    if (HAS_AVX2()) return gemm_main(argc, argv, __FILE__, gemm);
#endif
    return skipped(__FILE__, "this CPU has no AVX2/FMA");
}
