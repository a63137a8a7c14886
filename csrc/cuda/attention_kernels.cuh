// attention_kernels.cuh: flash attention on the GPU, forward and backward (FlashAttention-2,
// Dao 2023; the same ladder as llm.c's dev/cuda/attention_forward.cu and the CPU kernel).
//
// CPU twin:   csrc/cpu/attention.cpp (the same tiling, on OpenMP threads and SIMD)
// numpy twin: nnlite/ops/reference.py: attention, attention_backward
//
// Shapes (B batch, H heads, T sequence length, D head size; B·H merged into BH, C-contiguous):
//     q, k, v, out, dout, dq, dk, dv   (BH, T, D)
//     lse, delta                       (BH, T)
//
// Forward, per head:  S = Q Kᵀ · scale,  S[i, j] = -inf for j > i (causal),
//                     P = softmax(S) row by row,  out = P V,  lse[i] = log Σ_j exp(S[i, j])
// Backward:           Δ[i] = Σ_d dO[i, d] O[i, d]
//                     dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - Δ),
//                     dQ = dS K · scale,  dK = dSᵀ Q · scale
// Nothing of size T x T is ever stored: P is recomputed tile by tile from the saved lse.
//
// Tiles: BR query rows and BC = BR keys (so causal diagonal tiles line up; BR = 32 for float,
// 16 for double: see attention.cu). Every row (query row in the forward and the dQ pass, key
// row in the dK/dV pass) is owned by kP = 4 adjacent threads of one warp, so the row's
// reductions are two xor-shuffles and its shared scratch row needs only __syncwarp:
//     thread (r, p) = (threadIdx.x / kP, threadIdx.x % kP)
//     its keys (or queries) in a tile:   c = p, p + kP, p + 2kP, ...     (BC / kP of them)
//     its slice of the head dimension:   d = p, p + kP, p + 2kP, ...     (DPT of them, D <= kP·DPT)
// so a thread keeps DPT accumulators in registers (DPT is a template parameter). Shared memory
// holds whole rows of D, with an odd row stride `ld` so that the rows read together sit in
// different banks.
//
// What the shim (tests) cannot show: speed. No tensor cores, no float atomics: every output
// element is written by one thread after a fixed-order sum, so results are reproducible.
#pragma once
#include "cuda_compat.h"

namespace nnl::cuda::kernels {

// `#pragma unroll` for nvcc (the register arrays must stay in registers); g++ (the shim) does
// not know the pragma and -Wall would say so
#if defined(__CUDACC__)
#define NNL_ATTN_UNROLL _Pragma("unroll")
#else
#define NNL_ATTN_UNROLL
#endif

constexpr int kP = 4;                       // threads per row
constexpr unsigned kFull = 0xffffffffu;     // every lane of the warp takes part in the shuffles

__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return exp(x); }
__device__ __forceinline__ float log_(float x) { return logf(x); }
__device__ __forceinline__ double log_(double x) { return log(x); }
template <typename T>
__device__ __forceinline__ T max_(T a, T b) { return a < b ? b : a; }

// shared-memory row stride for rows of D: odd, so that rows r and r+1 start in different banks
__host__ __device__ inline int smem_ld(int D) { return D | 1; }

// Rows [row0, row0 + rows) of a (T, D) matrix into shared memory (row stride ld), zeros for the
// rows past T. Consecutive threads read consecutive elements (the rows are contiguous).
template <typename T>
__device__ void load_rows(T* dst, int ld, const T* src, int row0, int rows, int T_, int D) {
    const int n = rows * D;
    for (int idx = threadIdx.x; idx < n; idx += blockDim.x) {
        const int r = idx / D, d = idx - r * D;
        dst[r * ld + d] = row0 + r < T_ ? src[(long long)(row0 + r) * D + d] : T(0);
    }
}

