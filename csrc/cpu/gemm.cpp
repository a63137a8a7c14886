/*
GEMM: the matrix multiply behind every Linear layer, forward and backward.

    C (M,N) = A (M,K) @ B (K,N)            gemm      (forward: Y = X @ W)
    C (M,N) = A (M,K) @ B(N,K).T           gemm_nt   (input grad: dX = dY @ W.T)
    C (M,N) = A(K,M).T @ B (K,N)           gemm_tn   (weight grad: dW = X.T @ dY)
    optionally C += ... (accumulate) for gradient accumulation.

Ladder: dev/gemm/ walks from the definition to this file (it is the last steps: packed panels,
micro-kernels, OpenMP, the small-M path).

All three are one routine, gemm_strided(). Every operand is a view (Mat, gemm.h: a pointer and
two element strides), so a transpose is only a swap of the strides the packing routines and the
micro-kernel read with, and no operand is ever copied before packing, whatever its layout
(transposed view, slice with a step, Fortran order, negative strides).

The algorithm is the GotoBLAS/BLIS loop nest (gemm_cell):

    for jc in N step NC:                       B block (KC x NC) lives in L3
      for pc in K step KC:
        pack B[pc:pc+KC, jc:jc+NC] into NR-wide panels
        for ic in M step MC:                   A block (MC x KC) lives in L2
          pack A[ic:ic+MC, pc:pc+KC] into MR-tall panels   (big problems only, see plan_gemm)
          for every (NR panel, MR panel) tile:
            micro-kernel: C tile (MR x NR) (+)= A panel (MR x KC) @ B panel (KC x NR)

The pieces, in the order of this file:
    GemmTiles    the table of tile shapes (MR x NR) and cache blocks (KC, MC, NC) per ISA
    gemm.inc     the micro-kernel ukr<T, MR, NV>, written once over simd::Vec<T, Isa> and
                 compiled per ISA (common/foreach_isa.h); gemm_kernel() picks its tile
    pack_panel   packing a panel of A or B (a copy, or a transpose, in AVX2 registers if it can)
    plan_gemm    every tuning rule, with its reason: pack A or not, read B in place or not,
                 the block sizes, the thread count and the thread grid
    gemm_cell    the loop nest above, run by each thread on its cell of the thread grid
    gemm_run     plan, allocate, start the threads
    gemm_strided the entry point: picks the kernel (gemm_kernel, or a short tile for a narrow
                 product computed transposed); empty sums; an `out` without unit column stride

The epilogue (gemm.h: Epilogue): a Linear layer's bias and a transformer's residual, added to
each C tile right after its last K block, while it is in L1 (gemm.inc: epilogue_tile), instead
of in passes of their own over C; the transposed narrow columns and an empty sum get them from
a plain loop (epilogue_columns). In the baby GPT's step that removed 25 passes over outputs of
768 x 65-512 floats: ops.bias_act after each of the 17 products with a bias, and the two
residual adds of each of the 4 blocks.

Packing B makes the micro-kernel's vector loads unit-stride, and zero-pads the last panel so
the K loop never branches on edges; edge tiles only differ in the final store. A is only
broadcast one scalar at a time, which costs the same from the caller's matrix (with its
strides) as from a packed panel, so A is packed only for big problems (BLIS's "sup" idea for
the rest, see plan_gemm). Packing is a copy when the source is contiguous along the panel and
an 8x8 (f32) / 4x4 (f64) AVX2 register transpose when it is contiguous along K (row-major A;
B in gemm_nt).

Versions (picked per call by nnlite::simd_path(), forced with NNLITE_SIMD or ops.force_simd):
    scalar   plain C++, f32 4 x 8, f64 8 x 4; portable (ARM, MSVC, old x86), obviously correct;
             the compiler vectorises its j loop with SSE2 / NEON
    avx2     AVX2/FMA,  f32 6 x 16, f64 6 x 8   (12 ymm accumulators); N <= 8/4: 8 x 1 vector
    avx512   AVX-512F,  f32 8 x 32, f64 8 x 16  (16 zmm accumulators); N <= 16/8: 8 x 1 vector
All three are the same ukr template; only the vector type and the tile shape differ.

The AVX-512 micro-kernel's register layout (f32 shown; f64 is the same with 8 lanes):

               B panel row k: b0 = B[k, 0:16]  b1 = B[k, 16:32]        (2 zmm loads)
    A[i, k] -> broadcast a    c[i][0] += a*b0  c[i][1] += a*b1         i = 0..7
                              -> 16 zmm accumulators + 2 for B + 1 broadcast.
Why 8 x 32 and not the taller 14 x 32 that 32 zmm registers allow: on Zen 4 a zmm FMA issues
at 1/cycle with 4-cycle latency, so 16 independent accumulators already saturate it, and the
8 broadcasts + 2 loads per 16 FMAs fit the 2 loads/cycle. What the taller tile would save in
loads it loses in padding: 64 rows (the MLP batch) are 8 x 8 exactly but 5 x 14 = 70 rows.
Measured (bench_gemm.py): 8 x 32 ties 14 x 32 and 12 x 32 on the squares, beats both by
15-35% on the MLP shapes.
Narrow and ragged outputs, where a 32-wide tile would be mostly padding:
    N <= W (the 10 logits of a classifier)   the one-vector tile, 8 x 16
    a last panel of <= W columns (N = 65)    the wide tile's one-vector twin on that panel
    a last panel of <= W/4 columns, A contiguous along K (Y = X @ W)
                                             ukr_dot: dot products along K, A read in place
    N <= 12 (f32, AVX-512), or a last panel of <= W/4 columns, A contiguous down its columns
    (dW = X.T @ dY)                          computed transposed, C.T = B.T @ A.T, by a short
                                             tile (N rounded up to even rows x 2 vectors), X's
                                             rows read in place as B panels
Measured on the Zen 4, 1 thread, median us (numpy's in brackets): the GPT's lm_head 128->65
forward 172-180 -> 124-134 (139-150), weight gradient 172-180 -> 131-146 (146-155); the MNIST
MLP's 128->10 weight gradient 6.5 -> 4.8-4.9 (4.8-5.0).

Threads: OpenMP, one parallel region per call; plan_gemm says how many threads and how they
split the tiles. Each thread owns a cell of a thread grid over the tiles (a range of B panels x
a range of A panels) and packs its own blocks of A and B, so the only synchronisation is the
final join: no barriers. On a busy machine a barrier can cost a whole scheduler time slice when
a team-mate is descheduled, and even on a quiet one it measured slower than packing twice:
with A packed by one team sharing the blocks (three barriers per block; still there as
_set_tuning(team=1) for comparison), 2 threads got 40-53 GFLOP per CPU-second at 1024-2048^3
against 65-69 for the grid (busy machine, Zen 2). Packing A in every cell costs M x K copies
per cell, next to M x K x N/cells multiply-adds. Results do not depend on the thread count:
every C element is summed in the same order.

Prefetching: the micro-kernel prefetches its C tile when it starts (prefetch_c_mode): +9-15% at
512-2048^3 on one Zen 2 core, where C, far bigger than the caches, is read back after every K
block. Operands past 2 MiB (the course GPT's 8192 tokens) also get hints, a slice after each
tile, that bring the block a cell packs next into L2 (NextBlockPrefetch, plan_gemm's rule):
with two threads the packing copies were bound by the memory, which the micro-kernels leave
idle. The course GPT's step: its GEMMs 5-11% faster.

MXCSR is per thread, so the parallel region opens its own FtzScope.

Benchmark:  python benchmarks/bench_gemm.py            (GFLOP/s vs numpy/OpenBLAS, torch)
            python benchmarks/bench_gemm.py --check    (also verifies the results)
Test:       python -m pytest tests/test_ops_gemm.py
*/
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "common/cpu.h"
#include "common/simd.h"
#include "common/transpose.h"

