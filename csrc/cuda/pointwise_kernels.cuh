// pointwise_kernels.cuh: activations, the bias gradient, softmax and softmax + cross-entropy on
// the GPU (launchers: pointwise.cu; declarations and legend: pointwise.h).
//
// CPU twins: csrc/cpu/pointwise.inc (bias_act, act_backward), csrc/cpu/softmax.inc (softmax,
// softmax_backward, softmax_xent), nnlite/ops/_optim_kernels.pyx (bias_grad).
// numpy twins: nnlite/ops/reference.py: bias_act, act_forward, act_backward, bias_grad, softmax,
// softmax_backward, softmax_cross_entropy.
//
// The math, in forms where nothing overflows to NaN for large |v| (as the twins compute it):
//   relu(v)     v < 0 ? 0 : v                    (NaN stays NaN)
//   leaky(v)    v > 0 ? v : α·v
//   tanh(v)     tanh(v)
//   sigmoid(v)  split by sign, e = exp(-|v|):  v >= 0: 1/(1 + e),  v < 0: e/(1 + e)
//   gelu(v)     ½v(1 + tanh u), u = √(2/π)(v + c v³), c = 0.044715 (the tanh approximation,
//               GPT-2), computed as v·s with s = ½(1 + tanh u) = sigmoid(2u): no cancellation
//               in 1 + tanh u for v < 0
// and the derivatives, using the forward output y where that is cheaper:
//   relu' = x > 0 · leaky' = x > 0 ? 1 : α · tanh' = 1 - y² · sigmoid' = y(1 - y)
//   gelu' = s + 2x·s(1 - s)·√(2/π)(1 + 3c x²)   (1 - tanh² u = 4s(1 - s))
//
// Softmax of a row x_1..x_C, with m = max_j x_j (so no exp overflows):
//   y_j = exp(x_j - m) / s,   s = Σ_j exp(x_j - m)
// The threads sharing a row (a warp, or a block) each keep a running (m, s) over their values,
// updated online so the row is read once for both statistics:
//   add x:           x > m:  (x, s·exp(m - x) + 1)      else  (m, s + exp(x - m))
//   merge (m1, s1) and (m2, s2):  m = max(m1, m2),  s = s1·exp(m1 - m) + s2·exp(m2 - m)
// then merge across the warp by butterfly shuffles (__shfl_xor_sync: every lane ends with the
// same bits, since each merge is symmetric) and, for a block, across the warps through shared
// memory: each warp's lane w reads warp w's result and the same butterfly runs again.
#pragma once
#include "cuda_compat.h"
#include "pointwise.h"

namespace nnl::cuda::kernels::pw {

constexpr unsigned kFull = 0xffffffffu;
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluC = 0.044715;

// ------------------------------------------------------------------------ math, per dtype
__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return exp(v); }
__device__ __forceinline__ float tanh_(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_(double v) { return tanh(v); }

template <typename T>
__device__ __forceinline__ T neg_inf() { return T(-INFINITY); }

// sigmoid(v) = 1/(1 + e^-v), split by sign so that e = exp(-|v|) <= 1 never overflows
template <typename T>
__device__ __forceinline__ T sigmoid(T v) {
    const T e = exp_(v < T(0) ? v : -v);
    return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// s = ½(1 + tanh u) = sigmoid(2u), 2u = 2√(2/π)·v·(1 + c v²)
template <typename T>
__device__ __forceinline__ T gelu_s(T v) {
    return sigmoid(v * T(2 * kSqrt2OverPi) * (T(1) + T(kGeluC) * v * v));
}

// act(v)
template <PwAct A, typename T>
__device__ __forceinline__ T act(T v, T alpha) {
    if constexpr (A == PwAct::None) return v;
    else if constexpr (A == PwAct::Relu) return v < T(0) ? T(0) : v;
    else if constexpr (A == PwAct::LeakyRelu) return v > T(0) ? v : v * alpha;
    else if constexpr (A == PwAct::Tanh) return tanh_(v);
    else if constexpr (A == PwAct::Sigmoid) return sigmoid(v);
    else return v * gelu_s(v);
}

// g · act'(x), with y = act(x)
template <PwAct A, typename T>
__device__ __forceinline__ T act_grad(T g, T x, T y, T alpha) {
    if constexpr (A == PwAct::None) return g;
    else if constexpr (A == PwAct::Relu) return g * (x > T(0) ? T(1) : T(0));  // g·0: NaN stays
    else if constexpr (A == PwAct::LeakyRelu) return g * (x > T(0) ? T(1) : alpha);
    else if constexpr (A == PwAct::Tanh) return g * (T(1) - y * y);
    else if constexpr (A == PwAct::Sigmoid) return g * y * (T(1) - y);
    else {
        const T s = gelu_s(x);
        const T poly = T(1) + T(3 * kGeluC) * x * x;                  // 1 + 3c x²
        return g * (s + T(2) * x * s * (T(1) - s) * T(kSqrt2OverPi) * poly);
    }
}

// ------------------------------------------------------------------------ elementwise
// One thread per element, grid-stride: i = the thread's global index, then + the grid's size.

// y[i] = act(x[i] + b[i mod C])  (kBias), or act(x[i]). y may be x itself (in place).
template <typename T, PwAct A, bool kBias>
__global__ void bias_act(const T* x, const T* b, T* y, long long n, long long C, T alpha) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T v = x[i];
        if constexpr (kBias) v += b[i % C];
        y[i] = act<A>(v, alpha);
    }
}

