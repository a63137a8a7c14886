/*
Attention: flash-style scaled dot-product attention, forward and backward, on the CPU.
Ladder: dev/attention/ — this file is the last steps (vectorised, threaded, backward from the saved log-sum-exp)

Shapes (B batch, H heads, T sequence length, D head size):
    q, k, v, out, dout, dq, dk, dv   (B, H, T, D), each with its own strides along B, H, T
                                     (attention.h: Heads); rows of D are contiguous
    lse                              (B, H, T), C-contiguous
Strided operands: a transformer's QKV projection is (B, T, 3, H, D) in memory and its output
projection wants (B, T, H, D), so contiguous (B, H, T, D) operands cost a transposing copy of
q, k, v and of out (and of dout, dq, dk, dv in the backward) per layer and step. Every tile
routine already takes a row stride (lda, ldb, ldc), so reading the views in place only changes
where a head starts (b·sb + h·sh) and the row stride (st instead of D): the arithmetic and its
order are the same as for contiguous operands, and so are the results, bit for bit. In such
views the rows of different heads interleave (out as (B, T, H, D): head h's row t lies between
those of heads h-1 and h+1, written by other threads meanwhile); every store stays inside its
row's D elements (storen writes only the lanes below D), so none reaches a neighbour's row.

Forward, for each (b, h):
    S = Q Kᵀ · scale          (T, T)   scale = 1/√D by default
    S[i, j] = -inf for j > i  (causal: query i sees keys 0..i)
    P = softmax(S) per row,   out = P V,   lse[i] = log Σ_j exp(S[i, j])
Backward (dO = dout), with Δ[i] = Σ_d dO[i, d] O[i, d]:
    dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - Δ),  dQ = dS K · scale,  dK = dSᵀ Q · scale
The numpy twins (nnlite/ops/reference.py: attention, attention_backward) build the whole
(B, H, T, T) S and P. That is O(B·H·T²) memory: 1 GiB for B·H = 64 heads at T = 2048 in float32.

The tiling (FlashAttention, Dao et al. 2022; backward as in FlashAttention-2, 2023):
queries go in tiles of BR = 64 rows, keys/values in tiles of BC = 64, and only one S tile
(BR x BC) per thread exists at a time. Forward, one task per (b, h, query tile):

    m = -inf, l = 0, O = 0                           running max, running sum, unnormalised out
    for each key tile j (causal: only up to the diagonal tile; tiles above it are skipped whole)
        S = Q_i K_jᵀ · scale                         BR x BC, masked only in the diagonal tile
        m' = max(m, rowmax S);  P = exp(S - m')
        α = exp(m - m');  l = α l + rowsum P;  O = α O + P V_j;  m = m'
    out_i = O / l,  lse_i = m + log l

Rescaling by α = exp(m - m') keeps every exp() argument ≤ 0 (no overflow), and the result is
exactly softmax(S) V: each tile's contribution gets multiplied by exp(m_tile - m_final) in the end.
Up to 1024 keys (float32; 512 in float64) a query tile's scores against all its keys fit in L2
(64 KiB per 256 keys), and forward_rows takes them at once instead: one exact softmax, one P V
(see rows_mode). The backward below is the same for both.
Backward, one task per (b, h) (each thread owns that head's dq, dk, dv, so nothing races):

    Δ = rowsum(dO ⊙ O)
    for each key tile j:                             dK_j, dV_j accumulate in place
        for each query tile i (causal: i >= j)
            S = Q_i K_jᵀ · scale;  P = exp(S - lse_i)      P recomputed from the saved lse,
            dV_j += Pᵀ dO_i;  dP = dO_i V_jᵀ               never stored
            dS = P ⊙ (dP - Δ_i) · scale
            dQ_i += dS K_j;  dK_j += dSᵀ Q_i

Memory: per thread a BR x BC tile for S/P and one for dP, Kᵀ (and Vᵀ) of one head (D x T),
and O(T) row statistics, so O(T·D) extra instead of O(T²); nothing of size B·H·T·T ever exists.
All of it is allocated before the parallel region (an allocation failing inside one would abort
the process; here it is a MemoryError), and only for the threads that get a task. Kᵀ is padded
to a multiple of 16 keys unless that would make it big (see Layout): T = 1 with a big D used to
pad it 16x.
The recompute costs one more Q Kᵀ in the backward, which is cheaper than reading a stored P.

Inner loops: five small tile routines (TileOps), called once per tile, written once over the
vector type V = simd::Vec<T, Isa> in attention.inc (which explains the register tiles):
    scores   C = A Bᵀ·scale  (BR x BC, over D)   Bᵀ is pre-transposed (D x T), so the vectors
             run along keys: C[r, c:c+W] += A[r, d] · Bᵀ[d, c:c+W]  (broadcast-FMA, no
             horizontal sums), in register tiles of 4 rows x NV vectors of keys
    accum    C += A B over the tile (vectors along D):  P V, Pᵀ dO, dS K, dSᵀ Q;
             A is read with (row, col) strides, so the transposed ones cost nothing
    row_max, exp_rows, ds_rows: the softmax pieces, with V::exp (common/simd.h)

Versions: common/foreach_isa.h compiles attention.inc once per ISA (scalar::, avx2::,
avx512::), and pick_ops takes the set for nnlite::simd_path() (NNLITE_PICK; forced with
NNLITE_SIMD or ops.force_simd). The drivers below (tiling, online softmax, threads) are shared.
    scalar   plain row loops for scores/accum, which the compiler vectorises (SSE2, NEON)
    avx2     AVX2/FMA, W = 8 floats (4 doubles); scores 4 rows x 2 vectors of keys,
             accum 4 rows x 2 vectors of D (8 rows x 1 vector when D <= W)
    avx512   AVX-512, W = 16 floats (8 doubles); scores 4 rows x 4 vectors of keys,
             accum as avx2
float64 runs the same routines with half the lanes (it used to run only the scalar loops); its
exp is std::exp per lane, so only the summation order differs (within the tests' 1e-12).
Run:  python benchmarks/bench_attention.py   (against torch's scaled_dot_product_attention)
Measured when the kernel was written (commit 56857ce: 2 shared Zen 4 cores with AVX-512,
2 threads, float32, causal, fwd+bwd; noisy machine, best of 7):
    (B,H,T,D) = (12,4,64,32): 2.6 ms vs torch 6.1 ms;  (32,8,256,16): 46 ms vs torch 109 ms.
    1 thread, (32,8,256,16) forward: avx512 14.6 ms, avx2 22.5 ms, scalar 83 ms.
Measured when the tile routines moved to attention.inc (a Zen 4 VM without AVX-512, busy with
other builds; 1 thread, causal fwd+bwd, per-ISA copies before -> after, best of 8 interleaved):
    avx2 float32 (12,4,64,32) 2.73 -> 1.59 ms, (32,8,256,16) 158 -> 100 ms, (16,4,256,8)
    42 -> 21 ms: full tiles now use plain loads/stores (AVX2 maskstore is microcoded on Zen)
    and D <= W gets the 8 x 1 tile. float64 (12,4,64,32) 31 -> 5.7 ms (it was scalar only).
Peak RSS growth of one forward at (4,8,T,32), the same before and after the move: T=1024:
4.2 MiB (= the output) vs the numpy twin's 385 MiB (3 (B,H,T,T) temporaries); T=256: 1.1 MiB
vs 24 MiB.

Threads: OpenMP. Forward over (b, h, query tile), head by head, backward over (b, h), both
with a dynamic schedule: causal query tiles near the end of the sequence visit more key tiles
(each head's are handed out first; a worker keeps the Kᵀ of its last head, so its next tile of
the same head transposes nothing), and on a shared 2-core machine a stalled thread should not
hold up the other.
MXCSR is per thread, so every parallel region opens its own FtzScope. Each (b, h, tile) or
(b, h) is computed by one thread in a fixed order, so results do not depend on the thread count.
Tasks are handed out with the batch index fastest, so the two threads work on different
sequences: in a transformer's (B, T, H, D) output and (B, T, 3, H, D) gradient the rows of
heads h and h + 1 of one sequence share cache lines, and two threads writing them in turn
(the forward accumulates into out, key tile after key tile) passed the lines back and forth:
(12, 4, 64, 32) forward into such an out took 334 µs on 2 threads, as long as on one (171 µs
into a contiguous out).
*/
#include "cpu/attention.h"

