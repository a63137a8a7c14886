/*
GEMM: the matrix multiply behind every Linear layer, forward and backward.

    C (M,N) = A (M,K) @ B (K,N)            gemm      (forward: Y = X @ W)
    C (M,N) = A (M,K) @ B(N,K).T           gemm_nt   (input grad: dX = dY @ W.T)
    C (M,N) = A(K,M).T @ B (K,N)           gemm_tn   (weight grad: dW = X.T @ dY)
    optionally C += ... (accumulate) for gradient accumulation.

All three are one routine, gemm_strided(): a transpose is only a swap of the element strides
the packing routines read with, so no operand is ever copied before packing, whatever its
layout (transposed view, slice with a step, Fortran order, negative strides).

The algorithm is the GotoBLAS/BLIS one:

    for jc in N step NC:                       B block (KC x NC) lives in L3
      for pc in K step KC:
        pack B[pc:pc+KC, jc:jc+NC] into NR-wide panels (threads split the panels)
        for ic in M step MC:                   A block (MC x KC) lives in L2
          pack A[ic:ic+MC, pc:pc+KC] into MR-tall panels   (big problems only, see below)
          for every (NR panel, MR panel) tile:  threads split the tiles
            micro-kernel: C tile (MR x NR) (+)= A panel (MR x KC) @ B panel (KC x NR)

Packing B makes the micro-kernel's vector loads unit-stride and aligned, and zero-pads the
last panel so the K loop never branches on edges; edge tiles only differ in the final store.
For a small batch (M <= 16 MR) with row-contiguous B, each B panel serves too few tiles to
repay the copy, so full panels are read in place (ldb = B's row stride) and only a ragged last
panel is packed.
A is only broadcast one scalar at a time, which costs the same from the caller's matrix (with
its strides) as from a packed panel, so A is packed only when it is too big to stay in L2
(> 384 KiB) and reused by more than two B panels. An MLP's batch of 64 rows never is: skipping
that pass (BLIS's "sup" idea) was worth ~20% on the MNIST shapes and nothing was lost on the
big ones. Packing is a copy when the source is contiguous along the panel and an 8x8 (f32) /
4x4 (f64) AVX2 register transpose when it is contiguous along K (row-major A; B in gemm_nt).

Versions (picked per call by nnlite::simd_path(), forced with NNLITE_SIMD or ops.force_simd):
    scalar   plain C++ loops, MR x NR = 4 x 8; portable (ARM, MSVC, old x86), obviously correct
    avx2     AVX2/FMA,  f32 6 x 16, f64 6 x 8   (12 ymm accumulators); N <= 8/4: 8 x 1 vector
    avx512   AVX-512F,  f32 8 x 32, f64 8 x 16  (16 zmm accumulators); N <= 16/8: 8 x 1 vector

The AVX-512 micro-kernel's register layout (f32 shown; f64 is the same with 8 lanes):

               B panel row k: b0 = B[k, 0:16]  b1 = B[k, 16:32]        (2 zmm, aligned loads)
    A[i, k] -> broadcast a    c[i][0] += a*b0  c[i][1] += a*b1         i = 0..7
                              -> 16 zmm accumulators + 2 for B + 1 broadcast.
Why 8 x 32 and not the taller 14 x 32 that 32 zmm registers allow: on Zen 4 a zmm FMA issues
at 1/cycle with 4-cycle latency, so 16 independent accumulators already saturate it, and the
8 broadcasts + 2 loads per 16 FMAs fit the 2 loads/cycle. What the taller tile would save in
loads it loses in padding: 64 rows (the MLP batch) are 8 x 8 exactly but 5 x 14 = 70 rows.
Measured (bench_gemm.py): 8 x 32 ties 14 x 32 and 12 x 32 on the squares, beats both by
15-35% on the MLP shapes.
Narrow outputs (the 10 logits of a classifier) use one vector per row instead of two: 2/3 of a
32-wide tile would be padding.

Threads: OpenMP, only above 2^19 FMAs (below that, waking the team costs more than it saves).
Big problems (packed A): threads share the packed blocks and split the tiles B-panel-major, so
each thread's share touches few B panels; barriers separate packing from computing. Small
problems (A in place, gemm_sup_thread): each thread owns a rectangle of tiles and packs its own
B panels, so the only synchronisation is the final join. Results do not depend on the thread count: every C element is summed in
the same order. MXCSR is per thread, so every parallel region opens its own FtzScope.

Benchmark:  python benchmarks/bench_gemm.py            (GFLOP/s vs numpy/OpenBLAS, torch)
            python benchmarks/bench_gemm.py --check    (also verifies the results)
Test:       python -m pytest tests/test_ops_gemm.py
*/
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "common/cpu.h"

