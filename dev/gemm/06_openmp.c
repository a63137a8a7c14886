/*
GEMM step 6: threads (OpenMP).

Steps 4 and 5 both, picked at run time by what the CPU has (as csrc/gemm.cpp does), inside one
parallel region that runs the blocked loops on every thread. Three `omp for`s split the work:

    for jc, for pc:                      (every thread walks the same block loops)
      omp for: pack the B panels         threads pack disjoint panels of one shared buffer
      for ic:
        omp for: pack the A panels
        omp for: the micro-kernel tiles  in B-panel-major order: a thread's contiguous share
                                         of tiles touches few B panels, which stay in its cache

Each `omp for` ends in a barrier, which orders pack -> compute -> repack. Every C tile is
written by one thread and summed in the same order as on one thread, so the result does not
depend on the thread count. At 1024^3 each block pass has ~1500 tiles (AVX2: 24 A panels x
64 B panels), plenty to share; the cost is the barriers, ~70 per call, each one waiting for the
slowest thread (on a busy machine, for a descheduled one: see step 7).
Built with -fopenmp (make -C dev, NO_OMP=1 to opt out); OMP_NUM_THREADS sets the count.

The kernels' k loop is a do-while (kc >= 1 always): with kc unknown, as it is through the
function pointer, GCC 12 -O3 compiles a `for` that might run zero times with the 12
accumulators kept in stack memory, 12 ymm stores per k beside the 12 FMAs, and the kernel runs
at 2.3x step 4's time (60 vs 26 ms at 1024^3 on one thread). Step 4 escaped by luck: its one
direct call let GCC infer kc in [1, 256]. Check with objdump: the k loop must hold no (%rsp).

Standalone on purpose: the code this step shares with 05_avx512.c is repeated, not included, so each
file reads (and compiles) alone; `diff 05_avx512.c 06_openmp.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/06_openmp 1024 1024 1024
*/
#include "harness.h"

#if X86
typedef void (*kernel_fn)(int kc, const float* Ap, const float* Bp, float* C, int ldc, int mr,
                          int nr);

// C[0:mr, 0:nr] += Ap (6 x kc) @ Bp (kc x 16): step 4's kernel
AVX2 static void kernel_avx2(int kc, const float* Ap, const float* Bp, float* C, int ldc,
                             int mr, int nr) {
    enum { MR = 6, NR = 16 };
    __m256 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    int k = 0;
    do {  // kc >= 1: a do-while, not a for (see the header)
        const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
        for (int i = 0; i < MR; i++) {
            const __m256 a = _mm256_broadcast_ss(Ap + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
        Ap += MR, Bp += NR;
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

// C[0:mr, 0:nr] += Ap (8 x kc) @ Bp (kc x 32): step 5's kernel
AVX512 static void kernel_avx512(int kc, const float* Ap, const float* Bp, float* C, int ldc,
                                 int mr, int nr) {
    enum { MR = 8, NR = 32 };
    __m512 c[MR][2];
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    int k = 0;
    do {  // kc >= 1: a do-while, not a for (see the header)
        const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
        for (int i = 0; i < MR; i++) {
            const __m512 a = _mm512_set1_ps(Ap[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
        Ap += MR, Bp += NR;
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
// B panels: W = NR, vs = 1, ks = ldb;  A panels: W = MR, vs = lda, ks = 1.
static void pack(int n, int W, int kc, const float* X, int vs, int ks, float* P) {
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < W; j++) P[k * W + j] = j < n ? X[j * vs + k * ks] : 0.0f;
}

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    const Config cfg = pick_config();
    const int MR = cfg.MR, NR = cfg.NR, KC = cfg.KC, MC = cfg.MC, NC = cfg.NC;
    float* Bp = scratch(0, (size_t)KC * (NC + NR));
    float* Ap = scratch(1, (size_t)(MC + MR) * KC);
    memset(C, 0, sizeof(float) * M * N);
#pragma omp parallel
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
                    cfg.kernel(kc, Ap + ip * MR * kc, Bp + jp * NR * kc,
                               C + (ic + ip * MR) * N + jc + jp * NR, N,
                               imin(MR, mc - ip * MR), imin(NR, nc - jp * NR));
                }
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