#include "common/simd.h"  // first: its pragma block must precede <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/cpu.h"
#include "common/transpose.h"

namespace nnlite {

constexpr int64_t BR = 64;  // query rows per tile
constexpr int64_t BC = 64;  // keys per tile (== BR, so diagonal tiles line up)
constexpr int64_t kNoMask = std::numeric_limits<int64_t>::max() / 4;

static inline int64_t round16(int64_t n) { return (n + 15) & ~int64_t(15); }

// The causal diagonal tile in strips of SB query rows (or keys): strip s of queries sees only
// keys below its end, and strip s of keys is seen only by queries from its start, so its
// products skip the upper triangle's blocks: 10 of the 16 SB x SB blocks of a 64 x 64 tile
// (the whole of a T = 64 head). Only exact zeros (masked P, dS) are left out of the sums.
constexpr int64_t SB = 16;

// "valid" columns of tile row r: min(cols, r + off + 1), where off = (first query) - (first
// key) of the tile on the causal diagonal, kNoMask elsewhere.
static inline int64_t n_valid(int64_t r, int64_t cols, int64_t off) {
    return std::max<int64_t>(0, std::min(cols, r + off + 1));
}

}  // namespace nnlite

#define NNLITE_KERNELS "cpu/attention.inc"
#include "common/foreach_isa.h"  // nnlite::{scalar, avx2, avx512}::{scores, accum, ...}