// The SIMD kernels use GCC/Clang target attributes; other compilers (MSVC) get the scalar path,
// which is also all cpu.cpp reports as supported there.
#if NNLITE_X86 && (defined(__GNUC__) || defined(__clang__))
#define NNLITE_GEMM_SIMD 1
#else
#define NNLITE_GEMM_SIMD 0
#endif

namespace nnlite {

// ----------------------------------------------------------------------------- micro-kernels
// Every micro-kernel computes the full MR x NR tile  acc = A (MR x kc) @ Bp (kc x NR), Bp a
// packed, 64-byte aligned B panel (kc rows of NR), then writes the top-left mr x nr corner of it
// into C (row stride ldc, unit column stride): C = acc, or C += acc when `accumulate`.
// A comes either packed (PACKED=true: A[k*MR + i]) or straight from the caller's matrix with
// its strides (PACKED=false: A[i*rs_a + k*cs_a]; rows >= mr alias row 0 so nothing past the
// matrix is read, and their results are dropped).
template <typename T>
using MicroKernel = void (*)(int64_t kc, const T* A, int64_t rs_a, int64_t cs_a, const T* Bp,
                            int64_t ldb, T* C, int64_t ldc, int mr, int nr, bool accumulate);

// Row pointers into A and the per-k step, shared by all kernels.
template <typename T, int MR, bool PACKED>
static inline int64_t a_rows(const T* A, int64_t rs_a, int64_t cs_a, int mr, const T** ar) {
    for (int i = 0; i < MR; i++) ar[i] = PACKED ? A + i : A + (i < mr ? i : 0) * rs_a;
    return PACKED ? MR : cs_a;
}

// Store an MR x NR tile kept in a local buffer into the mr x nr corner of C.
template <typename T, int MR, int NR>
static inline void store_edge(const T* tile, T* C, int64_t ldc, int mr, int nr, bool accumulate) {
    for (int i = 0; i < mr; i++) {
        T* crow = C + i * ldc;
        const T* trow = tile + i * NR;
        if (accumulate)
            for (int j = 0; j < nr; j++) crow[j] += trow[j];
        else
            for (int j = 0; j < nr; j++) crow[j] = trow[j];
    }
}

// scalar: the compiler may auto-vectorise the j loop with the baseline ISA (SSE2, NEON).
template <typename T, int MR, int NR, bool PACKED>
static void ukr_scalar(int64_t kc, const T* A, int64_t rs_a, int64_t cs_a, const T* Bp,
                       int64_t ldb, T* C, int64_t ldc, int mr, int nr, bool accumulate) {
    const T* ar[MR];
    const int64_t step = a_rows<T, MR, PACKED>(A, rs_a, cs_a, mr, ar);
    T acc[MR * NR] = {};
    for (int64_t k = 0, off = 0; k < kc; k++, off += step) {
        const T* b = Bp + k * ldb;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i * NR + j] += ar[i][off] * b[j];
    }
    store_edge<T, MR, NR>(acc, C, ldc, mr, nr, accumulate);
}

#if NNLITE_GEMM_SIMD