// Σ_d a[d] b[d] over shared-memory rows
template <typename T>
__device__ __forceinline__ T dot(const T* a, const T* b, int D) {
    T s = T(0);
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

// ------------------------------------------------------------------------------- forward
//
// One block per (head, query tile of BR rows); blockIdx.x = head · ntiles + tile, the last
// tiles first (under causal they see the most keys). For each key tile j (causal: only the
// tiles up to the diagonal; those wholly above it are skipped), with the running row max m,
// the running row sum l and the unnormalised output O (all start at -inf, 0, 0):
//     S = Q_i K_jᵀ · scale              (masked: -inf for keys past the query, or past T)
//     m' = max(m, rowmax S);  P = exp(S - m');  α = exp(m - m')
//     l = α l + rowsum P;  O = α O + P V_j;  m = m'
// and at the end out_i = O / l, lse_i = m + log l. The rescaling by α keeps every exp()
// argument <= 0 (no overflow), and the result is exactly softmax(S) V.
// out == nullptr: only lse (the backward's row statistics when the caller has none): no V, no O.
//
// Shared memory: Q_i, K_j, V_j (BR x ld each), P (BR x BC).
template <typename T, int BR, int DPT>
__global__ void __launch_bounds__(BR * kP)
attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int T_, int D,
                  int ntiles, int causal, T scale) {
    constexpr int BC = BR;
    const int ld = smem_ld(D);
    NNL_DYNAMIC_SHARED(T, smem);
    T* Qs = smem;
    T* Ks = Qs + BR * ld;
    T* Vs = Ks + BC * ld;
    T* Ps = Vs + BC * ld;

    const int r = threadIdx.x / kP, p = threadIdx.x % kP;
    const long long bh = blockIdx.x / ntiles;
    const int i0 = (ntiles - 1 - int(blockIdx.x % ntiles)) * BR;
    const int i = i0 + r;                                   // this thread's query
    const long long head = bh * T_ * (long long)D;
    q += head;
    k += head;
    v += head;

    load_rows(Qs, ld, q, i0, BR, T_, D);                    // (the loop's barrier publishes it)
    T m = -INFINITY;                                         // running max of row i
    T l = T(0);                                              // this thread's share of Σ exp(S - m)
    T o[DPT];                                                // O[i, p + kP·t], unnormalised
    NNL_ATTN_UNROLL
    for (int t = 0; t < DPT; t++) o[t] = T(0);

    const int kend = causal ? min(T_, i0 + BR) : T_;        // keys that any row of the tile sees
    for (int j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();                                     // the last tile's K, V, P are read
        load_rows(Ks, ld, k, j0, BC, T_, D);
        if (out) load_rows(Vs, ld, v, j0, BC, T_, D);
        __syncthreads();

        // S[i, j] = scale · Q[i]·K[j] for this thread's keys; their max, then the row's
        T s[BC / kP];
        T m_new = m;
        NNL_ATTN_UNROLL
        for (int t = 0; t < BC / kP; t++) {
            const int c = p + kP * t, j = j0 + c;
            const bool seen = j < T_ && (!causal || j <= i);
            s[t] = seen ? scale * dot(Qs + r * ld, Ks + c * ld, D) : T(-INFINITY);
            m_new = max_(m_new, s[t]);
        }
        for (int lane = 1; lane < kP; lane *= 2) m_new = max_(m_new, __shfl_xor_sync(kFull, m_new, lane));

        // rescale by α = exp(m - m'); m' = -inf only while no key has been seen (then l, O are
        // 0 and any finite reference keeps exp(-inf - ref) = 0 instead of NaN)
        const T ref = m_new == T(-INFINITY) ? T(0) : m_new;
        const T alpha = exp_(m - ref);
        l *= alpha;
        NNL_ATTN_UNROLL
        for (int t = 0; t < DPT; t++) o[t] *= alpha;
        m = m_new;
        NNL_ATTN_UNROLL
        for (int t = 0; t < BC / kP; t++) {
            const T pr = exp_(s[t] - ref);                   // P[i, j], 0 where masked
            l += pr;
            Ps[r * BC + p + kP * t] = pr;
        }
        if (out) {
            __syncwarp();                                    // the row's P is in (its kP threads)
            // O[i, d] += Σ_c P[i, c] V[c, d]
            for (int c = 0; c < BC; c++) {
                const T pr = Ps[r * BC + c];
                NNL_ATTN_UNROLL
                for (int t = 0; t < DPT; t++) {
                    const int d = p + kP * t;
                    if (d < D) o[t] += pr * Vs[c * ld + d];
                }
            }
        }
    }
    for (int lane = 1; lane < kP; lane *= 2) l += __shfl_xor_sync(kFull, l, lane);  // Σ over the row
    if (i < T_) {
        if (out) {
            const T inv = T(1) / l;
            NNL_ATTN_UNROLL
            for (int t = 0; t < DPT; t++) {
                const int d = p + kP * t;
                if (d < D) out[head + (long long)i * D + d] = o[t] * inv;
            }
        }
        if (p == 0) lse[bh * T_ + i] = m + log_(l);
    }
}

// ------------------------------------------------------------------------------- backward

// Δ[i] = Σ_d dO[i, d] O[i, d], one thread per row of the (BH·T, D) matrices. (Each thread reads
// its own row: not coalesced, but this is one pass over O and dO beside the T² work below.)
template <typename T>
__global__ void attention_backward_delta(const T* out, const T* dout, T* delta, long long rows,
                                         int D) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    T s = T(0);
    for (int d = 0; d < D; d++) s += dout[i * D + d] * out[i * D + d];
    delta[i] = s;
}