namespace nnlite {

// The tile routines of one SIMD path (see attention.inc for what each computes).
template <typename T>
struct TileOps {
    // C[r*ldc + c] = scale · Σ_d A[r*lda + d] · Bt[d*ldb + c]   for c < ncp (a multiple of 16)
    void (*scores)(const T* A, int64_t lda, const T* Bt, int64_t ldb, T* C, int64_t ldc,
                   int64_t rows, int64_t ncp, int64_t D, T scale);
    // C[r*ldc + d] += Σ_c A[r*ars + c*acs] · B[c*ldb + d]   for d < D (zero: C = Σ ...)
    void (*accum)(const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                  int64_t ldc, int64_t rows, int64_t inner, int64_t D, bool zero);
    // m[r] = max(m[r], max over valid c of S[r*ld + c])
    void (*row_max)(const T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off, T* m);
    // S[r*ld + c] = exp(S - sub[r]) for valid c, 0 for the other c < cols; sum[r] = Σ (if sum)
    void (*exp_rows)(T* S, int64_t ld, int64_t rows, int64_t cols, int64_t off, const T* sub,
                     T* sum);
    // dP[r*ld + c] = P · (dP - delta[r]) · scale for valid c, 0 for the other c < cols
    void (*ds_rows)(const T* P, T* dP, int64_t ld, int64_t rows, int64_t cols, int64_t off,
                    const T* delta, T scale);
    // out[r] = Σ_d A[r*lda + d] · B[r*ldb + d]
    void (*row_dots)(const T* A, int64_t lda, const T* B, int64_t ldb, int64_t rows, int64_t D,
                     T* out);
};

template <typename T>
static TileOps<T> pick_ops() {
    return {NNLITE_PICK(scores<T>), NNLITE_PICK(accum<T>), NNLITE_PICK(row_max<T>),
            NNLITE_PICK(exp_rows<T>), NNLITE_PICK(ds_rows<T>), NNLITE_PICK(row_dots<T>)};
}

// Kᵀ of rows [0, n) of one head (row stride ldk): Kt[d*ldt + j] = K[j*ldk + d], zero in
// columns [n, np), where np = pad(n) (see Layout). With `avx2`, whole 8 x 8 (f32) / 4 x 4 (f64)
// blocks go through registers (common/transpose.h) and only the edges element by element: the
// scalar loop (a load and a store per element, reading K a row stride apart) was 60% of
// forward_tile's own time in a (32, 8, 256, 16) forward on one Zen 4 core.
template <typename T>
static void transpose_rows(const T* K, int64_t ldk, int64_t n, int64_t D, T* Kt, int64_t ldt,
                           bool pad16, bool avx2) {
    const int64_t np = pad16 ? round16(n) : n;
    int64_t jb = 0, db = 0;  // [0, jb) x [0, db): whole blocks
#if NNLITE_X86
    if (avx2) {
        constexpr int64_t B = 32 / sizeof(T);
        jb = n / B * B, db = D / B * B;
        transpose_blocks(K, ldk, jb, db, Kt, ldt);
    }
#endif
    (void)avx2;
    for (int64_t d = 0; d < D; d++) {
        T* kt = Kt + d * ldt;
        for (int64_t j = d < db ? jb : 0; j < n; j++) kt[j] = K[j * ldk + d];
        for (int64_t j = n; j < np; j++) kt[j] = T(0);
    }
}

// Threads for `tasks` independent tasks: 1 when the work (about 2·T²·D FMAs per head) is below
// ~30 µs, never more than there are tasks (an idle thread would still get a workspace).
static int workers_for(int64_t tasks, int64_t BH, int64_t T_, int64_t D) {
    const int nt = threads_now();
    if (nt <= 1 || double(BH) * double(T_) * double(T_) * double(D) <= 2e5) return 1;
    return int(std::min<int64_t>(nt, tasks));
}

// How Kᵀ (and Vᵀ) of a head are laid out, and which scores routine reads them. The SIMD
// scores routines need the keys padded with zeros to a multiple of 16 (whole vectors). Below
// 16 keys that padding would make Kᵀ up to 16 times the size of K (T = 1 with a big D: 16x),
// so short sequences with a padded Kᵀ over kMaxPadBytes take the scalar routine, which reads
// exactly the keys there are (short ones with a usual head size keep the faster SIMD one).
constexpr int64_t kMaxPadBytes = int64_t(1) << 20;

template <typename T>
struct Layout {
    bool pad16;     // keys padded to a multiple of 16
    bool avx2;      // transpose_rows may use the AVX2 register transposes
    int64_t ldt;    // row stride of Kᵀ: T rounded up (pad16) or T
    void (*scores)(const T*, int64_t, const T*, int64_t, T*, int64_t, int64_t, int64_t, int64_t, T);
    int64_t ncp(int64_t cols) const { return pad16 ? round16(cols) : cols; }
};

template <typename T>
static Layout<T> layout_for(const TileOps<T>& ops, int64_t T_, int64_t D) {
    const bool avx2 = NNLITE_X86 && simd_path() != Simd::Scalar;
    if (T_ < 16 && D * 16 * int64_t(sizeof(T)) > kMaxPadBytes)
        return {false, avx2, T_, &scalar::scores<T>};
    return {true, avx2, round16(T_), ops.scores};
}

// Per-thread workspace, allocated in one piece before the parallel region: a std::bad_alloc
// thrown inside one would call std::terminate (the process aborts), while here it reaches
// Python as MemoryError. Each worker's first `tiles` elements (the S, dP tiles) are zeroed once:
// vector lanes just past the last key may be read (and masked) before a tile writes them. The
// rest (Kᵀ, Vᵀ: as big as K) is left untouched until written: no zero-fill pass over it.
template <typename T>
struct Workspace {
    std::unique_ptr<T[]> buf;
    int64_t per;
    Workspace(int workers, int64_t per_worker, int64_t tiles)
        : buf(new T[size_t(workers) * size_t(per_worker)]), per(per_worker) {
        for (int w = 0; w < workers; w++) std::fill(of(w), of(w) + tiles, T(0));
    }
    T* of(int worker) { return buf.get() + size_t(worker) * size_t(per); }
};

static inline int worker_id() {
#ifdef NNLITE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// ------------------------------------------------------------------------------- forward

// Kᵀ of keys [0, have) extended to [0, kend) (have is 0 or a whole number of tiles, a multiple
// of 16: the padding lines up).
template <typename T>
static void extend_kt(const Layout<T>& lay, const T* k, int64_t lk, int64_t kend, int64_t D,
                      T* Kt, int64_t& have) {
    if (kend <= have) return;
    transpose_rows(k + have * lk, lk, kend - have, D, Kt + have, lay.ldt, lay.pad16, lay.avx2);
    have = kend;
}

// The end of a query tile: lse = m + log l, out /= l (rows [i0, i0 + rows)).
template <typename T>
static void finish_rows(T* out, int64_t lo, T* lse, int64_t i0, int64_t rows, int64_t D,
                        const T* m, const T* l) {
    for (int64_t r = 0; r < rows; r++) {
        lse[i0 + r] = m[r] + std::log(l[r]);
        if (out) {
            const T inv = T(1) / l[r];
            T* o = out + (i0 + r) * lo;
            for (int64_t d = 0; d < D; d++) o[d] *= inv;
        }
    }
}

// One task: query tile [i0, i0 + rows) of one head; q, k, v, out point at the head's row 0,
// lq, lk, lv, lo are their row strides. out == nullptr: only m, l (for lse). Kt already holds
// the head's keys [0, have) (this worker's last task was the same head), and is extended to
// the keys the tile sees.
template <typename T>
static void forward_tile(const TileOps<T>& ops, const Layout<T>& lay, const T* q, int64_t lq,
                         const T* k, int64_t lk, const T* v, int64_t lv, T* out, int64_t lo,
                         T* lse, int64_t T_, int64_t D, int64_t i0, bool causal, T scale, T* S,
                         T* Kt, int64_t& have, T* m, T* mnew, T* l, T* rowsum) {
    const int64_t ldt = lay.ldt;
    const int64_t rows = std::min(BR, T_ - i0);
    const int64_t kend = causal ? i0 + rows : T_;  // keys any row of this tile can see
    extend_kt(lay, k, lk, kend, D, Kt, have);
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -std::numeric_limits<T>::infinity();
        l[r] = T(0);
    }
    for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        const int64_t cols = std::min(BC, kend - j0);
        const int64_t off = (causal && j0 + cols > i0) ? i0 - j0 : kNoMask;  // diagonal tile
        // the diagonal tile (i0 == j0) in strips: query strip [r, r + n) sees keys < r + n;
        // any other tile is one strip of all its rows and keys
        const int64_t strip = off == 0 ? SB : BR;
        for (int64_t r = 0; r < rows; r += strip) {
            const int64_t n = std::min(strip, rows - r), seen = off == 0 ? r + n : cols;
            lay.scores(q + (i0 + r) * lq, lq, Kt + j0, ldt, S + r * BC, BC, n,
                       lay.ncp(std::min(cols, seen)), D, scale);
        }
        std::copy(m, m + rows, mnew);
        ops.row_max(S, BC, rows, cols, off, mnew);
        ops.exp_rows(S, BC, rows, cols, off, mnew, rowsum);
        for (int64_t r = 0; r < rows; r++) {
            const T alpha = std::exp(m[r] - mnew[r]);  // 0 on the first tile (m = -inf)
            l[r] = l[r] * alpha + rowsum[r];
            m[r] = mnew[r];
            if (out && j0 > 0 && alpha != T(1)) {  // (key tile 0 writes out afresh below)
                T* o = out + (i0 + r) * lo;
                for (int64_t d = 0; d < D; d++) o[d] *= alpha;
            }
        }
        if (out)
            for (int64_t r = 0; r < rows; r += strip) {
                const int64_t n = std::min(strip, rows - r), seen = off == 0 ? r + n : cols;
                ops.accum(S + r * BC, BC, 1, v + j0 * lv, lv, out + (i0 + r) * lo, lo, n,
                          std::min(cols, seen), D, j0 == 0);
            }
    }
    finish_rows(out, lo, lse, i0, rows, D, m, l);
}