// One traits struct per (ISA, type) so a single kernel template serves float and double.
template <typename T> struct V512;
template <> struct V512<float> {
    using V = __m512;
    static constexpr int W = 16;
    NNLITE_TARGET_AVX512 static inline V zero() { return _mm512_setzero_ps(); }
    NNLITE_TARGET_AVX512 static inline V load(const float* p) { return _mm512_load_ps(p); }
    NNLITE_TARGET_AVX512 static inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
    NNLITE_TARGET_AVX512 static inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
    NNLITE_TARGET_AVX512 static inline V bcast(const float* p) { return _mm512_set1_ps(*p); }
    NNLITE_TARGET_AVX512 static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    NNLITE_TARGET_AVX512 static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
};
template <> struct V512<double> {
    using V = __m512d;
    static constexpr int W = 8;
    NNLITE_TARGET_AVX512 static inline V zero() { return _mm512_setzero_pd(); }
    NNLITE_TARGET_AVX512 static inline V load(const double* p) { return _mm512_load_pd(p); }
    NNLITE_TARGET_AVX512 static inline V loadu(const double* p) { return _mm512_loadu_pd(p); }
    NNLITE_TARGET_AVX512 static inline void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
    NNLITE_TARGET_AVX512 static inline V bcast(const double* p) { return _mm512_set1_pd(*p); }
    NNLITE_TARGET_AVX512 static inline V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    NNLITE_TARGET_AVX512 static inline V add(V a, V b) { return _mm512_add_pd(a, b); }
};
template <typename T> struct V256;
template <> struct V256<float> {
    using V = __m256;
    static constexpr int W = 8;
    NNLITE_TARGET_AVX2 static inline V zero() { return _mm256_setzero_ps(); }
    NNLITE_TARGET_AVX2 static inline V load(const float* p) { return _mm256_load_ps(p); }
    NNLITE_TARGET_AVX2 static inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
    NNLITE_TARGET_AVX2 static inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
    NNLITE_TARGET_AVX2 static inline V bcast(const float* p) { return _mm256_broadcast_ss(p); }
    NNLITE_TARGET_AVX2 static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    NNLITE_TARGET_AVX2 static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
};
template <> struct V256<double> {
    using V = __m256d;
    static constexpr int W = 4;
    NNLITE_TARGET_AVX2 static inline V zero() { return _mm256_setzero_pd(); }
    NNLITE_TARGET_AVX2 static inline V load(const double* p) { return _mm256_load_pd(p); }
    NNLITE_TARGET_AVX2 static inline V loadu(const double* p) { return _mm256_loadu_pd(p); }
    NNLITE_TARGET_AVX2 static inline void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
    NNLITE_TARGET_AVX2 static inline V bcast(const double* p) { return _mm256_broadcast_sd(p); }
    NNLITE_TARGET_AVX2 static inline V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    NNLITE_TARGET_AVX2 static inline V add(V a, V b) { return _mm256_add_pd(a, b); }
};

// The two SIMD kernels are the same code; they are spelled twice only because a function's
// target attribute cannot depend on a template parameter. Full unrolling over MR and NV keeps
// every accumulator in a register.
#define NNLITE_UKR_BODY(VT)                                                                  \
    using V = typename VT::V;                                                                \
    constexpr int W = VT::W;                                                                 \
    V c[MR][NV];                                                                             \
    const T* ar[MR];                                                                         \
    const int64_t step = a_rows<T, MR, PACKED>(A, rs_a, cs_a, mr, ar);                       \
    int64_t off = 0;                                                                         \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
        _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) c[i][j] = VT::zero();           \
    for (int64_t k = 0; k < kc; k++) {                                                       \
        V b[NV];                                                                             \
        _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) b[j] = VT::loadu(Bp + j * W);   \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                              \
            V a = VT::bcast(ar[i] + off);                                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) c[i][j] =                   \
                VT::fma(a, b[j], c[i][j]);                                                   \
        }                                                                                    \
        off += step;                                                                         \
        Bp += ldb;                                                                           \
    }                                                                                        \
    if (mr == MR && nr == NV * W) {                                                          \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                \
            _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) {                           \
            T* p = C + i * ldc + j * W;                                                      \
            VT::storeu(p, accumulate ? VT::add(c[i][j], VT::loadu(p)) : c[i][j]);            \
        }                                                                                    \
    } else {                                                                                 \
        alignas(64) T tile[MR * NV * W];                                                     \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                \
            _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++)                             \
                VT::storeu(tile + i * NV * W + j * W, c[i][j]);                              \
        store_edge<T, MR, NV * W>(tile, C, ldc, mr, nr, accumulate);                         \
    }