namespace nnlite {

// ----------------------------------------------------------------------------- tile table
// A tile is MR rows x NV vectors (NR = NV * W columns, W the lanes of the ISA's vector of T:
// on AVX2 and AVX-512 f64 keeps MR and NV, so its NR is half of f32's). The blocks bound what
// plan_gemm may use: MC x KC of packed A (480 KiB f32 on AVX-512) fits in half of a 1 MiB L2,
// KC x NR of B (the panel each micro-kernel call streams, 64 KiB) in L2 beside it, KC x NC of B
// in L3. KC = 512 beat 256 and 384 at 1024^3 (fewer passes over C). Tuned on Zen 4 (1 MiB L2)
// with benchmarks/bench_gemm.py. The 8 x 1-vector narrow tile serves N <= W (see gemm_kernel).
struct TileShape {
    int MR, NV;      // tile rows; tile columns in vectors
    int KC, MC, NC;  // largest blocks: depth; rows of packed A; columns of a B block
};

template <typename Isa, typename T>
struct GemmTiles;
// Scalar: W = 1, and a tile row is 32 bytes of C (8 floats, 4 doubles) because the compiler
// vectorises the micro-kernel's j loop with the baseline ISA, into two SSE2 / NEON registers
// per row. Measured on a 64x784x256 product with SSE2 (16 registers): f32 4 x 8 runs at ~27
// GFLOP/s; f64 8 x 4 ties 6 x 4 per row (its 16 accumulators spill 4, the 12 of 6 x 4 none)
// without 6 x 4's padding of 64 rows, and beats 4 x 8 (8 x 2 registers wide, spilling) 1.7x.
//                                                            MR  NV   KC       MC    NC
// short_mr: the tallest "short" tile (rows x 2 vectors) for a narrow product computed
// transposed (see gemm_strided); 0: none. Its accumulators must fit the register file beside
// two B vectors and a broadcast (12 x 2 = 24 of 32 zmm; 6 x 2 = 12 of 16 ymm), and it is
// used only where it pads less than the one-vector tile (rows < W).
template <typename T>
struct GemmTiles<simd::Scalar, T> {
    static constexpr bool f32 = sizeof(T) == 4;
    static constexpr TileShape wide{f32 ? 4 : 8, f32 ? 8 : 4, 256, 128, 2048}, narrow = wide;
    static constexpr bool avx2_transpose = false;
    static constexpr int short_mr = 0;
};
template <typename T>
struct GemmTiles<simd::Avx2, T> {
    static constexpr TileShape wide{6, 2, 256, 6 * 24, 4096}, narrow{8, 1, 256, 8 * 24, 4096};
    static constexpr bool avx2_transpose = true;
    static constexpr int short_mr = sizeof(T) == 4 ? 6 : 2;
};
template <typename T>
struct GemmTiles<simd::Avx512, T> {
    static constexpr TileShape wide{8, 2, 512, 8 * 30, 4096}, narrow{8, 1, 512, 8 * 30, 4096};
    static constexpr bool avx2_transpose = true;
    static constexpr int short_mr = sizeof(T) == 4 ? 12 : 6;
};

// One micro-kernel (gemm.inc): C[0:mr, 0:nr] (+)= A[0:MR, 0:kc] @ B[0:kc, 0:NR].
template <typename T>
using Ukr = void (*)(int64_t kc, const Mat<const T>& a, const Mat<const T>& b, const Mat<T>& c,
                     int mr, int nr, bool accumulate);
// The epilogue on one tile the micro-kernel has just stored (gemm.inc: epilogue_tile)
template <typename T>
using EpiTile = void (*)(const Mat<T>& c, const T* bias, const Mat<const T>& r, int mr, int nr);

// What gemm_kernel() gives the driver: the tile, and the micro-kernel for A packed into panels
// (a = {panel, 1, MR}) or read in place; and for a last B panel at most tail_nr wide, the
// same MR rows by fewer vectors (N = 65 on the wide 32-column tile: the third panel holds one
// column, and a one-vector kernel does half the FMAs of the two-vector one on it).
template <typename T>
struct GemmKernel {
    TileShape tile;
    int NR;
    Ukr<T> packed, strided;
    bool avx2_transpose;  // pack_panel may use the AVX2 register transposes
    int tail_nr;
    Ukr<T> tail_packed, tail_strided;
    // A ragged last panel at most dot_nr wide, when A is contiguous along K: ukr_dot, reading
    // A in place and the panel packed column by column (0: none; W / 4 columns, where kc / W
    // FMAs and a horizontal sum per column and row still cost less than the tile's one vector)
    int dot_nr;
    Ukr<T> dot;
    EpiTile<T> epilogue;  // bias and residual on a finished tile (unit column stride)
};

static GemmOverride g_override;  // see gemm.h; all automatic unless a sweep sets it
void set_gemm_override(const GemmOverride& o) { g_override = o; }

// When the micro-kernel prefetches its C tile (gemm.inc): 0 never, 1 when it will add to C
// (every K block after the first), 2 always (the default). A tile's rows are a row stride
// apart in a C that is usually far bigger than the caches, so the loads of `C += acc` at the
// end of a K block miss and stall the core; prefetched at the start, they arrive while the K
// loop runs.
static inline int prefetch_c_mode() {
    return g_override.prefetch_c >= 0 ? g_override.prefetch_c : 2;
}

}  // namespace nnlite

