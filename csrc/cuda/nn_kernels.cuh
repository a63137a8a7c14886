// nn_kernels.cuh: the transformer's small kernels and the optimizers on the GPU.
//
//   LayerNorm forward      y = (x - μ)·rstd·γ + β,  μ = mean(x),  rstd = 1/√(var(x) + ε)
//                          (over the last axis; one warp per row)
//   LayerNorm backward     x̂ = (x - μ)·rstd,  dx̂ = g ⊙ γ
//                          dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂ ⊙ x̂))   (one warp per row)
//                          dγ = Σ_rows g ⊙ x̂,  dβ = Σ_rows g               (a column reduction)
//   embedding              out[i, :] = table[ids[i], :]
//   embedding backward     dtable[ids[i], :] += g[i, :]   (one thread owns one column)
//   SGD, RMSprop, Adam(W)  the update rules of nnlite/ops/reference.py, element by element;
//                          Adam over many tensors in one launch (a table of pointers)
//   sum of squares         Σ_k Σ_i x_ki², in double, by fixed blocks (deterministic)
//
// CPU twins: csrc/cpu/layernorm.cpp, embedding.cpp, adam_many.cpp, sum_squares.cpp and
// nnlite/ops/_optim_kernels.pyx (SGD, RMSprop). numpy twins (nnlite/ops/reference.py):
// layernorm, layernorm_backward, embedding, embedding_backward, sgd_update, rmsprop_update,
// adam_update, adam_update_many, sum_squares_many.
//
// Every reduction here has a fixed shape (which thread adds what, in which order), so a result
// does not depend on timing: no float atomics anywhere in the family.
#pragma once
#include "cuda_compat.h"

namespace nnl::cuda::kernels {

// 1/√x in the array's precision (rsqrtf is approximate on a GPU; the twin divides)
__device__ __forceinline__ float nn_rsqrt(float x) { return 1.0f / sqrtf(x); }
__device__ __forceinline__ double nn_rsqrt(double x) { return 1.0 / sqrt(x); }
__device__ __forceinline__ float nn_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double nn_sqrt(double x) { return sqrt(x); }

// a·b rounded on its own: nvcc would otherwise fuse a·b + c into one FMA (one rounding), and
// the optimizers' updates would differ from the twin's in the last bit. Used where the twin's
// exact arithmetic matters (the optimizer steps).
#if defined(__CUDACC__)
__device__ __forceinline__ float nn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double nn_mul(double a, double b) { return __dmul_rn(a, b); }
#else
template <class T>
inline T nn_mul(T a, T b) { return a * b; }
#endif

// The sum of v over the 32 lanes of a warp, left in every lane (butterfly: after the step with
// offset o, each lane holds the sum of a group of 2·o lanes).
template <class T>
__device__ __forceinline__ T nn_warp_sum(T v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ---------------------------------------------------------------------------- LayerNorm
// One warp per row of C values: lane l reads columns l, l + 32, ... (coalesced), the warp sums
// by shuffles. Two passes over the row (mean, then the squared deviations), as the twin does:
// the one-pass Σx² - (Σx)²/C loses digits when |μ| ≫ σ. A warp whose row is past the end
// returns as a whole, so every shuffle still has its 32 lanes.
template <class T>
__global__ void nn_layernorm_forward(const T* x, const T* gamma, const T* beta, T eps,
                                     long long rows, int C, T* y, T* mean, T* rstd) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;
    const T* xr = x + row * C;
    T* yr = y + row * C;
    T s = 0;
    for (int c = lane; c < C; c += 32) s += xr[c];
    const T mu = nn_warp_sum(s) / T(C);
    T ss = 0;
    for (int c = lane; c < C; c += 32) {
        const T d = xr[c] - mu;
        ss += d * d;
    }
    const T r = nn_rsqrt(nn_warp_sum(ss) / T(C) + eps);
    for (int c = lane; c < C; c += 32) yr[c] = (xr[c] - mu) * r * gamma[c] + beta[c];
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dx, one warp per row: the two row means of the formula above, then dx element by element.
template <class T>
__global__ void nn_layernorm_backward_dx(const T* g, const T* x, const T* gamma, const T* mean,
                                         const T* rstd, long long rows, int C, T* dx) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;
    const T* gr = g + row * C;
    const T* xr = x + row * C;
    const T mu = mean[row], r = rstd[row];
    T a = 0, b = 0;                       // Σ dx̂ and Σ dx̂ ⊙ x̂ over the row
    for (int c = lane; c < C; c += 32) {
        const T dxhat = gr[c] * gamma[c];
        a += dxhat;
        b += dxhat * ((xr[c] - mu) * r);
    }
    const T ma = nn_warp_sum(a) / T(C), mb = nn_warp_sum(b) / T(C);
    for (int c = lane; c < C; c += 32) {
        const T xhat = (xr[c] - mu) * r;
        dx[row * C + c] = r * (gr[c] * gamma[c] - ma - xhat * mb);
    }
}

// dγ and dβ: sums over the rows, per column. A block of 32 × 8 threads owns 32 columns: thread
// (tx, ty) adds rows ty, ty + 8, ... of column tx (neighbouring threads read neighbouring
// columns: coalesced), then the 8 partial sums of a column are added in shared memory, always
// in the same order. Launch: grid ⌈C/32⌉, block (32, 8).
template <class T>
__global__ void nn_layernorm_backward_params(const T* g, const T* x, const T* mean,
                                             const T* rstd, long long rows, int C, T* dgamma,
                                             T* dbeta) {
    __shared__ T part_g[8][33], part_b[8][33];      // 33: no shared-memory bank conflicts
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    T sg = 0, sb = 0;
    if (c < C) {
        for (long long r = ty; r < rows; r += 8) {
            const T gv = g[r * C + c];
            sg += gv * ((x[r * C + c] - mean[r]) * rstd[r]);
            sb += gv;
        }
    }
    part_g[ty][tx] = sg;
    part_b[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < C) {
        T a = 0, b = 0;
        for (int k = 0; k < 8; k++) {
            a += part_g[k][tx];
            b += part_b[k][tx];
        }
        dgamma[c] = a;
        dbeta[c] = b;
    }
}

// ---------------------------------------------------------------------------- embedding
// out[i, c] = table[ids[i], c]: one thread per output element (a grid-stride loop).
template <class T>
__global__ void nn_embedding_forward(const long long* ids, const T* table, long long n, int C,
                                     T* out) {
    const long long total = n * C;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / C;
        out[e] = table[ids[i] * C + (e - i * C)];
    }
}