template <typename T, int MR, int NV, bool PACKED>
NNLITE_TARGET_AVX512 static void ukr_avx512(int64_t kc, const T* A, int64_t rs_a, int64_t cs_a,
                                            const T* Bp, int64_t ldb, T* C, int64_t ldc,
                                            int mr, int nr,
                                            bool accumulate) {
    NNLITE_UKR_BODY(V512<T>)
}

template <typename T, int MR, int NV, bool PACKED>
NNLITE_TARGET_AVX2 static void ukr_avx2(int64_t kc, const T* A, int64_t rs_a, int64_t cs_a,
                                        const T* Bp, int64_t ldb, T* C, int64_t ldc, int mr,
                                        int nr,
                                        bool accumulate) {
    NNLITE_UKR_BODY(V256<T>)
}
#endif  // NNLITE_GEMM_SIMD

// ----------------------------------------------------------------------------- configuration
// Block sizes per path and type: MC x KC of packed A (480 KiB f32) fits in half of a 1 MiB L2,
// KC x NR of B (the panel each micro-kernel call streams, 64 KiB) in L2 beside it; KC x NC of
// B in L3. KC = 512 beat 256 and 384 at 1024^3 (fewer passes over C). Tuned on Zen 4 (1 MiB L2)
// with benchmarks/bench_gemm.py; blocks are balanced (balanced_block) so no pass is a sliver.
template <typename T>
struct GemmConfig {
    int MR, NR, KC, MC, NC;
    MicroKernel<T> ukr_packed, ukr_strided;
    bool simd_pack;  // AVX2 transposes in the packing routines
};

template <typename T>
static GemmConfig<T> config_for(Simd s, int64_t N) {
    constexpr bool f32 = sizeof(T) == 4;
    constexpr int W512 = f32 ? 16 : 8, W256 = f32 ? 8 : 4;
    (void)W512, (void)W256;
#if NNLITE_GEMM_SIMD
    // Narrow outputs (N up to one vector, e.g. the 10 logits of a classifier) get a one-vector
    // wide tile, not 2/3 padding.
    if (s == Simd::AVX512) {
        if (N <= W512)
            return GemmConfig<T>{8, W512, 512, 8 * 30, 4096, ukr_avx512<T, 8, 1, true>,
                                 ukr_avx512<T, 8, 1, false>, true};
        return GemmConfig<T>{8, 2 * W512, 512, 8 * 30, 4096, ukr_avx512<T, 8, 2, true>,
                             ukr_avx512<T, 8, 2, false>, true};
    }
    if (s == Simd::AVX2) {
        if (N <= W256)
            return GemmConfig<T>{8, W256, 256, 8 * 24, 4096, ukr_avx2<T, 8, 1, true>,
                                 ukr_avx2<T, 8, 1, false>, true};
        return GemmConfig<T>{6, 2 * W256, 256, 6 * 24, 4096, ukr_avx2<T, 6, 2, true>,
                             ukr_avx2<T, 6, 2, false>, true};
    }
#endif
    (void)s;
    (void)N;
    return GemmConfig<T>{4, 8, 256, 4 * 32, 2048, ukr_scalar<T, 4, 8, true>,
                         ukr_scalar<T, 4, 8, false>, false};
}

// ----------------------------------------------------------------------------- packing
// Both packed layouts are "NW vectors interleaved by k": dst[k*NW + j] = src(j, k), j < n,
// zeros for j in [n, NW). When src(j, k) is contiguous in j (a column of op(A) in gemm_tn, a row
// of op(B) in gemm) this is a copy; when it is contiguous in k (a row of A in gemm, a row of B
// in gemm_nt) it is a transpose, done 8x8 (f32) / 4x4 (f64) in AVX2 registers because a
// scalar transpose costs a load and a store per element and showed up in gemm_nt profiles.