// The entries of one (query i, key j) pair that both backward passes recompute:
//     P = exp(scale · Q[i]·K[j] - lse[i]),  dP = dO[i]·V[j],  dS = P (dP - Δ[i])
// 0 for a masked pair (the twin's dS is 0 there too, even where Δ is not finite).
template <typename T>
struct PairGrad {
    T p, ds;
};
template <typename T>
__device__ __forceinline__ PairGrad<T> pair_grad(bool seen, const T* q, const T* kr, const T* dO,
                                                 const T* vr, T lse_i, T delta_i, int D,
                                                 T scale) {
    if (!seen) return {T(0), T(0)};
    const T pr = exp_(scale * dot(q, kr, D) - lse_i);
    const T dp = dot(dO, vr, D);
    return {pr, pr * (dp - delta_i)};
}

// dK and dV of one key tile j of BC rows: one block per (head, key tile), tile 0 first (under
// causal it sees every query tile). For each query tile i (causal: i >= j):
//     P = exp(S - lse_i),  dS = P ⊙ (dO_i V_jᵀ - Δ_i)     (BR x BC, recomputed)
//     dV_j += Pᵀ dO_i,  dK_j += dSᵀ Q_i                   (the scale is applied once at the end)
// Thread (c, p) owns key row c: its P and dS column goes through shared memory (Pt, dSt: one
// row per key) to the kP threads of that key, which add it up over the tile's queries.
//
// Shared memory: K_j, V_j, Q_i, dO_i (BR x ld each), Pt, dSt (BC x BR), lse_i, Δ_i (BR).
template <typename T, int BR, int DPT>
__global__ void __launch_bounds__(BR * kP)
attention_backward_dkdv(const T* q, const T* k, const T* v, const T* dout, const T* lse,
                        const T* delta, T* dk, T* dv, int T_, int D, int ntiles, int causal,
                        T scale) {
    constexpr int BC = BR;
    const int ld = smem_ld(D);
    NNL_DYNAMIC_SHARED(T, smem);
    T* Ks = smem;
    T* Vs = Ks + BC * ld;
    T* Qs = Vs + BC * ld;
    T* dOs = Qs + BR * ld;
    T* Pt = dOs + BR * ld;
    T* dSt = Pt + BC * BR;
    T* Ls = dSt + BC * BR;
    T* Ds = Ls + BR;

    const int c = threadIdx.x / kP, p = threadIdx.x % kP;
    const long long bh = blockIdx.x / ntiles;
    const int j0 = int(blockIdx.x % ntiles) * BC;
    const int j = j0 + c;                                    // this thread's key
    const long long head = bh * T_ * (long long)D;
    q += head;
    k += head;
    v += head;
    dout += head;
    lse += bh * T_;
    delta += bh * T_;

    load_rows(Ks, ld, k, j0, BC, T_, D);
    load_rows(Vs, ld, v, j0, BC, T_, D);
    T dk_acc[DPT], dv_acc[DPT];                              // dK[j, p + kP·t], dV[j, p + kP·t]
    NNL_ATTN_UNROLL
    for (int t = 0; t < DPT; t++) dk_acc[t] = dv_acc[t] = T(0);

    for (int i0 = causal ? j0 : 0; i0 < T_; i0 += BR) {
        __syncthreads();                                     // the last tile's Q, dO, Pt, dSt read
        load_rows(Qs, ld, q, i0, BR, T_, D);
        load_rows(dOs, ld, dout, i0, BR, T_, D);
        for (int r = threadIdx.x; r < BR; r += blockDim.x) {
            Ls[r] = i0 + r < T_ ? lse[i0 + r] : T(0);
            Ds[r] = i0 + r < T_ ? delta[i0 + r] : T(0);
        }
        __syncthreads();

        // P[i, j] and dS[i, j] for this thread's queries i = i0 + p + kP·t
        for (int t = 0; t < BR / kP; t++) {
            const int r = p + kP * t, i = i0 + r;
            const bool seen = i < T_ && j < T_ && (!causal || j <= i);
            const PairGrad<T> g = pair_grad(seen, Qs + r * ld, Ks + c * ld, dOs + r * ld,
                                            Vs + c * ld, Ls[r], Ds[r], D, scale);
            Pt[c * BR + r] = g.p;
            dSt[c * BR + r] = g.ds;
        }
        __syncwarp();                                        // key c's column is in
        // dV[j, d] += Σ_r P[r, j] dO[r, d];  dK[j, d] += Σ_r dS[r, j] Q[r, d]
        for (int r = 0; r < BR; r++) {
            const T pr = Pt[c * BR + r], ds = dSt[c * BR + r];
            NNL_ATTN_UNROLL
            for (int t = 0; t < DPT; t++) {
                const int d = p + kP * t;
                if (d < D) {
                    dv_acc[t] += pr * dOs[r * ld + d];
                    dk_acc[t] += ds * Qs[r * ld + d];
                }
            }
        }
    }
    if (j < T_) {
        NNL_ATTN_UNROLL
        for (int t = 0; t < DPT; t++) {
            const int d = p + kP * t;
            if (d < D) {
                dk[head + (long long)j * D + d] = dk_acc[t] * scale;
                dv[head + (long long)j * D + d] = dv_acc[t];
            }
        }
    }
}