// dtable[ids[i], c] += g[i, c] for i = 0, 1, ..., n-1. Repeated ids make this a scatter-add:
// thread c owns column c and walks the ids in order, so no two threads ever write one address
// and the sums run in the twin's order (np.add.at): the same bits, no atomics. The cost is n
// dependent steps per thread, with C threads in all (parallel over columns only), which is
// fine for a token embedding's backward (n = batch·block tokens, once per step).
template <class T>
__global__ void nn_embedding_backward(const long long* ids, const T* g, long long n, int C,
                                      T* dtable) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (long long i = 0; i < n; i++) dtable[ids[i] * C + c] += g[i * C + c];
}

// ---------------------------------------------------------------------------- optimizers
// Each element is independent: a grid-stride loop, the twin's arithmetic in the array's dtype.

// SGD: g ← g + λp;  v ← μv + g;  p ← p - lr·(nesterov ? g + μv : v)   (plain SGD when μ = 0)
template <class T>
__global__ void nn_sgd_update(T* p, const T* grad, T* vel, long long n, T lr, T momentum,
                              int nesterov, T wd) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T g = wd != T(0) ? grad[i] + nn_mul(wd, p[i]) : grad[i];
        if (momentum != T(0)) {
            const T v = nn_mul(momentum, vel[i]) + g;
            vel[i] = v;
            g = nesterov ? g + nn_mul(momentum, v) : v;
        }
        p[i] -= nn_mul(lr, g);
    }
}

// RMSprop: g ← g + λp;  s ← αs + (1-α)g²;  p ← p - lr·g/(√s + ε)
template <class T>
__global__ void nn_rmsprop_update(T* p, const T* grad, T* sq, long long n, T lr, T alpha,
                                  T one_minus_alpha, T eps, T wd) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T g = wd != T(0) ? grad[i] + nn_mul(wd, p[i]) : grad[i];
        const T s = nn_mul(alpha, sq[i]) + nn_mul(nn_mul(one_minus_alpha, g), g);
        sq[i] = s;
        p[i] -= nn_mul(lr, g) / (nn_sqrt(s) + eps);
    }
}