// Fills columns [j_begin, NW) of the panel: src columns [j_begin, n), zeros after.
template <typename T>
static void pack_transposed_scalar(int j_begin, int n, int NW, int64_t kc, const T* src,
                                   int64_t vs, int64_t ks, T* dst) {
    for (int j = j_begin; j < n; j++) {
        const T* s = src + j * vs;
        for (int64_t k = 0; k < kc; k++) dst[k * NW + j] = s[k * ks];
    }
    for (int j = std::max(n, j_begin); j < NW; j++)
        for (int64_t k = 0; k < kc; k++) dst[k * NW + j] = T(0);
}

#if NNLITE_GEMM_SIMD
// dst[k*NW + j] = src[j*vs + k] for an 8 x 8 block: rows j of src become columns.
NNLITE_TARGET_AVX2 static inline void transpose_block(const float* src, int64_t vs, float* dst,
                                                      int64_t NW) {
    __m256 r[8], t[8];
    for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(src + j * vs);
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
    }
    r[0] = _mm256_shuffle_ps(t[0], t[2], 0x44);
    r[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
    r[2] = _mm256_shuffle_ps(t[1], t[3], 0x44);
    r[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
    r[4] = _mm256_shuffle_ps(t[4], t[6], 0x44);
    r[5] = _mm256_shuffle_ps(t[4], t[6], 0xEE);
    r[6] = _mm256_shuffle_ps(t[5], t[7], 0x44);
    r[7] = _mm256_shuffle_ps(t[5], t[7], 0xEE);
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + k * NW, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
        _mm256_storeu_ps(dst + (k + 4) * NW, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
    }
}

NNLITE_TARGET_AVX2 static inline void transpose_block(const double* src, int64_t vs, double* dst,
                                                      int64_t NW) {
    __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + vs);
    __m256d r2 = _mm256_loadu_pd(src + 2 * vs), r3 = _mm256_loadu_pd(src + 3 * vs);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + NW, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * NW, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * NW, _mm256_permute2f128_pd(t1, t3, 0x31));
}

template <typename T>
NNLITE_TARGET_AVX2 static void pack_transposed_avx2(int n, int NW, int64_t kc, const T* src,
                                                    int64_t vs, T* dst) {
    constexpr int B = 32 / sizeof(T);
    const int64_t kb = kc / B * B;
    const int jb = n / B * B;
    for (int j0 = 0; j0 < jb; j0 += B) {
        for (int64_t k0 = 0; k0 < kb; k0 += B)
            transpose_block(src + j0 * vs + k0, vs, dst + k0 * NW + j0, NW);
        for (int j = j0; j < j0 + B; j++)
            for (int64_t k = kb; k < kc; k++) dst[k * NW + j] = src[j * vs + k];
    }
    pack_transposed_scalar<T>(jb, n, NW, kc, src, vs, 1, dst);
}
#endif

// dst[k*NW + j] = src[j*vs + k*ks]
template <typename T>
static void pack_panel(int n, int NW, int64_t kc, const T* src, int64_t vs, int64_t ks, T* dst,
                       bool simd) {
    if (vs == 1) {  // contiguous in j: row copies
        for (int64_t k = 0; k < kc; k++) {
            const T* s = src + k * ks;
            T* d = dst + k * NW;
            std::memcpy(d, s, sizeof(T) * n);
            for (int j = n; j < NW; j++) d[j] = T(0);
        }
        return;
    }
#if NNLITE_GEMM_SIMD
    if (ks == 1 && simd) return pack_transposed_avx2<T>(n, NW, kc, src, vs, dst);
#endif
    (void)simd;
    pack_transposed_scalar<T>(0, n, NW, kc, src, vs, ks, dst);
}