// A hint to bring the cache line holding *p into L1 for writing; nothing where unsupported.
#if defined(__GNUC__) || defined(__clang__)
#define NNLITE_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#else
#define NNLITE_PREFETCH_W(p) ((void)(p))
#endif

#define NNLITE_KERNELS "cpu/gemm.inc"
#include "common/foreach_isa.h"  // scalar::, avx2::, avx512:: ukr and gemm_kernel

namespace nnlite {

// ----------------------------------------------------------------------------- packing
// A panel is "NW columns interleaved by k": dst[k*NW + j] = src(j, k) for j < n, zeros for j
// in [n, NW), k < kc. src(j, k) = src.at(j, k): for a B panel j runs along N (the view is
// B's transpose), for an A panel along M. When src is contiguous in j (a row of op(B) in gemm,
// a column of op(A) in gemm_tn) this is a copy; when it is contiguous in k (a row of A in
// gemm, a row of B in gemm_nt) it is a transpose.

// Fills columns [j_begin, NW) of the panel: src columns [j_begin, n), zeros after. The k loop
// is outside, so the panel is written in order while the n source rows are read as parallel
// streams.
template <typename T>
static void pack_transposed_scalar(const Mat<const T>& src, int j_begin, int n, int NW,
                                   int64_t kc, T* dst) {
    if (j_begin >= NW) return;
    for (int64_t k = 0; k < kc; k++, dst += NW) {
        const T* s = src.at(0, k);
        for (int j = j_begin; j < n; j++) dst[j] = s[j * src.rs];
        for (int j = std::max(n, j_begin); j < NW; j++) dst[j] = T(0);
    }
}

#if NNLITE_X86
// Row-major sources (A in gemm, B in gemm_nt) are transposed into panels 8x8 (f32) / 4x4 (f64)
// in AVX2 registers (common/transpose.h): a scalar transpose costs a load and a store per
// element and showed up in gemm_nt profiles.

// A full 6-row panel of floats (the AVX2 tile's A panel, row-major A): 8 k at a time by the
// 8 x 8 transpose with rows 6 and 7 repeating row 0. Each k's 8 lanes are stored at its 6-wide
// panel row, so lanes 6 and 7 land on the next k's row and are overwritten by its store; the
// block's last k is stored as 4 + 2 lanes, so nothing is written past the panel. In packing
// A this replaces a scalar loop at ~0.7 ns an element, 4-8% of a 1024^3 product on 2 threads.
NNLITE_TARGET_AVX2 static void pack_rows6_avx2(const Mat<const float>& src, int64_t kc,
                                               float* dst) {
    const int64_t kb = kc / 8 * 8;
    for (int64_t k0 = 0; k0 < kb; k0 += 8) {
        __m256 r[8];
        for (int j = 0; j < 6; j++) r[j] = _mm256_loadu_ps(src.at(j, k0));
        r[6] = r[7] = r[0];
        transpose8x8(r);  // r[k] = (A[0, k0+k], ..., A[5, k0+k], repeats)
        float* d = dst + k0 * 6;
        for (int k = 0; k < 7; k++) _mm256_storeu_ps(d + k * 6, r[k]);
        _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 46), _mm256_extractf128_ps(r[7], 1));
    }
    for (int64_t k = kb; k < kc; k++)
        for (int j = 0; j < 6; j++) dst[k * 6 + j] = *src.at(j, k);
}

// A panel whose source is contiguous in k (src.cs == 1): whole blocks by register transposes,
// the k tail and the j tail by scalar copies.
template <typename T>
NNLITE_TARGET_AVX2 static void pack_transposed_avx2(const Mat<const T>& src, int n, int NW,
                                                    int64_t kc, T* dst) {
    constexpr int B = 32 / sizeof(T);
    const int64_t kb = kc / B * B;
    const int jb = n / B * B;
    transpose_blocks(src.at(0, 0), src.rs, jb, kb, dst, NW);
    for (int j = 0; j < jb; j++)
        for (int64_t k = kb; k < kc; k++) dst[k * NW + j] = *src.at(j, k);
    pack_transposed_scalar<T>(src, jb, n, NW, kc, dst);
}
#endif

// A whole panel contiguous in j: kc copies of W elements, a row stride cs apart. W is a
// constant here so that each copy is a few vector moves; a memcpy call per k (32 bytes for an
// A panel of 8 floats) cost more than the copy: packing A = Xᵀ of a weight gradient
// (gemm_tn 512x8192x128, 1 thread) was 42% of the product's time.
template <int W, typename T>
static void pack_rows_fixed(const T* s, int64_t cs, int64_t kc, T* dst) {
    for (int64_t k = 0; k < kc; k++) std::memcpy(dst + k * W, s + k * cs, sizeof(T) * W);
}