// The whole query tile at once ("rows" mode), when its scores against every key fit in
// kRowsBytes (BR x T: f32 T <= 1024, f64 T <= 512): S holds the tile's row of scores over all
// the keys it sees (row stride lds, a multiple of 16), so the softmax is exact in one pass and
// P V is one product with the keys as its inner dimension:
//     S = Q_i Kᵀ · scale (masked);  m = rowmax S;  P = exp(S - m);  l = rowsum P
//     out_i = (P V) / l;  lse_i = m + log l
// The online softmax of forward_tile pays, per key tile, a scalar exp and a rescale of each
// out row (α), a copy and a rescan of the running maxima, and a load and store of out's rows
// around each P V_j: in a (32, 8, 256, 16) forward (4 key tiles) on one Zen 4 core that
// bookkeeping was ~20% of the time (perf: forward_tile's own loops, memset, expf, logf), and the
// forward 2.5x its products' time at the peak. Longer sequences keep the tiles: their S would
// not stay in L2 beside Kᵀ.
constexpr int64_t kRowsBytes = int64_t(256) << 10;

template <typename T>
static bool rows_mode(int64_t T_) {
    return BR * round16(T_) * int64_t(sizeof(T)) <= kRowsBytes;
}

template <typename T>
static void forward_rows(const TileOps<T>& ops, const Layout<T>& lay, const T* q, int64_t lq,
                         const T* k, int64_t lk, const T* v, int64_t lv, T* out, int64_t lo,
                         T* lse, int64_t T_, int64_t D, int64_t i0, bool causal, T scale, T* S,
                         int64_t lds, T* Kt, int64_t& have, T* m, T* l) {
    const int64_t ldt = lay.ldt;
    const int64_t rows = std::min(BR, T_ - i0);
    const int64_t kend = causal ? i0 + rows : T_;  // keys any row of this tile can see
    extend_kt(lay, k, lk, kend, D, Kt, have);
    // causal: in strips of SB query rows, strip [r, r + n) seeing keys < i0 + r + n (the
    // diagonal's upper triangle skipped in SB x SB blocks, as in forward_tile)
    const int64_t off = causal ? i0 : kNoMask, strip = causal ? SB : BR;
    auto seen = [&](int64_t r, int64_t n) { return causal ? std::min(kend, i0 + r + n) : kend; };
    for (int64_t r = 0; r < rows; r += strip) {
        const int64_t n = std::min(strip, rows - r);
        lay.scores(q + (i0 + r) * lq, lq, Kt, ldt, S + r * lds, lds, n, lay.ncp(seen(r, n)), D,
                   scale);
    }
    for (int64_t r = 0; r < rows; r++) m[r] = -std::numeric_limits<T>::infinity();
    ops.row_max(S, lds, rows, kend, off, m);
    ops.exp_rows(S, lds, rows, kend, off, m, l);
    if (out)
        for (int64_t r = 0; r < rows; r += strip) {  // out = P V (its old content unread)
            const int64_t n = std::min(strip, rows - r);
            ops.accum(S + r * lds, lds, 1, v, lv, out + (i0 + r) * lo, lo, n, seen(r, n), D,
                      true);
        }
    finish_rows(out, lo, lse, i0, rows, D, m, l);
}