// ----------------------------------------------------------------------------- buffers
// Packing buffers are cached per calling thread and only grow: a training step calls GEMM
// thousands of times with the same shapes, and fresh large allocations would pay page faults
// on every call. Worker threads only use the caller's buffers, so concurrent callers (several
// Python threads without the GIL) never share one.
struct AlignedBuffer {
    void* p = nullptr;
    size_t bytes = 0;
    ~AlignedBuffer() { release(); }
    void release() {
#ifdef _MSC_VER
        _aligned_free(p);
#else
        std::free(p);
#endif
        p = nullptr;
    }
    void* get(size_t need) {
        if (need > bytes) {
            release();
            bytes = (need + 4095) & ~size_t(4095);
#ifdef _MSC_VER
            p = _aligned_malloc(bytes, 64);
#else
            p = std::aligned_alloc(64, bytes);
#endif
            if (!p) {
                bytes = 0;
                throw std::bad_alloc();
            }
        }
        return p;
    }
};

static thread_local AlignedBuffer tl_pack_a, tl_pack_b;

// Split `total` into ceil(total/max_blk) near-equal blocks rounded up to a multiple of `unit`,
// so the last block is never a sliver (a 1025-deep K would otherwise end in a 1-deep pass).
static int64_t balanced_block(int64_t total, int64_t max_blk, int64_t unit) {
    if (total <= max_blk) return total;
    int64_t nblk = (total + max_blk - 1) / max_blk;
    int64_t blk = (total + nblk - 1) / nblk;
    return (blk + unit - 1) / unit * unit;
}

// ----------------------------------------------------------------------------- driver
// The blocked loops. Called either inside an OpenMP parallel region (the `omp for`s then share
// the work and their implicit barriers order pack -> compute -> repack) or, for small
// problems, directly, where the orphaned `omp for`s simply run serially.
template <typename T>
static void gemm_blocked(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K, const T* a,
                         int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T* c,
                         int64_t ldc, bool accumulate, int64_t KC, int64_t MC, int64_t NC,
                         bool pack_A, bool direct_B, T* Ap, T* Bp) {
    const int MR = cfg.MR, NR = cfg.NR;
    const bool simd = cfg.simd_pack;
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        const int64_t npb = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            const bool acc = accumulate || pc > 0;
#pragma omp for schedule(static)
            for (int64_t jp = 0; jp < npb; jp++) {
                const int64_t j0 = jc + jp * NR;
                if (direct_B && j0 + NR <= N) continue;  // read in place by the kernel
                pack_panel<T>((int)std::min<int64_t>(NR, N - j0), NR, kc,
                              b + pc * rs_b + j0 * cs_b, cs_b, rs_b, Bp + jp * NR * kc, simd);
            }
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = std::min(MC, M - ic);
                const int64_t npa = (mc + MR - 1) / MR;
                if (pack_A) {
#pragma omp for schedule(static)
                    for (int64_t ip = 0; ip < npa; ip++) {
                        const int64_t i0 = ic + ip * MR;
                        pack_panel<T>((int)std::min<int64_t>(MR, M - i0), MR, kc,
                                      a + i0 * rs_a + pc * cs_a, rs_a, cs_a, Ap + ip * MR * kc,
                                      simd);
                    }
                }
                // Tiles in B-panel-major order: a thread's contiguous share of tiles touches
                // few B panels, which then stay in its L1/L2.
#pragma omp for schedule(static)
                for (int64_t t = 0; t < npa * npb; t++) {
                    const int64_t jp = t / npa, ip = t % npa;
                    const int64_t i0 = ic + ip * MR, j0 = jc + jp * NR;
                    const int mr = (int)std::min<int64_t>(MR, M - i0);
                    const int nr = (int)std::min<int64_t>(NR, N - j0);
                    T* ct = c + i0 * ldc + j0;
                    const bool in_place = direct_B && nr == NR;
                    const T* bt = in_place ? b + pc * rs_b + j0 : Bp + jp * NR * kc;
                    const int64_t ldb = in_place ? rs_b : NR;
                    if (pack_A)
                        cfg.ukr_packed(kc, Ap + ip * MR * kc, 1, MR, bt, ldb, ct, ldc, mr, nr,
                                       acc);
                    else
                        cfg.ukr_strided(kc, a + i0 * rs_a + pc * cs_a, rs_a, cs_a, bt, ldb, ct,
                                        ldc, mr, nr, acc);
                }
            }
        }
    }
}