// dst[k*NW + j] = src.at(j, k), zero-padded to NW columns.
template <typename T>
static void pack_panel(const Mat<const T>& src, int n, int NW, int64_t kc, T* dst, bool avx2) {
    if (src.rs == 1 && n == NW) {  // a whole panel, contiguous in j
        const T* s = src.at(0, 0);
        switch (NW) {
            case 4: return pack_rows_fixed<4>(s, src.cs, kc, dst);
            case 6: return pack_rows_fixed<6>(s, src.cs, kc, dst);
            case 8: return pack_rows_fixed<8>(s, src.cs, kc, dst);
            case 16: return pack_rows_fixed<16>(s, src.cs, kc, dst);
            case 32: return pack_rows_fixed<32>(s, src.cs, kc, dst);
            default: break;
        }
    }
    if (src.rs == 1) {  // contiguous in j: row copies
        for (int64_t k = 0; k < kc; k++) {
            T* d = dst + k * NW;
            std::memcpy(d, src.at(0, k), sizeof(T) * n);
            for (int j = n; j < NW; j++) d[j] = T(0);
        }
        return;
    }
#if NNLITE_X86
    if constexpr (sizeof(T) == 4)
        if (src.cs == 1 && avx2 && n == 6 && NW == 6) return pack_rows6_avx2(src, kc, dst);
    if (src.cs == 1 && avx2) return pack_transposed_avx2<T>(src, n, NW, kc, dst);
#endif
    (void)avx2;
    pack_transposed_scalar<T>(src, 0, n, NW, kc, dst);
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

// ----------------------------------------------------------------------------- policy
// One GEMM call: C (M x N) (+)= A (M x K) @ B (K x N), C with unit column stride.
template <typename T>
struct GemmArgs {
    int64_t M, N, K;
    Mat<const T> a, b;
    Mat<T> c;
    bool accumulate;
    Epilogue<T> epi;  // added on each tile after its last K block; only with c.cs == 1
};

// How gemm_cell runs a call; made by plan_gemm.
struct GemmPlan {
    bool pack_a;         // copy A into MR-row panels (else the micro-kernel reads A in place)
    bool b_in_place;     // full B panels are read in place; only a ragged last one is packed
    int64_t KC, MC, NC;  // blocks: depth; rows of A (multiple of MR); cols of B (of NR)
    int threads;         // OpenMP threads; 1: no parallel region
    int grid_n, grid_m;  // thread grid over (B panels, A panels): cells = grid_n * grid_m, and
                         // threads / cells of them form each cell's team (one of the two is 1)
    int prefetch;        // the next block's operands while computing: 0 no, 1 into L1, 2 L2
};

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Split `total` into ceil(total/max_blk) near-equal blocks rounded up to a multiple of `unit`,
// so the last block is never a sliver (a 1025-deep K would otherwise end in a 1-deep pass).
static int64_t balanced_block(int64_t total, int64_t max_blk, int64_t unit) {
    if (total <= max_blk) return ceil_div(total, unit) * unit;
    const int64_t blk = ceil_div(total, ceil_div(total, max_blk));
    return ceil_div(blk, unit) * unit;
}

// Below this many multiply-adds one thread wins: an OpenMP fork/join with barriers costs a
// few microseconds, as long as ~0.5M FMAs take on one core.
static constexpr int64_t kParallelMinFma = 1 << 19;

// ----------------------------------------------------------------------------- phase timers
// For tune_gemm.py --phases: where a call's time goes. Off, each timer is one branch per block.
enum Phase { kPackB, kPackA, kCompute, kWait, kPhases };
static std::atomic<int64_t> g_phase_ns[kPhases];
static bool phases_on() { return g_override.phases == 1; }

// Adds the time from its construction to its end of scope to one phase's counter.
struct PhaseTimer {
    int phase;
    int64_t t0;
    explicit PhaseTimer(Phase p) : phase(phases_on() ? p : -1), t0(phase >= 0 ? now_ns() : 0) {}
    ~PhaseTimer() {
        if (phase >= 0) g_phase_ns[phase] += now_ns() - t0;
    }
};

GemmPhases gemm_phase_seconds() {
    double s[kPhases];
    for (int i = 0; i < kPhases; i++) s[i] = 1e-9 * double(g_phase_ns[i].exchange(0));
    return {s[kPackB], s[kPackA], s[kCompute], s[kWait]};
}

// Every tuning rule of the GEMM, each with its reason.
template <typename T>
static GemmPlan plan_gemm(const GemmArgs<T>& g, const GemmKernel<T>& kr, int max_threads) {
    const TileShape& t = kr.tile;
    const int64_t M = g.M, N = g.N, K = g.K, MR = t.MR, NR = kr.NR;
    const int64_t npa = ceil_div(M, MR), npb = ceil_div(N, NR);
    GemmPlan p{};

    // Pack A only when it is too big to stay in L2 as it is (> 384 KiB) and more than two B
    // panels reuse each packed A panel. An MLP's batch of 64 rows never is: skipping that pass
    // (BLIS's "sup" idea) was worth ~20% on the MNIST shapes and nothing was lost on the big
    // ones, since a broadcast from the caller's matrix costs the same as from a panel.
    p.pack_a = N > 2 * NR && double(M) * double(K) * sizeof(T) > 384.0 * 1024;

    // Row-contiguous B reused by at most 16 A panels (a small batch) is read in place: each B
    // panel serves too few tiles to repay the copy. Only a ragged last panel is packed (zero
    // padding). Measured: -8% time at (64,784)@(784,256), but +10% at 1024^3, where each B
    // panel is reused 128 times and contiguity pays.
    // But not a B past 2 MiB (a weight gradient over many tokens, K = 8192 in the course's
    // GPT): its rows, a whole row of B apart, stream from L3 and share a few L1 sets; packed,
    // each block is one run in L2. gemm_tn 128x8192x384 / 128x8192x512, 1 thread: 73-80 ->
    // 87-93 GFLOP/s (three runs each); 2 threads: the same within the noise.
    p.b_in_place = g.b.cs == 1 && M <= 16 * MR &&
                   double(K) * double(N) * sizeof(T) <= 2.0 * 1024 * 1024;
    int64_t kc_max = t.KC;

    // Intel's AVX-512 cores (measured on a Xeon with AVX-512 FP16: 48 KiB L1, 2 MiB L2) want
    // otherwise. A B panel read in place has rows a whole row of B apart (1.5 KiB in the GPT's
    // 768x128x384 product), which map onto a few L1 sets and evict each other before the next
    // tile reuses them; packed, the panel is one run. A read in place along K with a row
    // stride (A = X.T in gemm_tn, the weight gradients) touches a line per k for half a line
    // of use; packed, whole lines. KC 256 keeps the B panel (32 KiB) in the 48 KiB L1 beside
    // the A panel. Each rule measured alone with scratch timers; together, 1 thread,
    // GFLOP/s: gemm_tn 128x768x384 140 -> 165, 128x768x512 135 -> 164, the MLP's 128x784x256
    // 153 -> 177-186, 1024^3 165 -> 175 (python benchmarks/bench_gemm.py for the table).
    const bool intel = g_override.uarch >= 0 ? g_override.uarch == 1
                                             : (cpu_vendor() == Vendor::Intel &&
                                                simd_path() == Simd::AVX512);
    if (intel) {
        p.b_in_place = false;
        p.pack_a = p.pack_a || (g.a.cs != 1 && N > 2 * NR);
        kc_max = std::min<int64_t>(kc_max, 256);
    }
    if (g_override.pack_a >= 0) p.pack_a = g_override.pack_a && N > NR;
    if (g_override.pack_b >= 0) p.b_in_place = g.b.cs == 1 && !g_override.pack_b;

    p.KC = balanced_block(K, g_override.kc > 0 ? g_override.kc : kc_max, 8);

    // Threads: one below kParallelMinFma FMAs, and at least two tiles for each.
    int nt = max_threads;
    if (M * N * K < kParallelMinFma) nt = 1;
    if (npa * npb < 2 * nt) nt = (int)std::max<int64_t>(1, npa * npb / 2);
    p.threads = nt;

    if (p.pack_a && g_override.team == 1) {
        // One team shares the packed blocks (each packed once) and splits the tiles
        // B-panel-major, with barriers between packing and computing.
        p.grid_n = p.grid_m = 1;
        p.MC = balanced_block(M, g_override.mc > 0 ? g_override.mc : t.MC, MR);
        p.NC = balanced_block(N, g_override.nc > 0 ? g_override.nc : t.NC, NR);
        return p;
    }
    // Every problem (without the team override): no barriers, each thread owns a cell of
    // tiles (a range of B panels x a range of A panels) and packs its own blocks. No barriers
    // matters twice over: a barrier costs about a microsecond when all is well, and on a busy
    // machine, where a spinning team-mate may be descheduled, a single one can cost a whole
    // scheduler time slice (milliseconds; measured 100x slowdowns of a 25 us GEMM with the
    // barrier-based driver while another job ran). The grid has the least work on the busiest
    // thread. Ties split the longer of M and N: each thread reads all of the operand along the
    // other one, so the bigger operand is the one to share out (and the other is the one a
    // thread may pack again). In a training step the operands come cold from the last layer:
    // the GPT's MLP weight gradient (gemm_tn 512x768x128, A = X.T of 1.5 MB) took 0.99-1.07
    // ms split along N and 0.61-0.68 split along M (2 threads, timed inside the step), the
    // baby GPT's GEMMs 22.3-23.9 -> 20.8-21.6 ms a step and the MNIST MLP's step 807-832 ->
    // 641-719 us; warm, in a loop of one shape, the two splits tie (517 vs 527 us).
    p.grid_n = p.grid_m = 1;
    int64_t best = INT64_MAX;
    const bool split_m = M > N;
    for (int d = 1; d <= nt; d++) {
        if (nt % d) continue;
        const int64_t w = ceil_div(npb, d) * ceil_div(npa, nt / d);
        if (w < best || (w == best && (split_m ? d < p.grid_n : d > p.grid_n)))
            best = w, p.grid_n = d, p.grid_m = nt / d;
    }
    // The reuse that repays packing A is a cell's, not the whole product's: split along N, a
    // cell with at most two B panels packs all of A (each thread a copy) for two uses of each
    // panel. The MLP weight gradient of the GPT (gemm_tn 512x768x128: A = X.T, its MR-row
    // strips contiguous, cells of 2 panels) went from 891 to 516 us on 2 threads of a Zen 4
    // (packing A was 29% of the time), and from 1092 to 1015 us on one. Not on Intel, whose
    // rule above packs a strided A for the cache lines, and not when a sweep forces it.
    if (p.pack_a && !intel && g_override.pack_a < 0 && ceil_div(npb, p.grid_n) <= 2)
        p.pack_a = false;
    const int64_t cell_rows = ceil_div(npa, p.grid_m) * MR;
    // A in place: no L2 block to bound, one pass over the cell's rows
    p.MC = p.pack_a ? balanced_block(cell_rows, g_override.mc > 0 ? g_override.mc : t.MC, MR)
                    : cell_rows;
    int64_t nc = g_override.nc > 0 ? g_override.nc : t.NC;
    // A cell whose A is one block (a small batch; a convolution's 32-64 output channels)
    // packs each B block and reads it right away, once: sized for L3 (NC 4096), the packed
    // block (4 MiB at KC 256) has left L2 before its panels are read, and the 4096-wide rows
    // scatter into 128 panels while packing. At most 512 columns keep it in L2. Measured on
    // the Xeon, 1 thread, GFLOP/s: 64x288x1764 (a conv chunk) 148 -> 163, 64x576x6272
    // 98 -> 128, 64x288x25088 100 -> 116; squares and the GPT's shapes unchanged.
    if (g_override.nc <= 0 && p.MC >= cell_rows) nc = std::min<int64_t>(nc, 512);
    p.NC = std::max<int64_t>(1, std::min<int64_t>(nc / NR, ceil_div(npb, p.grid_n))) * NR;
    // While a cell computes one block, hints bring the operands of the block it packs next
    // into L2 (NextBlockPrefetch): with two threads packing, the copies were bound by the
    // memory, and the micro-kernels leave it idle. When that next block is B's next K block
    // (A is one block, as in a weight gradient over many tokens), KC 256 keeps it in L2
    // beside the block being read. (A rule on M, not on a cell's rows: the K blocks, and with
    // them the sums' order, must not depend on the thread count.) The course GPT's step (2 threads, in-process A/B,
    // medians of 20 alternated steps): gemm_tn 175 -> 162 ms, all GEMMs 468 -> 454 ms; its
    // 128x8192x512 weight gradient alone, caches flushed, 14-15 -> 12.3-12.9 ms of thread
    // time a call. One thread: the same within the noise. Operands that fit in L2 (the baby
    // GPT's) are left alone: there, the hints measured 0-3% slower.
    const bool streamed = double(M * K + K * N) * sizeof(T) > 2.0 * 1024 * 1024;
    p.prefetch = g_override.prefetch_b >= 0 ? g_override.prefetch_b : streamed ? 2 : 0;
    if (p.prefetch && g_override.kc <= 0 && M <= t.MC && !p.b_in_place && K > p.KC)
        p.KC = balanced_block(K, 256, 8);
    return p;
}

// ----------------------------------------------------------------------------- driver
// [lo, hi): part `i` of `n` items cut in `parts` contiguous ranges, the first n % parts of
// them one longer (how OpenMP's schedule(static) cuts a loop).
struct Range {
    int64_t lo, hi;
};
static Range share(int64_t n, int64_t i, int64_t parts) {
    if (parts == 1) return {0, n};  // no divisions for a team of one
    const int64_t q = n / parts, r = n % parts, lo = i * q + std::min(i, r);
    return {lo, lo + q + (i < r ? 1 : 0)};
}

// Every thread of a team must reach it before any goes on: packed blocks are complete before
// they are read, and read before they are packed over.
static inline void team_barrier(int team) {
#ifdef NNLITE_OPENMP
    if (team > 1) {
        PhaseTimer timer(kWait);
#pragma omp barrier
    }
#endif
    (void)team;
}

// The loop nest (see the top of the file) over the tiles of one cell of the thread grid, run
// by `member` of its `team` of threads: they split the packing and the tiles, with barriers;
// a team of one just runs it all. Ap, Bp: this cell's packing buffers (MC x KC, NC x KC).
// All B panels jp in pb of the block B[pc:pc+kc, (jc+jp)·NR ...] when B's rows are contiguous
// (b.cs == 1): row by row, each row's NR-wide pieces to their panels. Panel by panel instead,
// each panel reads kc rows a whole row of B apart: in a convolution's im2col matrix (rows of
// 7 KiB) every one is a new page the hardware prefetcher does not follow, and the packing
// stalled on each line; in row order the reads are one stream per row.
// A panel no wider than dot_nr is left out (it is packed for ukr_dot, see gemm_cell).
template <typename T>
static void pack_b_rows(const Mat<const T>& b, int64_t pc, int64_t kc, int64_t jc, Range pb,
                        int NR, int64_t N, int dot_nr, T* Bp) {
    for (int64_t k = 0; k < kc; k++) {
        const T* row = b.at(pc + k, 0);
        for (int64_t jp = pb.lo; jp < pb.hi; jp++) {
            const int64_t j0 = (jc + jp) * NR;
            const int n = (int)std::min<int64_t>(NR, N - j0);
            if (n <= dot_nr) continue;
            T* d = Bp + jp * NR * kc + k * NR;
            std::memcpy(d, row + j0, sizeof(T) * n);
            for (int j = n; j < NR; j++) d[j] = T(0);
        }
    }
}

// While a cell computes a block, hints that bring the operands of the block it packs next into
// the caches, a slice after each tile: the next K block of B and A when the cell's A is one
// block, else A's next block of rows. Their loads then overlap the micro-kernels instead of
// stalling the packing. A region is `runs` runs of `bytes` contiguous bytes, `stride` apart.
struct NextBlockPrefetch {
    struct Region {
        const char* base;
        int64_t stride, lines, runs;
    };
    Region r[2]{};
    int regions = 0, locality = 0;
    int64_t total = 0, done = 0, per_tile = 0;

    template <typename T>
    void add(const Mat<const T>& m, int64_t rows, int64_t cols) {  // m's rows x cols corner
        const int64_t sz = sizeof(T);
        if (m.cs == 1)
            r[regions++] = {reinterpret_cast<const char*>(m.p), m.rs * sz, ceil_div(cols * sz, 64),
                            rows};
        else if (m.rs == 1)
            r[regions++] = {reinterpret_cast<const char*>(m.p), m.cs * sz, ceil_div(rows * sz, 64),
                            cols};
        else
            return;  // (neither way contiguous: rare, and no runs to stream)
        total += r[regions - 1].lines * r[regions - 1].runs;
    }
    void spread_over(int64_t tiles) { per_tile = ceil_div(total, std::max<int64_t>(tiles, 1)); }
    void step() {
        for (const int64_t end = std::min(total, done + per_tile); done < end; done++) {
            const int64_t first = r[0].lines * r[0].runs;
            const Region& x = done < first ? r[0] : r[1];
            const int64_t l = done < first ? done : done - first;
            const char* p = x.base + (l / x.lines) * x.stride + (l % x.lines) * 64;
            if (locality == 1)
                __builtin_prefetch(p, 0, 3);  // prefetcht0: L1
            else
                __builtin_prefetch(p, 0, 2);  // prefetcht1: L2
        }
    }
};

template <typename T>
static void gemm_cell(const GemmArgs<T>& g, const GemmKernel<T>& kr, const GemmPlan& plan,
                      int cell, int member, int team, T* Ap, T* Bp) {
    const int MR = kr.tile.MR, NR = kr.NR;
    const Ukr<T> ukr_full = plan.pack_a ? kr.packed : kr.strided;
    const Ukr<T> ukr_tail = plan.pack_a ? kr.tail_packed : kr.tail_strided;
    const int dot_nr = g.a.cs == 1 ? kr.dot_nr : 0;  // (a rule of the kernel, not the plan:
                                                     // results never depend on the threads)
    const int64_t mcp = plan.MC / MR, ncp = plan.NC / NR;  // blocks in panels
    const Range jr = share(ceil_div(g.N, NR), cell / plan.grid_m, plan.grid_n);
    const Range ir = share(ceil_div(g.M, MR), cell % plan.grid_m, plan.grid_m);
    for (int64_t jc = jr.lo; jc < jr.hi; jc += ncp) {
        const int64_t jn = std::min(ncp, jr.hi - jc);  // B panels jc .. jc+jn
        for (int64_t pc = 0; pc < g.K; pc += plan.KC) {
            const int64_t kc = std::min(plan.KC, g.K - pc);
            const bool acc = g.accumulate || pc > 0;
            const bool epi = pc + kc == g.K && g.epi.any();  // the tiles are final: bias, r
            const Range pb = share(jn, member, team);
            {
                PhaseTimer timer(kPackB);
                if (g.b.cs == 1 && !plan.b_in_place && pb.hi > pb.lo)
                    pack_b_rows<T>(g.b, pc, kc, jc, pb, NR, g.N, dot_nr, Bp);
                else
                    for (int64_t jp = pb.lo; jp < pb.hi; jp++) {
                        const int64_t j0 = (jc + jp) * NR;
                        const int n = (int)std::min<int64_t>(NR, g.N - j0);
                        if ((plan.b_in_place && n == NR) || n <= dot_nr) continue;
                        pack_panel<T>(g.b.block(pc, j0).t(), n, NR, kc, Bp + jp * NR * kc,
                                      kr.avx2_transpose);
                    }
                // ukr_dot's panel: column j of B as row j, contiguous in k (Bt, {kc, 1})
                for (int64_t jp = pb.lo; jp < pb.hi; jp++) {
                    const int64_t j0 = (jc + jp) * NR;
                    const int n = (int)std::min<int64_t>(NR, g.N - j0);
                    if (n <= dot_nr)
                        pack_panel<T>(g.b.block(pc, j0), (int)kc, (int)kc, n, Bp + jp * NR * kc,
                                      kr.avx2_transpose);
                }
            }
            team_barrier(team);
            // The cell's A is one block: prefetch the next K block's B and A
            NextBlockPrefetch pf;
            pf.locality = plan.prefetch;
            if (plan.prefetch && team == 1 && !plan.b_in_place && pc + kc < g.K &&
                ir.hi - ir.lo <= mcp) {
                const int64_t next = std::min(plan.KC, g.K - pc - kc);
                const int64_t j0 = jc * NR, i0 = ir.lo * MR;
                pf.add(g.b.block(pc + kc, j0), next, std::min(jn * NR, g.N - j0));
                pf.add(g.a.block(i0, pc + kc), std::min(ir.hi * MR, g.M) - i0, next);
                pf.spread_over(jn * (ir.hi - ir.lo));
            }
            for (int64_t ic = ir.lo; ic < ir.hi; ic += mcp) {
                const int64_t in = std::min(mcp, ir.hi - ic);  // A panels ic .. ic+in
                if (plan.pack_a) {
                    PhaseTimer timer(kPackA);
                    const Range pa = share(in, member, team);
                    for (int64_t ip = pa.lo; ip < pa.hi; ip++) {
                        const int64_t i0 = (ic + ip) * MR;
                        pack_panel<T>(g.a.block(i0, pc), (int)std::min<int64_t>(MR, g.M - i0),
                                      MR, kc, Ap + ip * MR * kc, kr.avx2_transpose);
                    }
                    team_barrier(team);
                }
                if (plan.prefetch && team == 1 && plan.pack_a && ic + mcp < ir.hi) {
                    // more blocks of A follow: prefetch the next one
                    pf = NextBlockPrefetch{};
                    pf.locality = plan.prefetch;
                    const int64_t i0 = (ic + mcp) * MR;
                    const int64_t i1 = std::min(std::min(ic + 2 * mcp, ir.hi) * MR, g.M);
                    pf.add(g.a.block(i0, pc), i1 - i0, kc);
                    pf.spread_over(jn * in);
                }
                // Tiles in B-panel-major order: a thread's contiguous share of tiles touches
                // few B panels, which then stay in its L1/L2.
                const Range tiles = share(jn * in, member, team);
                PhaseTimer timer(kCompute);
                int64_t jp = tiles.lo / in, ip = tiles.lo % in;  // the first tile
                for (int64_t t = tiles.lo; t < tiles.hi; jp++, ip = 0) {  // a B panel a pass
                    const int64_t j0 = (jc + jp) * NR;
                    const int nr = (int)std::min<int64_t>(NR, g.N - j0);
                    const bool dot = nr <= dot_nr;  // ukr_dot, A in place
                    const Mat<const T> b = dot ? Mat<const T>{Bp + jp * NR * kc, kc, 1}
                                           : plan.b_in_place && nr == NR
                                               ? g.b.block(pc, j0)
                                               : Mat<const T>{Bp + jp * NR * kc, NR, 1};
                    // The first tile's A panel and C corner; each next tile is MR rows down.
                    const int64_t t_end = std::min(tiles.hi, t - ip + in);
                    int64_t i0 = (ic + ip) * MR;
                    const bool packed_a = plan.pack_a && !dot;
                    Mat<const T> a = packed_a ? Mat<const T>{Ap + ip * MR * kc, 1, MR}
                                              : g.a.block(i0, pc);
                    Mat<T> c = g.c.block(i0, j0);
                    const int64_t a_step = packed_a ? MR * kc : MR * g.a.rs;
                    const Ukr<T> ukr = dot ? kr.dot : nr <= kr.tail_nr ? ukr_tail : ukr_full;
                    for (; t < t_end; t++, i0 += MR, a.p += a_step, c.p += MR * c.rs) {
                        const int mr = (int)std::min<int64_t>(MR, g.M - i0);
                        ukr(kc, a, b, c, mr, nr, acc);
                        pf.step();
                        if (epi)  // while the tile is in L1
                            kr.epilogue(c, g.epi.bias ? g.epi.bias + j0 : nullptr,
                                        g.epi.r.p ? g.epi.r.block(i0, j0) : g.epi.r, mr, nr);
                    }
                }
                team_barrier(team);
            }
        }
    }
}

// One product with its kernel: plan, allocate, start the threads. C has unit column stride
// (the micro-kernels store whole rows of a tile), except the transposed narrow products,
// which only a short tile computes (its stores go through the stack tile).
template <typename T>
static void gemm_run(const GemmArgs<T>& g, const GemmKernel<T>& kr) {
    const GemmPlan plan = plan_gemm<T>(g, kr, threads_now());
    const int cells = plan.grid_n * plan.grid_m;
    const int64_t b_elems = plan.NC * plan.KC;  // one cell's B block
    const int64_t a_elems = plan.pack_a ? plan.MC * plan.KC : 0;  // one cell's A block
    T* Ap = plan.pack_a ? static_cast<T*>(tl_pack_a.get(sizeof(T) * a_elems * cells)) : nullptr;
    T* Bp = static_cast<T*>(tl_pack_b.get(sizeof(T) * b_elems * cells));
    // Thread `tid` of `nt`: one team over a single cell, or whole cells, one per thread (a
    // loop, so the result stays right if OpenMP grants fewer threads than asked for).
    auto run = [&](int tid, int nt) {
        if (cells == 1) return gemm_cell<T>(g, kr, plan, 0, tid, nt, Ap, Bp);
        for (int cell = tid; cell < cells; cell += nt)
            gemm_cell<T>(g, kr, plan, cell, 0, 1, Ap ? Ap + cell * a_elems : nullptr,
                         Bp + cell * b_elems);
    };
#ifdef NNLITE_OPENMP
    if (plan.threads > 1) {
        TeamWatch watch;  // a busy machine: see threads_now()
        std::atomic<int64_t> last_end{0}, ends{0};  // phase timers: the join's wait
        int finished = 0;
#pragma omp parallel num_threads(plan.threads)
        {
            watch.started();
            FtzScope ftz;  // MXCSR is per thread
            run(omp_get_thread_num(), omp_get_num_threads());
            watch.finished();
            if (phases_on()) {
                const int64_t t = now_ns();
                ends += t;
                int64_t seen = last_end.load();
                while (t > seen && !last_end.compare_exchange_weak(seen, t)) {
                }
#pragma omp atomic
                finished++;
            }
        }
        // each thread waited from its own end to the last one's
        if (phases_on()) g_phase_ns[kWait] += finished * last_end.load() - ends.load();
        return;
    }
#endif
    run(0, 1);
}

// The epilogue on columns [j0, j1) of C, by plain loops: for the parts of a product that do
// not go through gemm_cell's tiles (an empty sum, the transposed narrow columns).
template <typename T>
static void epilogue_columns(const Mat<T>& c, const Epilogue<T>& epi, int64_t M, int64_t j0,
                             int64_t j1) {
    if (!epi.any()) return;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = j0; j < j1; j++) {
            T& cij = *c.at(i, j);  // in epilogue_tile's order: (C + bias) + r
            if (epi.bias) cij += epi.bias[j];
            if (epi.r.p) cij += *epi.r.at(i, j);
        }
}