// dx[i] = g[i] · act'(x[i]), y = act(x)
template <typename T, PwAct A>
__global__ void act_backward(const T* g, const T* x, const T* y, T* dx, long long n, T alpha) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = act_grad<A>(g[i], x[i], y[i], alpha);
}

// ------------------------------------------------------------------------ bias gradient
// out[c] = Σ_r g[r, c]  (accumulate: out[c] += Σ_r g[r, c]) for g (rows, C).
// A block of kTileCols x blockDim.y threads owns kTileCols columns: thread (tx, ty) sums column
// c = tile + tx over the rows ty, ty + blockDim.y, ... (a warp reads 32 neighbouring columns of
// one row: coalesced), the blockDim.y partial sums meet in shared memory and row 0 of the block
// adds them in order. No atomics: the same bits on every run. (blockDim.y: more threads per
// column for taller g, at most kMaxRowThreads; the launcher picks it.)
constexpr int kTileCols = 32, kMaxRowThreads = 32;

template <typename T>
__global__ void bias_grad(const T* g, T* out, long long rows, long long C, int accumulate) {
    __shared__ T partial[kMaxRowThreads][kTileCols];
    const int tx = threadIdx.x, ty = threadIdx.y, row_threads = blockDim.y;
    const long long c = (long long)blockIdx.x * kTileCols + tx;
    T acc = T(0);
    if (c < C)
        for (long long r = ty; r < rows; r += row_threads) acc += g[r * C + c];
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
        T sum = partial[0][tx];
        for (int k = 1; k < row_threads; k++) sum += partial[k][tx];
        out[c] = accumulate ? out[c] + sum : sum;
    }
}

// ------------------------------------------------------------------------ row reductions
// (m, s): the running max of a set of values and Σ exp(v - m) over it. An empty set (or one of
// only -inf) is (-inf, 0) and adds nothing to a merge (no -inf - -inf = NaN); a NaN value makes
// s NaN, and with it the row, as in the twin.
template <typename T>
struct MaxSum {
    T m, s;
};

template <typename T>
__device__ __forceinline__ void add(MaxSum<T>& st, T x) {
    if (x > st.m) {                       // a new max: rescale the sum so far (exp(-inf) = 0)
        st.s = st.s * exp_(st.m - x) + T(1);
        st.m = x;
    } else if (x != neg_inf<T>()) {       // -inf adds exp(-inf) = 0: skipped, as -inf - -inf
        st.s += exp_(x - st.m);
    }
}

template <typename T>
__device__ __forceinline__ MaxSum<T> merge(MaxSum<T> a, MaxSum<T> b) {
    const T m = a.m > b.m ? a.m : b.m;
    T s = T(0);
    if (a.m != neg_inf<T>()) s += a.s * exp_(a.m - m);
    if (b.m != neg_inf<T>()) s += b.s * exp_(b.m - m);
    return {m, s};
}

template <typename T>
__device__ __forceinline__ MaxSum<T> warp_merge(MaxSum<T> v) {
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) {
        const MaxSum<T> other{__shfl_xor_sync(kFull, v.m, lane_mask),
                              __shfl_xor_sync(kFull, v.s, lane_mask)};
        v = merge(v, other);
    }
    return v;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2)
        v += __shfl_xor_sync(kFull, v, lane_mask);
    return v;
}

// The threads that share a row: a warp (kBlock false; blockDim.x / 32 rows per block at a time)
// or the whole block (kBlock true; one row per block at a time). Every thread of a team walks
// the same rows, so the team's shuffles and barriers are reached by all its threads.
struct Team {
    long long row, row_stride;   // the team's first row, and the step to its next
    int rank, size;              // this thread's place in the team, the team's size
};

template <bool kBlock>
__device__ __forceinline__ Team team() {
    if constexpr (kBlock) {
        return {(long long)blockIdx.x, (long long)gridDim.x, (int)threadIdx.x, (int)blockDim.x};
    } else {
        const int warps = blockDim.x / 32;
        return {(long long)blockIdx.x * warps + threadIdx.x / 32, (long long)gridDim.x * warps,
                (int)threadIdx.x % 32, 32};
    }
}