// Below this many multiply-adds one thread wins: an OpenMP fork/join with barriers costs a
// few microseconds, as long as ~0.5M FMAs take on one core.
static constexpr int64_t kParallelMinFma = 1 << 19;

// Skip packing A when it is small enough to stay in L2 as it is (an MLP's batch of 64 rows) or
// when few B panels would reuse each packed A panel.
template <typename T>
static bool should_pack_a(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K) {
    if (N <= 2 * cfg.NR) return false;
    return (double)M * (double)K * sizeof(T) > 384.0 * 1024;
}

// The small-problem ("sup") driver, A read in place: each thread owns a fixed rectangle of
// tiles (a range of B panels x a range of A panels), packs the B panels it needs into its own
// buffer and never waits for another thread. No barriers matters twice over: a barrier costs
// about a microsecond when all is well, and on a busy machine, where a spinning team-mate may
// be descheduled, a single one can cost a whole scheduler time slice (milliseconds; measured
// 100x slowdowns of a 25 us GEMM with the barrier-based driver while another job ran).
template <typename T>
static void gemm_sup_thread(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K,
                            const T* a, int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b,
                            int64_t cs_b, T* c, int64_t ldc, bool accumulate, int64_t KC,
                            int64_t chunk, bool direct_B, T* Bp, int tid, int tn, int tm) {
    const int MR = cfg.MR, NR = cfg.NR;
    const int64_t npa = (M + MR - 1) / MR, npb = (N + NR - 1) / NR;
    const int bi = tid / tm, ai = tid % tm;
    const int64_t jp_begin = bi * npb / tn, jp_end = (bi + 1) * npb / tn;
    const int64_t ip_begin = ai * npa / tm, ip_end = (ai + 1) * npa / tm;
    for (int64_t jc = jp_begin; jc < jp_end; jc += chunk) {
        const int64_t jc_end = std::min(jp_end, jc + chunk);
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            const bool acc = accumulate || pc > 0;
            for (int64_t jp = jc; jp < jc_end; jp++) {
                const int64_t j0 = jp * NR;
                if (direct_B && j0 + NR <= N) continue;  // read in place by the kernel
                pack_panel<T>((int)std::min<int64_t>(NR, N - j0), NR, kc,
                              b + pc * rs_b + j0 * cs_b, cs_b, rs_b, Bp + (jp - jc) * NR * kc,
                              cfg.simd_pack);
            }
            for (int64_t jp = jc; jp < jc_end; jp++) {
                const int64_t j0 = jp * NR;
                const int nr = (int)std::min<int64_t>(NR, N - j0);
                const bool in_place = direct_B && nr == NR;
                const T* bt = in_place ? b + pc * rs_b + j0 : Bp + (jp - jc) * NR * kc;
                const int64_t ldb = in_place ? rs_b : NR;
                for (int64_t ip = ip_begin; ip < ip_end; ip++) {
                    const int64_t i0 = ip * MR;
                    cfg.ukr_strided(kc, a + i0 * rs_a + pc * cs_a, rs_a, cs_a, bt, ldb,
                                    c + i0 * ldc + j0, ldc, (int)std::min<int64_t>(MR, M - i0),
                                    nr, acc);
                }
            }
        }
    }
}