// Adam / AdamW over many tensors in one launch ("multi-tensor apply", as in apex and PyTorch's
// fused optimizers). The tensors are described by device tables: their pointers, sizes and
// weight decays, and first_block[i], the first block of tensor i (block b works on tensor i
// with first_block[i] <= b < first_block[i + 1], elements from (b - first_block[i])·chunk).
// Per element, with bc1 = 1 - β₁ᵗ and bc2 = 1 - β₂ᵗ:
//   g ← g + λp (Adam)  or  p ← p·(1 - lr·λ) (AdamW);  m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²
//   p ← p - lr·(m/bc1) / (√(v/bc2) + ε)
template <class T>
struct AdamArgs {
    T lr, b1, omb1, b2, omb2, eps, bc1, bc2;   // omb = 1 - β, rounded once from double
    int decoupled;
};

template <class T>
__global__ void nn_adam_many(T* const* ps, const T* const* gs, T* const* ms, T* const* vs,
                             const long long* sizes, const double* wds,
                             const long long* first_block, int ntensors, long long chunk,
                             AdamArgs<T> a) {
    // which tensor this block works on: the last i with first_block[i] <= blockIdx.x
    int lo = 0, hi = ntensors - 1;
    const long long b = blockIdx.x;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (first_block[mid] <= b) lo = mid; else hi = mid - 1;
    }
    const int t = lo;
    const long long start = (b - first_block[t]) * chunk;
    const long long end = start + chunk < sizes[t] ? start + chunk : sizes[t];
    T* p = ps[t];
    const T* gr = gs[t];
    T* m = ms[t];
    T* v = vs[t];
    const T wd = T(wds[t]);
    const T decay = T(1.0 - double(a.lr) * wds[t]);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        T g = gr[i];
        T pv = p[i];
        if (wd != T(0)) {
            if (a.decoupled) pv = nn_mul(pv, decay);
            else g = g + nn_mul(wd, pv);
        }
        const T mv = nn_mul(a.b1, m[i]) + nn_mul(a.omb1, g);
        const T vv = nn_mul(a.b2, v[i]) + nn_mul(nn_mul(a.omb2, g), g);
        m[i] = mv;
        v[i] = vv;
        p[i] = pv - nn_mul(a.lr, mv / a.bc1) / (nn_sqrt(vv / a.bc2) + a.eps);
    }
}

// ---------------------------------------------------------------------------- sum of squares
// Stage 1: block b of tensor t (the same block table as Adam's) adds x² over its chunk in
// double: each thread a strided part, then the block's threads by shuffles and shared memory;
// partial[b] = the block's sum. Stage 2 (nn_sum_partials, one block): the partials in order.
// Fixed blocks and fixed reduction trees: the same bits on every run.
template <class T>
__global__ void nn_sum_squares(const T* const* xs, const long long* sizes,
                               const long long* first_block, int ntensors, long long chunk,
                               double* partial) {
    __shared__ double warp_sums[32];
    int lo = 0, hi = ntensors - 1;
    const long long b = blockIdx.x;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (first_block[mid] <= b) lo = mid; else hi = mid - 1;
    }
    const long long start = (b - first_block[lo]) * chunk;
    const long long end = start + chunk < sizes[lo] ? start + chunk : sizes[lo];
    const T* x = xs[lo];
    double s = 0;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double v = double(x[i]);
        s += v * v;
    }
    s = nn_warp_sum(s);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        double w = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
        w = nn_warp_sum(w);
        if (lane == 0) partial[b] = w;
    }
}

// out[0] = Σ partial[0..n) by one block: thread k adds k, k + blockDim, ..., then the block.
__global__ void nn_sum_partials(const double* partial, long long n, double* out) {
    __shared__ double warp_sums[32];
    double s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    s = nn_warp_sum(s);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        double w = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
        w = nn_warp_sum(w);
        if (lane == 0) out[0] = w;
    }
}

}  // namespace nnl::cuda::kernels