// The merge of the whole team's (m, s), in every thread of the team. For a block: each warp
// merges by shuffles, lane 0 posts its warp's result, and every warp merges the posted results
// (lane w takes warp w's) by the same butterfly, so all threads hold the same bits.
// `sm`, `ss`: 32 entries of shared memory.
template <bool kBlock, typename T>
__device__ __forceinline__ MaxSum<T> team_merge(MaxSum<T> v, T* sm, T* ss) {
    v = warp_merge(v);
    if constexpr (kBlock) {
        const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
        if (lane == 0) {
            sm[threadIdx.x / 32] = v.m;
            ss[threadIdx.x / 32] = v.s;
        }
        __syncthreads();
        v = lane < warps ? MaxSum<T>{sm[lane], ss[lane]} : MaxSum<T>{neg_inf<T>(), T(0)};
        __syncthreads();                  // all have read: the next row may post again
        v = warp_merge(v);
    }
    return v;
}

// Σ over the team, in every thread of the team (as team_merge, with +).
template <bool kBlock, typename T>
__device__ __forceinline__ T team_sum(T v, T* sums) {
    v = warp_sum(v);
    if constexpr (kBlock) {
        const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
        if (lane == 0) sums[threadIdx.x / 32] = v;
        __syncthreads();
        v = lane < warps ? sums[lane] : T(0);
        __syncthreads();
        v = warp_sum(v);
    }
    return v;
}

// ------------------------------------------------------------------------ softmax
// y = softmax(x) per row of x (rows, C): (m, s) in one read of the row, then y_j = exp(x_j - m)/s.
template <typename T, bool kBlock>
__global__ void softmax(const T* x, T* y, long long rows, long long C) {
    __shared__ T sm[32], ss[32];
    const Team tm = team<kBlock>();
    for (long long r = tm.row; r < rows; r += tm.row_stride) {
        const T* xr = x + r * C;
        T* yr = y + r * C;
        MaxSum<T> st{neg_inf<T>(), T(0)};
        for (long long j = tm.rank; j < C; j += tm.size) add(st, xr[j]);
        st = team_merge<kBlock>(st, sm, ss);
        const T inv = T(1) / st.s;
        for (long long j = tm.rank; j < C; j += tm.size) yr[j] = exp_(xr[j] - st.m) * inv;
    }
}

// dx = y ⊙ (g - d), d = Σ_j g_j y_j, per row (the softmax's Jacobian-vector product).
template <typename T, bool kBlock>
__global__ void softmax_backward(const T* g, const T* y, T* dx, long long rows, long long C) {
    __shared__ T sums[32];
    const Team tm = team<kBlock>();
    for (long long r = tm.row; r < rows; r += tm.row_stride) {
        const T* gr = g + r * C;
        const T* yr = y + r * C;
        T* dr = dx + r * C;
        T d = T(0);
        for (long long j = tm.rank; j < C; j += tm.size) d += gr[j] * yr[j];
        d = team_sum<kBlock>(d, sums);
        for (long long j = tm.rank; j < C; j += tm.size) dr[j] = yr[j] * (gr[j] - d);
    }
}

// Fused softmax + cross-entropy, per row n of z (N, C) with label t = labels[n]:
//   (m, s) of the row,  row_loss[n] = -log softmax(z_n)[t] = log s - (z_t - m)   (in double)
//   dz_j = exp(z_j - m) / (s·N) - [j = t] / N
// A label outside [0, C) (the wrapper checks, so never) gives a NaN loss, not a stray read.
template <typename T, bool kBlock>
__global__ void softmax_xent(const T* z, const int64_t* labels, T* dz, double* row_loss,
                             long long N, long long C) {
    __shared__ T sm[32], ss[32];
    const Team tm = team<kBlock>();
    const double inv_n = 1.0 / double(N);
    for (long long r = tm.row; r < N; r += tm.row_stride) {
        const T* zr = z + r * C;
        T* dr = dz + r * C;
        const long long t = labels[r];
        const bool valid = t >= 0 && t < C;
        MaxSum<T> st{neg_inf<T>(), T(0)};
        for (long long j = tm.rank; j < C; j += tm.size) add(st, zr[j]);
        st = team_merge<kBlock>(st, sm, ss);
        if (tm.rank == 0)
            row_loss[r] = valid ? log(double(st.s)) - (double(zr[t]) - double(st.m)) : double(NAN);
        const T scale = T(inv_n / double(st.s));
        for (long long j = tm.rank; j < C; j += tm.size)
            dr[j] = exp_(zr[j] - st.m) * scale - (j == t ? T(inv_n) : T(0));
    }
}

// loss[0] = Σ_n row_loss[n] / N, by one block in a fixed order (deterministic): thread i sums
// rows i, i + blockDim.x, ..., then the block sums the threads' sums (team_sum).
__global__ void mean_rows(const double* row_loss, long long N, double* loss) {
    __shared__ double sums[32];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < N; i += blockDim.x) acc += row_loss[i];
    acc = team_sum<true>(acc, sums);
    if (threadIdx.x == 0) loss[0] = acc / double(N);
}

}  // namespace nnl::cuda::kernels::pw