template <typename T>
static void gemm_contiguous_c(int64_t M, int64_t N, int64_t K, const T* a, int64_t rs_a,
                              int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T* c,
                              int64_t ldc, bool accumulate) {
    const GemmConfig<T> cfg = config_for<T>(simd_path(), N);
    const bool pack_A = should_pack_a(cfg, M, N, K);
    // Row-contiguous B reused by at most 16 A panels (a small batch) is read in place; only a
    // ragged last panel is packed (zero padding). Measured: -8% time at (64,784)@(784,256), but
    // +10% at 1024^3, where each B panel is reused 128 times and contiguity pays.
    const bool direct_B = cs_b == 1 && M <= 16 * cfg.MR;
    const int64_t KC = balanced_block(K, cfg.KC, 8);
    const int64_t npa = (M + cfg.MR - 1) / cfg.MR, npb = (N + cfg.NR - 1) / cfg.NR;

    int nt = num_threads();
    if (M * N * K < kParallelMinFma) nt = 1;
    if (npa * npb < 2 * nt) nt = (int)std::max<int64_t>(1, npa * npb / 2);

    if (!pack_A) {
        // Thread grid tn x tm over (B panels, A panels) with the least work on the busiest
        // thread; ties go to splitting N, where no B panel is packed twice.
        int tn = 1, tm = 1;
        int64_t best = INT64_MAX;
        for (int d = 1; d <= nt; d++) {
            if (nt % d) continue;
            const int64_t w = ((npb + d - 1) / d) * ((npa + nt / d - 1) / (nt / d));
            if (w < best || (w == best && d > tn)) best = w, tn = d, tm = nt / d;
        }
        const int64_t chunk = std::min<int64_t>(cfg.NC / cfg.NR, (npb + tn - 1) / tn);
        (void)tm;  // unused without OpenMP
        const size_t per_thread = (size_t)chunk * cfg.NR * KC;
        T* Bp = static_cast<T*>(tl_pack_b.get(sizeof(T) * per_thread * nt));
#ifdef NNLITE_OPENMP
        if (nt > 1) {
#pragma omp parallel num_threads(nt)
            {
                FtzScope ftz;  // MXCSR is per thread
                const int tid = omp_get_thread_num();
                gemm_sup_thread<T>(cfg, M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate,
                                   KC, chunk, direct_B, Bp + per_thread * tid, tid, tn, tm);
            }
            return;
        }
#endif
        gemm_sup_thread<T>(cfg, M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, KC,
                           chunk, direct_B, Bp, 0, 1, 1);
        return;
    }

    const int64_t MC = balanced_block(M, cfg.MC, cfg.MR);
    const int64_t NC = balanced_block(N, cfg.NC, cfg.NR);
    const int64_t mc_pad = (std::min(MC, M) + cfg.MR - 1) / cfg.MR * cfg.MR;
    const int64_t nc_pad = (std::min(NC, N) + cfg.NR - 1) / cfg.NR * cfg.NR;
    T* Ap = static_cast<T*>(tl_pack_a.get(sizeof(T) * mc_pad * KC));
    T* Bp = static_cast<T*>(tl_pack_b.get(sizeof(T) * nc_pad * KC));
#ifdef NNLITE_OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            FtzScope ftz;  // MXCSR is per thread
            gemm_blocked<T>(cfg, M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, KC,
                            MC, NC, true, direct_B, Ap, Bp);
        }
        return;
    }
#endif
    gemm_blocked<T>(cfg, M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, KC, MC, NC,
                    true, direct_B, Ap, Bp);
}

template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K, const T* a, int64_t rs_a, int64_t cs_a,
                  const T* b, int64_t rs_b, int64_t cs_b, T* c, int64_t rs_c, int64_t cs_c,
                  bool accumulate) {
    FtzScope ftz;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C = 0, or C unchanged when accumulating
        if (!accumulate)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) c[i * rs_c + j * cs_c] = T(0);
        return;
    }
    if (cs_c == 1 || N == 1) {
        gemm_contiguous_c<T>(M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, c, rs_c,
                             accumulate);
        return;
    }
    // Rare: an `out` whose rows are not unit-stride. Compute into a dense temporary, then
    // scatter; the micro-kernels keep their simple unit-stride stores.
    std::unique_ptr<T[]> tmp(new T[M * N]);
    gemm_contiguous_c<T>(M, N, K, a, rs_a, cs_a, b, rs_b, cs_b, tmp.get(), N, false);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            T& dst = c[i * rs_c + j * cs_c];
            dst = accumulate ? dst + tmp[i * N + j] : tmp[i * N + j];
        }
}

template void gemm_strided<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                                  const float*, int64_t, int64_t, float*, int64_t, int64_t, bool);
template void gemm_strided<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                                   const double*, int64_t, int64_t, double*, int64_t, int64_t,
                                   bool);

}  // namespace nnlite