template <typename T>
void attention_forward(Heads<const T> q, Heads<const T> k, Heads<const T> v, Heads<T> out,
                       T* lse, int64_t B, int64_t H, int64_t T_, int64_t D, bool causal,
                       T scale) {
    FtzScope ftz;
    const int64_t BH = B * H;
    const TileOps<T> ops = pick_ops<T>();
    const Layout<T> lay = layout_for(ops, T_, D);
    const int64_t nq = (T_ + BR - 1) / BR, ntask = BH * nq;
    const int workers = workers_for(ntask, BH, T_, D);
    // per worker: S (BR x lds: every key in rows mode, one key tile otherwise), Kᵀ
    // (D x ldt), m, mnew, l, rowsum (BR each)
    const bool whole = rows_mode<T>(T_);
    const int64_t lds = whole ? round16(T_) : BC;
    Workspace<T> ws(workers, BR * lds + D * lay.ldt + 4 * BR, BR * lds);
    // per worker: the head whose keys its Kᵀ holds, and how many of them
    std::vector<std::pair<int64_t, int64_t>> held(size_t(workers), {-1, 0});
    auto task = [&](int64_t t, int worker) {
        // Head by head, the batch index fastest: tasks handed out together are different
        // sequences (see "Threads" above). Within a head, causal: the last query tiles are
        // the most work, so hand them out first; they also see every key the head's other
        // tiles see, so a worker that gets another tile of the same head next has its Kᵀ
        // already. Transposed again for every tile, the keys (read cold from memory) were 18%
        // of a (32, 8, 256, 16) forward: 14.4-15.2 -> 11.9-12.2 ms on one Zen 4 core (best
        // of 40, CPU time, three runs each).
        const int64_t hi = t / nq, qi = t % nq, b = hi % B, h = hi / B;
        const int64_t bh = b * H + h, qt = causal ? nq - 1 - qi : qi;
        T* w = ws.of(worker);
        T *S = w, *Kt = S + BR * lds, *m = Kt + D * lay.ldt;
        auto& [head, have] = held[size_t(worker)];
        if (head != bh) head = bh, have = 0;
        if (whole) {
            forward_rows(ops, lay, q.head(b, h), q.st, k.head(b, h), k.st, v.head(b, h), v.st,
                         out.p ? out.head(b, h) : nullptr, out.st, lse + bh * T_, T_, D,
                         qt * BR, causal, scale, S, lds, Kt, have, m, m + BR);
            return;
        }
        forward_tile(ops, lay, q.head(b, h), q.st, k.head(b, h), k.st, v.head(b, h), v.st,
                     out.p ? out.head(b, h) : nullptr, out.st, lse + bh * T_, T_, D, qt * BR,
                     causal, scale, S, Kt, have, m, m + BR, m + 2 * BR, m + 3 * BR);
    };
#ifdef NNLITE_OPENMP
    if (workers > 1) {
        TeamWatch watch;  // a busy machine: see threads_now()
#pragma omp parallel num_threads(workers)
        {
            watch.started();
            FtzScope ftz_thread;
            const int worker = worker_id();
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t t = 0; t < ntask; t++) task(t, worker);
            watch.finished();
        }
        return;
    }