template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K, const Mat<const T>& a, const Mat<const T>& b,
                  const Mat<T>& c, bool accumulate, const Epilogue<T>& epi) {
    FtzScope ftz;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C = 0, or C unchanged when accumulating (+ the epilogue)
        if (!accumulate)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) *c.at(i, j) = T(0);
        epilogue_columns(c, epi, M, 0, N);
        return;
    }
    // A narrow product whose A is contiguous down its columns (a weight gradient X.T @ dY
    // with 10 outputs): computed as C.T = B.T @ A.T, N rows of a short tile by M columns, with
    // X's rows as the B panels, read in place. The one-vector tile would pad 10 columns to 16
    // (5/8 of its FMAs useful); the 10 x 32 tile pads nothing.
    // The same for the last few columns of a wide product (dW = X.T @ dY of a 65-token
    // vocabulary: 64 columns on the wide tile, the 65th here, where the wide tile's last panel
    // would spend 16 lanes on it), when the last panel has at most W / 4 columns.
    // Its stores go through a stack tile, transposed: the epilogue of those columns follows
    // in a loop of its own.
    int64_t n_main = N;  // the columns left for the tile kernels, from 0
    if (a.rs == 1 && M >= 64) {
        const GemmKernel<T> wide = NNLITE_PICK(gemm_kernel<T>)(N);
        const int64_t tail = N > wide.NR ? N % wide.NR : N;  // the last panel's columns
        const int64_t W = wide.NR / wide.tile.NV;
        const GemmKernel<T> kr = NNLITE_PICK(gemm_kernel_short<T>)(tail);
        if (tail > 0 && kr.tile.MR > 0 && (tail == N || 4 * tail <= W)) {
            n_main = N - tail;
            gemm_run<T>({tail, M, K, b.block(0, n_main).t(), a.t(), c.block(0, n_main).t(),
                         accumulate},
                        kr);
            epilogue_columns(c, epi, M, n_main, N);
            if (n_main == 0) return;
        }
    }
    N = n_main;
    if (c.cs == 1 || N == 1) {  // (one column: its stride is never used)
        gemm_run<T>({M, N, K, a, b, {c.p, c.rs, 1}, accumulate, epi},
                    NNLITE_PICK(gemm_kernel<T>)(N));
        return;
    }
    // Rare: an `out` whose rows are not unit-stride. Compute into a dense temporary (with the
    // epilogue), then scatter; the micro-kernels keep their simple unit-stride stores.
    std::unique_ptr<T[]> tmp(new T[M * N]);
    gemm_run<T>({M, N, K, a, b, {tmp.get(), N, 1}, false, epi}, NNLITE_PICK(gemm_kernel<T>)(N));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            T& dst = *c.at(i, j);
            dst = accumulate ? dst + tmp[i * N + j] : tmp[i * N + j];
        }
}

template void gemm_strided<float>(int64_t, int64_t, int64_t, const Mat<const float>&,
                                  const Mat<const float>&, const Mat<float>&, bool,
                                  const Epilogue<float>&);
template void gemm_strided<double>(int64_t, int64_t, int64_t, const Mat<const double>&,
                                   const Mat<const double>&, const Mat<double>&, bool,
                                   const Epilogue<double>&);

}  // namespace nnlite