// dQ of one query tile i of BR rows, a second pass so that no two blocks add into one dQ row
// (no atomics: reproducible): one block per (head, query tile), the last tiles first. For each
// key tile j (causal: j <= i):
//     dS = P ⊙ (dO_i V_jᵀ - Δ_i)  (recomputed as above),   dQ_i += dS K_j   (· scale at the end)
// Thread (r, p) owns query row r; the row's dS goes through shared memory to its kP threads.
//
// Shared memory: Q_i, dO_i, K_j, V_j (BR x ld each), dS (BR x BC), lse_i, Δ_i (BR).
template <typename T, int BR, int DPT>
__global__ void __launch_bounds__(BR * kP)
attention_backward_dq(const T* q, const T* k, const T* v, const T* dout, const T* lse,
                      const T* delta, T* dq, int T_, int D, int ntiles, int causal, T scale) {
    constexpr int BC = BR;
    const int ld = smem_ld(D);
    NNL_DYNAMIC_SHARED(T, smem);
    T* Qs = smem;
    T* dOs = Qs + BR * ld;
    T* Ks = dOs + BR * ld;
    T* Vs = Ks + BC * ld;
    T* dS = Vs + BC * ld;
    T* Ls = dS + BR * BC;
    T* Ds = Ls + BR;

    const int r = threadIdx.x / kP, p = threadIdx.x % kP;
    const long long bh = blockIdx.x / ntiles;
    const int i0 = (ntiles - 1 - int(blockIdx.x % ntiles)) * BR;
    const int i = i0 + r;                                    // this thread's query
    const long long head = bh * T_ * (long long)D;
    q += head;
    k += head;
    v += head;
    dout += head;
    lse += bh * T_;
    delta += bh * T_;

    load_rows(Qs, ld, q, i0, BR, T_, D);                     // (the loop's barrier publishes them)
    load_rows(dOs, ld, dout, i0, BR, T_, D);
    for (int rr = threadIdx.x; rr < BR; rr += blockDim.x) {
        Ls[rr] = i0 + rr < T_ ? lse[i0 + rr] : T(0);
        Ds[rr] = i0 + rr < T_ ? delta[i0 + rr] : T(0);
    }
    T dq_acc[DPT];                                           // dQ[i, p + kP·t]
    NNL_ATTN_UNROLL
    for (int t = 0; t < DPT; t++) dq_acc[t] = T(0);

    const int kend = causal ? min(T_, i0 + BR) : T_;
    for (int j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();                                     // the last tile's K, dS read
        load_rows(Ks, ld, k, j0, BC, T_, D);
        load_rows(Vs, ld, v, j0, BC, T_, D);
        __syncthreads();

        // dS[i, j] for this thread's keys j = j0 + p + kP·t
        for (int t = 0; t < BC / kP; t++) {
            const int c = p + kP * t, j = j0 + c;
            const bool seen = i < T_ && j < T_ && (!causal || j <= i);
            dS[r * BC + c] = pair_grad(seen, Qs + r * ld, Ks + c * ld, dOs + r * ld, Vs + c * ld,
                                       Ls[r], Ds[r], D, scale).ds;
        }
        __syncwarp();                                        // row r's dS is in
        // dQ[i, d] += Σ_c dS[i, c] K[c, d]
        for (int cc = 0; cc < BC; cc++) {
            const T ds = dS[r * BC + cc];
            NNL_ATTN_UNROLL
            for (int t = 0; t < DPT; t++) {
                const int d = p + kP * t;
                if (d < D) dq_acc[t] += ds * Ks[cc * ld + d];
            }
        }
    }
    if (i < T_) {
        NNL_ATTN_UNROLL
        for (int t = 0; t < DPT; t++) {
            const int d = p + kP * t;
            if (d < D) dq[head + (long long)i * D + d] = dq_acc[t] * scale;
        }
    }
}

}  // namespace nnl::cuda::kernels