#endif
    for (int64_t t = 0; t < ntask; t++) task(t, 0);
}

// ------------------------------------------------------------------------------- backward

// One head (b, h); lse points at its T row statistics. Its rows of dq, dk, dv are written
// (zeroed first, then accumulated) by this thread only.
template <typename T>
static void backward_head(const TileOps<T>& ops, Heads<const T> Q, Heads<const T> K,
                          Heads<const T> V, Heads<const T> O, Heads<const T> dO, const T* lse,
                          Heads<T> dQ, Heads<T> dK, Heads<T> dV, int64_t b, int64_t h,
                          int64_t T_, int64_t D, bool causal, T scale, const Layout<T>& lay,
                          T* S, T* dP, T* Kt, T* Vt, T* delta, T* stage) {
    const int64_t ldt = lay.ldt;
    // the head's rows and their strides (l.. = row stride of ..)
    const T *q = Q.head(b, h), *k = K.head(b, h), *v = V.head(b, h);
    const T *out = O.head(b, h), *dout = dO.head(b, h);
    T *dq = dQ.head(b, h), *dk = dK.head(b, h), *dv = dV.head(b, h);
    const int64_t lq = Q.st, lk = K.st, lv = V.st, lo = O.st, ld = dO.st;
    int64_t lgq = dQ.st, lgk = dK.st, lgv = dV.st;
    // A destination with rows apart (a head of a (B, T, 3, H, D) gradient: rows 3·H·D apart)
    // is accumulated in this thread's contiguous `stage` and copied out at the end: its rows
    // fall on a few L1 sets (1536 bytes apart in the GPT's, 8 sets for 64 rows, with dq, dk
    // and dv on the same ones), and the key tile after key tile of += evicted each other
    // (measured: the (12, 4, 64, 32) backward 650 -> 845 µs on 1 thread into such views).
    // The sums are the same, in the same order. Up to T = BC (one key tile) each row is
    // written once (accum's `zero`, no +=) and written in place, without the stage and the
    // copy out: the GPT's (12, 4, 64, 32) backward into its (B, T, 3, H, D) gradient, best of
    // 200 in 4 interleaved runs each on one Zen 4 core, 584-851 -> 567-696 µs (median 773-877
    // -> 667-733; a noisy host).
    T *gq = dq, *gk = dk, *gv = dv;
    if (stage) {
        if (lgq != D) dq = stage, lgq = D;
        if (lgk != D) dk = stage + T_ * D, lgk = D;
        if (lgv != D) dv = stage + 2 * T_ * D, lgv = D;
    }
    // No zero-fill of dq, dk, dv: the first product into each row overwrites it (accum's
    // `zero`): a dq row's is key tile 0's, a dk / dv row's its key tile's first query tile
    // (the diagonal one when causal, where every key strip has a query)
    ops.row_dots(dout, ld, out, lo, T_, D, delta);  // Δ_i = Σ_d dO[i, d] O[i, d]
    transpose_rows(k, lk, T_, D, Kt, ldt, lay.pad16, lay.avx2);
    transpose_rows(v, lv, T_, D, Vt, ldt, lay.pad16, lay.avx2);
    for (int64_t j0 = 0; j0 < T_; j0 += BC) {
        const int64_t cols = std::min(BC, T_ - j0), ncp = lay.ncp(cols);
        for (int64_t i0 = causal ? j0 : 0; i0 < T_; i0 += BR) {
            const int64_t rows = std::min(BR, T_ - i0);
            const int64_t off = (causal && i0 < j0 + cols) ? i0 - j0 : kNoMask;
            const T *qi = q + i0 * lq, *doi = dout + i0 * ld;
            // the diagonal tile (i0 == j0) in strips: query strip [r, r + n) against keys
            // < r + n, key strip [c, c + n) against queries >= c; any other tile is one strip
            const bool diag = off == 0;
            const int64_t strip = diag ? SB : BC;
            for (int64_t r = 0; r < rows; r += strip) {
                const int64_t n = std::min(strip, rows - r);
                const int64_t kp = diag ? lay.ncp(std::min(cols, r + n)) : ncp;
                lay.scores(qi + r * lq, lq, Kt + j0, ldt, S + r * BC, BC, n, kp, D, scale);
                lay.scores(doi + r * ld, ld, Vt + j0, ldt, dP + r * BC, BC, n, kp, D, T(1));
            }
            ops.exp_rows(S, BC, rows, cols, off, lse + i0, nullptr);                  // P
            ops.ds_rows(S, dP, BC, rows, cols, off, delta + i0, scale);               // dS·scale
            const bool first_q = i0 == (causal ? j0 : 0), first_k = j0 == 0;
            for (int64_t c = 0; c < cols; c += strip) {   // dV += Pᵀ dO, dK += dSᵀ Q
                const int64_t n = std::min(strip, cols - c), q0 = diag ? c : 0;
                if (q0 >= rows) break;  // (never on the first query tile: see above)
                ops.accum(S + q0 * BC + c, 1, BC, doi + q0 * ld, ld, dv + (j0 + c) * lgv, lgv,
                          n, rows - q0, D, first_q);
                ops.accum(dP + q0 * BC + c, 1, BC, qi + q0 * lq, lq, dk + (j0 + c) * lgk, lgk,
                          n, rows - q0, D, first_q);
            }
            for (int64_t r = 0; r < rows; r += strip) {   // dQ += dS K
                const int64_t n = std::min(strip, rows - r), seen = diag ? r + n : cols;
                ops.accum(dP + r * BC, BC, 1, k + j0 * lk, lk, dq + (i0 + r) * lgq, lgq, n,
                          std::min(cols, seen), D, first_k);
            }
        }
    }
    const Heads<T>* dest[3] = {&dQ, &dK, &dV};
    T* const staged[3] = {dq, dk, dv};
    T* const final_[3] = {gq, gk, gv};
    for (int a = 0; a < 3; a++)
        if (staged[a] != final_[a])
            for (int64_t i = 0; i < T_; i++)
                std::copy_n(staged[a] + i * D, D, final_[a] + i * dest[a]->st);
}

template <typename T>
void attention_backward(Heads<const T> q, Heads<const T> k, Heads<const T> v,
                        Heads<const T> out, Heads<const T> dout, const T* lse, Heads<T> dq,
                        Heads<T> dk, Heads<T> dv, int64_t B, int64_t H, int64_t T_, int64_t D,
                        bool causal, T scale) {
    FtzScope ftz;
    const int64_t BH = B * H;
    const TileOps<T> ops = pick_ops<T>();
    const Layout<T> lay = layout_for(ops, T_, D);
    const int workers = workers_for(BH, BH, T_, D);
    // per worker: S, dP (BR x BC each), Kᵀ, Vᵀ (D x ldt each), delta (T), and when a
    // destination's rows are apart and T > BC, the staging rows of dq, dk, dv (3 x T x D;
    // backward_head)
    const bool strided = (dq.st != D || dk.st != D || dv.st != D) && T_ > BC;
    const int64_t stage = strided ? 3 * T_ * D : 0;
    Workspace<T> ws(workers, 2 * BR * BC + 2 * D * lay.ldt + T_ + stage, 2 * BR * BC);
    auto head = [&](int64_t t, T* w) {
        const int64_t b = t % B, h = t / B, bh = b * H + h;   // the batch index fastest
        T *S = w, *dP = S + BR * BC, *Kt = dP + BR * BC, *Vt = Kt + D * lay.ldt;
        T* delta = Vt + D * lay.ldt;
        backward_head(ops, q, k, v, out, dout, lse + bh * T_, dq, dk, dv, b, h, T_, D, causal,
                      scale, lay, S, dP, Kt, Vt, delta, strided ? delta + T_ : nullptr);
    };
#ifdef NNLITE_OPENMP
    if (workers > 1) {
        TeamWatch watch;  // a busy machine: see threads_now()
#pragma omp parallel num_threads(workers)
        {
            watch.started();
            FtzScope ftz_thread;
            T* w = ws.of(worker_id());
#pragma omp for schedule(dynamic, 1) nowait  // equal heads; a busy machine may stall a thread
            for (int64_t bh = 0; bh < BH; bh++) head(bh, w);
            watch.finished();
        }
        return;
    }
#endif
    for (int64_t bh = 0; bh < BH; bh++) head(bh, ws.of(0));
}

#define NNLITE_ATTENTION_INSTANTIATE(T)                                                      \
    template void attention_forward<T>(Heads<const T>, Heads<const T>, Heads<const T>,       \
                                       Heads<T>, T*, int64_t, int64_t, int64_t, int64_t, bool, \
                                       T);                                                    \
    template void attention_backward<T>(Heads<const T>, Heads<const T>, Heads<const T>,      \
                                        Heads<const T>, Heads<const T>, const T*, Heads<T>,   \
                                        Heads<T>, Heads<T>, int64_t, int64_t, int64_t, int64_t, \
                                        bool, T);
NNLITE_ATTENTION_INSTANTIATE(float)
NNLITE_ATTENTION_INSTANTIATE(double)
#undef NNLITE_ATTENTION_INSTANTIATE

}  // namespace nnlite
