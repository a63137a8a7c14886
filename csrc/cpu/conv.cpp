// 2-D convolution (forward, input and weight gradients), max/avg pooling and BatchNorm, NCHW.
//
// Convolution: 3 x 3 windows at stride 1 in float32 (with 16+ channels in and out) take
// Winograd's minimal filtering, 16 GEMMs over 2 x 2 output tiles or, for 7 x 7 planes and
// multiples of 4, 36 over 4 x 4 tiles (winograd_conv, winograd4_weight_grad below);
// every other convolution is im2col + the packed GEMM (cpu/gemm.h), a chunk of B images at a
// time:
//
//   cols (C·KH·KW, B·L),  cols[(c, i, j), (b, oh, ow)] = xpad[n0 + b, c, oh·sh + i·dh, ow·sw + j·dw]
//   forward       out_g (O/G, B·L)           = W_g (O/G, C/G·KH·KW) @ cols_g; y[n0 + b] = out (+ b)
//   weight grad   dW_g (O/G, C/G·KH·KW)     += dout_g (O/G, B·L) @ cols_gᵀ      over chunks
//   input grad    dcols_g (C/G·KH·KW, B·L)   = W_gᵀ @ dout_g;  dx[n0 + b] = col2im(dcols)
//   bias grad     db[o] = Σ_{n, l} dout[n, o, l]
// (dout_g: the chunk's output gradient gathered into rows (O/G, B·L), one copy.)
//
// Why im2col + GEMM and not a direct convolution: the GEMM is packed and blocked for the
// cache and already tuned per ISA (cpu/gemm.cpp); after im2col every conv of a CNN is one
// GEMM with K = C·KH·KW (9 … 600) and N = L (a few hundred), shapes on which it runs near
// its peak, while a direct loop nest would need its own register blocking per kernel size.
// The price is the cols buffer and one pass to build it, small next to the GEMM for 3×3
// kernels (measured: benchmarks/bench_cnn.py).
//
// Chunks of images, not single images: one image's GEMM is small (64 × 196 × 288 for the
// MNIST CNN's middle conv), and each GEMM call starts a thread team and waits at barriers
// between packing and computing; B images at once make N = B·L columns (the weight gradient:
// K = B·L), a few calls per batch instead of hundreds. B keeps cols under 1 MiB (a whole batch
// would be ~100 MB), in L2. Threads (for_chunks): with two chunks or more, each thread runs
// whole chunks alone; a batch of one chunk is split inside it (the GEMM threads itself,
// im2col/col2im split the (image, channel) pairs: each owns its rows of cols and its plane of
// dx, no races). The weight gradient is summed in parts fixed by the sizes, each over a run of
// chunks in order, then part by part: the same bits for any thread count.
//
// Pooling: threads split the N·C planes. max pooling records the argmax (h·W + w within the
// plane; the first maximum in window order, as numpy's argmax) and its backward adds dout
// there; avg pooling counts padding in the average (PyTorch's count_include_pad=True).
//
// BatchNorm over x (N, C, M), M = H·W: one thread per channel (its N rows of M), row kernels
// in conv.inc over simd::Vec, compiled per ISA. Row sums are added in double in row order.
//   forward   μ = Σx/NM, σ² = Σ(x - μ)²/NM (two passes), rstd = 1/√(σ² + ε), y = a·x + b
//             with a = rstd·γ, b = β - μ·a
//   backward  dγ = Σ g·x̂, dβ = Σ g, dx = rstd·γ·(g - dβ/NM - x̂·dγ/NM), written as
//             dx = A·g + B·x + K  (A = rstd·γ, B = -A·rstd·dγ/NM, K = -A·dβ/NM - B·μ)
//             with g = dout
// A fused ReLU (relu = true; the MNIST CNN's BatchNorm → ReLU): the forward writes
// y = max(0, a·x + b) in the same pass, and the backward, given that y, uses g = dout·[y > 0] in
// both passes: one pass over the activations fewer each way than BatchNorm then ReLU, with the
// same values (the same row kernels, the mask applied as each row is read).
//
// numpy twins: nnlite/ops/reference.py (im2col, col2im, conv2d, conv2d_input_grad,
// conv2d_backward, max_pool2d(_backward), avg_pool2d(_backward), batchnorm(_backward,
// _inference)).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "cpu/conv.h"
#include "cpu/gemm.h"

#define NNLITE_KERNELS "cpu/conv.inc"
#include "common/foreach_isa.h"

namespace nnlite {

namespace {

// The columns [ow0, ow1) of output row oh whose input column ow·sw - pw + j·dw lies in [0, W).
inline void valid_cols(int64_t W, int64_t Wo, int64_t sw, int64_t off, int64_t* ow0,
                       int64_t* ow1) {
    // iw = ow·sw + off >= 0  ⇔  ow >= ceil(-off / sw);  iw < W  ⇔  ow < ceil((W - off) / sw)
    auto ceil_div = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
    *ow0 = std::clamp<int64_t>(ceil_div(-off, sw), 0, Wo);
    *ow1 = std::clamp<int64_t>(ceil_div(W - off, sw), *ow0, Wo);
}

// The output rows oh whose input row oh·sh - ph + i·dh lies in [0, H): [*oh0, *oh1).
inline void valid_rows(const ConvGeom& g, int64_t i, int64_t* oh0, int64_t* oh1) {
    valid_cols(g.H, g.Ho, g.sh, i * g.dh - g.ph, oh0, oh1);
}

// "Same" geometry along both axes at unit stride (the CNN's 3 x 3, padding 1): an output plane
// has the input plane's row length (Wo == W), so output pixel (oh, ow) of row (c, i, j) reads
// input element (oh, ow) + a constant shift, and the valid part of the whole row is one
// contiguous run of the input. Copied as one run instead of Ho runs of Wo: the per-run memcpy
// calls and fills cost ~4 ns an element on the MNIST CNN's 14 x 14 planes, more than the copy.
inline bool shifted_planes(const ConvGeom& g) {
    return g.sh == 1 && g.sw == 1 && g.Wo == g.W;
}

// Small planes (the padded plane up to kPadPlane elements: a CNN's 7 x 7 to 28 x 28 maps):
// channel c's plane is first copied into a zero-padded plane on the stack, (H + 2ph) x
// (W + 2pw), which holds every pixel any window reads, so each output row of each kernel tap
// is a plain copy from it: no bounds, no fills, no library calls per row. On 7 x 7 planes
// the bounds-checked runs (a memcpy and two fills per 7-pixel row) were a third of the MNIST
// CNN's last conv; col2im accumulates into the padded plane the same way and copies its
// interior out (dx sums its taps in (i, j) order from 0, as the other paths do).
constexpr int64_t kPadPlane = 4096;

// GCC turns a copy loop into a memcpy call (-ftree-loop-distribute-patterns), which for rows
// of 7 pixels costs far more than the copy: kept as loops here.
#if defined(__GNUC__) && !defined(__clang__)
#define NNLITE_PLAIN_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NNLITE_PLAIN_LOOPS
#endif

inline bool small_planes(const ConvGeom& g) {
    return (g.H + 2 * g.ph) * (g.W + 2 * g.pw) <= kPadPlane;
}

template <typename T>
NNLITE_PLAIN_LOOPS void im2col_small(const T* x, T* cols, int64_t ld, const ConvGeom& g, int64_t c) {
    const int64_t Wp = g.W + 2 * g.pw, Hp = g.H + 2 * g.ph;
    T pp[kPadPlane];
    std::fill(pp, pp + Hp * Wp, T(0));
    const T* src = x + c * g.H * g.W;
    for (int64_t ih = 0; ih < g.H; ih++)
        for (int64_t iw = 0; iw < g.W; iw++) pp[(ih + g.ph) * Wp + g.pw + iw] = src[ih * g.W + iw];
    for (int64_t i = 0; i < g.KH; i++)
        for (int64_t j = 0; j < g.KW; j++) {
            T* row = cols + ((c * g.KH + i) * g.KW + j) * ld;
            for (int64_t oh = 0; oh < g.Ho; oh++) {
                const T* s = pp + (oh * g.sh + i * g.dh) * Wp + j * g.dw;
                T* d = row + oh * g.Wo;
                if (g.sw == 1)
                    for (int64_t ow = 0; ow < g.Wo; ow++) d[ow] = s[ow];
                else
                    for (int64_t ow = 0; ow < g.Wo; ow++) d[ow] = s[ow * g.sw];
            }
        }
}

// dx (C, H, W) of one image, channel c, = col2im(dcols) (written, not added to)
template <typename T>
NNLITE_PLAIN_LOOPS void col2im_small(const T* cols, int64_t ld, T* dx, const ConvGeom& g, int64_t c) {
    const int64_t Wp = g.W + 2 * g.pw, Hp = g.H + 2 * g.ph;
    T pp[kPadPlane];
    std::fill(pp, pp + Hp * Wp, T(0));
    for (int64_t i = 0; i < g.KH; i++)
        for (int64_t j = 0; j < g.KW; j++) {
            const T* row = cols + ((c * g.KH + i) * g.KW + j) * ld;
            for (int64_t oh = 0; oh < g.Ho; oh++) {
                T* d = pp + (oh * g.sh + i * g.dh) * Wp + j * g.dw;
                const T* s = row + oh * g.Wo;
                if (g.sw == 1)
                    for (int64_t ow = 0; ow < g.Wo; ow++) d[ow] += s[ow];
                else
                    for (int64_t ow = 0; ow < g.Wo; ow++) d[ow * g.sw] += s[ow];
            }
        }
    T* dst = dx + c * g.H * g.W;
    for (int64_t ih = 0; ih < g.H; ih++)
        for (int64_t iw = 0; iw < g.W; iw++) dst[ih * g.W + iw] = pp[(ih + g.ph) * Wp + g.pw + iw];
}

// The rows of channel c of one image x (C, H, W) in cols: row (c, i, j) at cols + ((c·KH + i)·KW
// + j)·ld, L = Ho·Wo entries each (ld: the row stride, B·L for a chunk of B images)
template <typename T>
void im2col(const T* x, T* cols, int64_t ld, const ConvGeom& g, int64_t c) {
    for (int64_t i = 0; i < g.KH; i++)
        for (int64_t j = 0; j < g.KW; j++) {
            T* row = cols + ((c * g.KH + i) * g.KW + j) * ld;
            const int64_t off = j * g.dw - g.pw;
            int64_t ow0, ow1;
            valid_cols(g.W, g.Wo, g.sw, off, &ow0, &ow1);
            if (shifted_planes(g)) {
                // row[oh·W + ow] = x[c, oh + i·dh - ph, ow + off] = plane[oh·W + ow + shift]
                int64_t oh0, oh1;
                valid_rows(g, i, &oh0, &oh1);
                const int64_t L = g.Ho * g.W, shift = (i * g.dh - g.ph) * g.W + off;
                const T* plane = x + c * g.H * g.W;
                if (oh0 >= oh1 || ow0 >= ow1) {
                    std::fill(row, row + L, T(0));
                    continue;
                }
                // from the first valid pixel to the last: every read inside the plane
                const int64_t first = oh0 * g.W + ow0, last = (oh1 - 1) * g.W + ow1;
                std::fill(row, row + first, T(0));
                std::memcpy(row + first, plane + first + shift, sizeof(T) * (last - first));
                std::fill(row + last, row + L, T(0));
                // the run also copied, across each row's end, the neighbouring input row's
                // pixels where the window hangs over the left or right edge: zeros there
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    T* r = row + oh * g.W;
                    for (int64_t ow = 0; ow < ow0; ow++) r[ow] = T(0);
                    for (int64_t ow = ow1; ow < g.W; ow++) r[ow] = T(0);
                }
                continue;
            }
            for (int64_t oh = 0; oh < g.Ho; oh++) {
                T* r = row + oh * g.Wo;
                const int64_t ih = oh * g.sh - g.ph + i * g.dh;
                if (ih < 0 || ih >= g.H) {                  // a padding row
                    std::fill(r, r + g.Wo, T(0));
                    continue;
                }
                const T* src = x + (c * g.H + ih) * g.W + off;   // src[ow·sw] = x[c, ih, iw]
                std::fill(r, r + ow0, T(0));
                if (g.sw == 1) std::memcpy(r + ow0, src + ow0, sizeof(T) * (ow1 - ow0));
                else for (int64_t ow = ow0; ow < ow1; ow++) r[ow] = src[ow * g.sw];
                std::fill(r + ow1, r + g.Wo, T(0));
            }
        }
}

// dst[0:n] += src[0:n]; the two never overlap (dx and dcols are different buffers)
template <typename T>
inline void add_row(T* __restrict dst, const T* __restrict src, int64_t n) {
    for (int64_t k = 0; k < n; k++) dst[k] += src[k];
}

// The shifted-planes col2im (see shifted_planes): row (i, j) adds to the plane as one run,
// plane[p] += row[p - shift], p in [lo, hi). The run also passes the pixels where the window
// hangs over the left or right edge, which belong to no input pixel (im2col put zeros there):
// zeroed first in the caller's scratch dcols, they add nothing, and every dx element still
// sums its (i, j) in order, as the general loop does. The runs of the KH·KW rows start a pixel
// or a row apart; each is cut at one common [body_lo, body_hi), so that every pass loads and
// stores the same aligned vectors of the plane. Started each at its own p, a pass's vector
// loads straddle the previous pass's stores, which the store buffer cannot forward (measured:
// col2im 14% of a conv backward at 14 x 14).
template <typename T>
void col2im_shifted(T* cols, int64_t ld, T* dx, const ConvGeom& g, int64_t c) {
    const int64_t KK = g.KH * g.KW;
    int64_t lo[64], hi[64], shift[64];   // KK <= 64 here (the caller checks)
    int64_t body_lo = 0, body_hi = g.H * g.W;
    for (int64_t i = 0; i < g.KH; i++)
        for (int64_t j = 0; j < g.KW; j++) {
            const int64_t ij = i * g.KW + j, off = j * g.dw - g.pw;
            T* row = cols + (c * KK + ij) * ld;
            int64_t ow0, ow1, oh0, oh1;
            valid_cols(g.W, g.Wo, g.sw, off, &ow0, &ow1);
            valid_rows(g, i, &oh0, &oh1);
            shift[ij] = (i * g.dh - g.ph) * g.W + off;
            if (oh0 >= oh1 || ow0 >= ow1) {  // the window never meets the input
                lo[ij] = hi[ij] = 0;
                continue;
            }
            for (int64_t oh = oh0; oh < oh1; oh++) {
                T* r = row + oh * g.W;
                for (int64_t ow = 0; ow < ow0; ow++) r[ow] = T(0);
                for (int64_t ow = ow1; ow < g.W; ow++) r[ow] = T(0);
            }
            lo[ij] = oh0 * g.W + ow0 + shift[ij];
            hi[ij] = (oh1 - 1) * g.W + ow1 + shift[ij];
            body_lo = std::max(body_lo, lo[ij]);
            body_hi = std::min(body_hi, hi[ij]);
        }
    body_lo = (body_lo + 15) / 16 * 16;  // a multiple of 16 pixels from the plane's start
    T* plane = dx + c * g.H * g.W;
    for (int64_t ij = 0; ij < KK; ij++) {
        if (lo[ij] >= hi[ij]) continue;
        const T* row = cols + (c * KK + ij) * ld;
        const int64_t s = shift[ij];                            // plane[p] += row[p - s]
        if (body_lo >= body_hi) {                               // no common body: one run
            add_row(plane + lo[ij], row + lo[ij] - s, hi[ij] - lo[ij]);
            continue;
        }
        add_row(plane + lo[ij], row + lo[ij] - s, body_lo - lo[ij]);
        add_row(plane + body_lo, row + body_lo - s, body_hi - body_lo);
        add_row(plane + body_hi, row + body_hi - s, hi[ij] - body_hi);
    }
}

// dx (C, H, W) of one image, channel c, += col2im(dcols): each entry back where im2col read it
// (the shifted-planes path writes zeros into dcols' padding entries: see col2im_shifted)
template <typename T>
void col2im(T* cols, int64_t ld, T* dx, const ConvGeom& g, int64_t c) {
    if (shifted_planes(g) && g.KH * g.KW <= 64) return col2im_shifted(cols, ld, dx, g, c);
    for (int64_t i = 0; i < g.KH; i++)
        for (int64_t j = 0; j < g.KW; j++) {
            const T* row = cols + ((c * g.KH + i) * g.KW + j) * ld;
            const int64_t off = j * g.dw - g.pw;
            int64_t ow0, ow1;
            valid_cols(g.W, g.Wo, g.sw, off, &ow0, &ow1);
            for (int64_t oh = 0; oh < g.Ho; oh++) {
                const int64_t ih = oh * g.sh - g.ph + i * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                const T* r = row + oh * g.Wo;
                T* dst = dx + (c * g.H + ih) * g.W + off;
                if (g.sw == 1)   // unit stride: a loop the compiler vectorises
                    add_row(dst + ow0, r + ow0, ow1 - ow0);
                else
                    for (int64_t ow = ow0; ow < ow1; ow++) dst[ow * g.sw] += r[ow];
            }
        }
}

// Σ r[0:n] in a fixed order: 16 running sums (lane k takes r[k], r[k + 16], ...), added
// pairwise at the end, then the tail. One running sum would be a chain of dependent adds, 4
// cycles each: the bias gradient of the MNIST CNN's first conv (32 x 100,352 entries) took
// 3 ms that way, more than its weight gradient. The 16 sums vectorise (no -ffast-math needed:
// the order is written out), and the result is the same on any machine and thread count.
template <typename T>
T plane_sum(const T* r, int64_t n) {
    T acc[16] = {};
    int64_t l = 0;
    for (; l + 16 <= n; l += 16)
        for (int k = 0; k < 16; k++) acc[k] += r[l + k];
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    T t = acc[0];
    for (; l < n; l++) t += r[l];
    return t;
}

// Images per chunk: a chunk's cols (C·KH·KW × B·L) and output rows (O × B·L) each stay under
// kChunkElems (1 MiB of float32: built, then read back by the GEMM's packing while still in a
// 2 MiB L2), and one GEMM per chunk and group then has B·L columns instead of L. Measured on
// the Xeon, 1 thread, the MNIST CNN's middle conv: 2 MiB chunks 9.0 ms forward, 19.1 ms
// backward; 1 MiB 8.5 and 17.1 (512 KiB: the same as 1 MiB, with twice the GEMM calls).
constexpr int64_t kChunkElems = int64_t(1) << 18;

inline int64_t chunk_images(const ConvGeom& g) {
    const int64_t per_image = std::max(g.C * g.KH * g.KW, g.O) * g.Ho * g.Wo;
    return std::clamp<int64_t>(kChunkElems / std::max<int64_t>(per_image, 1), 1,
                               std::max<int64_t>(g.N, 1));
}

// The sizes the three convolution kernels share: L output pixels an image, a group's Og
// outputs and Kg = C/G·KH·KW columns rows, NB images a chunk, and a chunk's buffers: its
// columns (C·KH·KW x NB·L) and its output-channel rows (O x NB·L).
struct ConvChunks {
    int64_t L, Og, Kg, NB, chunks;
    size_t ncols, nrows;
};

inline ConvChunks conv_chunks(const ConvGeom& g) {
    const int64_t L = g.Ho * g.Wo, NB = chunk_images(g);
    return {L, g.O / g.G, g.C / g.G * g.KH * g.KW, NB, (g.N + NB - 1) / NB,
            size_t(g.C * g.KH * g.KW * NB * L), size_t(g.O * NB * L)};
}

// A buffer of n T's that lives across calls and only grows (slot 0 or 1), one set per calling
// thread: a fresh multi-megabyte allocation per call is returned to the OS on free and
// page-faults in again on every call (measured: 30 ms of a 35 ms convolution).
template <typename T>
T* scratch(int slot, size_t n) {
    thread_local std::unique_ptr<T[]> buf[2];
    thread_local size_t cap[2] = {0, 0};
    if (n > cap[slot]) {
        buf[slot].reset(new T[n]);
        cap[slot] = n;
    }
    return buf[slot].get();
}

// cols (C·KH·KW, B·L) of images [n0, n0 + B): column b·L + l is output pixel l of image n0 + b
template <typename T>
void chunk_cols(const T* x, T* cols, int64_t n0, int64_t B, const ConvGeom& g) {
    const int64_t L = g.Ho * g.Wo, plane = g.C * g.H * g.W;
    parallel_range(B * g.C, g.KH * g.KW * L, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; t++) {
            const int64_t b = t / g.C, c = t % g.C;
            if (small_planes(g))
                im2col_small(x + (n0 + b) * plane, cols + b * L, B * L, g, c);
            else
                im2col(x + (n0 + b) * plane, cols + b * L, B * L, g, c);
        }
    });
}

// rows (O, B·L) <-> images: (O, B·L)[o, b·L + l] = images[n0 + b, o, l]. With `sums`, also
// sums[(n0 + b)·O + o] = plane_sum of that plane, taken from the copy while it is in L1: the
// bias gradient's pass over dout rides on the weight gradient's (see plane_sums_to_bias).
template <typename T>
void gather_rows(const T* images, T* rows, int64_t n0, int64_t B, int64_t O, int64_t L,
                 T* sums = nullptr) {
    parallel_range(B * O, L, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; t++) {
            const int64_t b = t / O, o = t % O;
            T* dst = rows + o * B * L + b * L;
            std::memcpy(dst, images + ((n0 + b) * O + o) * L, sizeof(T) * L);
            if (sums) sums[(n0 + b) * O + o] = plane_sum(dst, L);
        }
    });
}

}  // namespace

// Threads over whole chunks: with two or more chunks of images, each thread takes whole
// chunks (dynamically) and runs im2col, the GEMM and the scatter of a chunk alone (SoloScope):
// one parallel region per call instead of three per chunk, and a chunk's columns are built and
// read by the same core, in its own L2. Split inside each chunk instead (im2col by channel,
// the GEMM by columns), the MNIST CNN's middle conv ran 1.2x faster on 2 threads than on one;
// by chunks, 1.8x. One chunk (a small batch) is still split inside. Results are the same
// either way: every chunk is computed the same, whatever thread runs it.
inline int chunk_teams(int64_t chunks) {
    return chunks >= 2 ? int(std::min<int64_t>(threads_now(), chunks)) : 1;
}

// fn(i, worker) for i in [0, n) on `teams` threads (worker in [0, teams): its buffers). An
// exception inside the parallel region (a GEMM growing its packing buffer) would terminate
// the process: the first is kept and rethrown after it, and the other tasks are skipped.
template <typename Fn>
void for_chunks(int64_t n, int teams, Fn&& fn) {
#ifdef NNLITE_OPENMP
    if (teams > 1) {
        std::exception_ptr error;
        std::atomic<bool> failed{false};
        TeamWatch watch;  // a busy machine: see threads_now()
#pragma omp parallel num_threads(teams)
        {
            watch.started();
            FtzScope ftz;
            SoloScope solo;
            const int worker = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t i = 0; i < n; i++) {
                if (failed.load(std::memory_order_relaxed)) continue;
                try {
                    fn(i, worker);
                } catch (...) {
#pragma omp critical(nnlite_conv_error)
                    if (!failed.exchange(true)) error = std::current_exception();
                }
            }
            watch.finished();
        }
        if (error) std::rethrow_exception(error);
        return;
    }
#endif
    (void)teams;
    for (int64_t i = 0; i < n; i++) fn(i, 0);
}

// -- Winograd F(2x2, 3x3): the 3 x 3, stride-1 convolutions of a CNN (and their input
// gradients) in 2.25x fewer multiplications than im2col + GEMM
//
// Each output plane is cut into 2 x 2 tiles; tile (ty, tx) needs the 4 x 4 input patch at
// padded rows 2ty .. 2ty + 3, columns 2tx .. 2tx + 3. With the transforms of conv.inc
// (wino_in_row, wino_out_row) and U = G g Gᵀ for each 3 x 3 filter g,
//
//        [ 1    0    0 ]
//   G =  [1/2  1/2  1/2]     V_ξ[c, t] = (Bᵀ d_{c,t} B)_ξ      16 positions ξ of the 4 x 4
//        [1/2 -1/2  1/2]     M_ξ (O, T) = U_ξ (O, C) @ V_ξ (C, T)    16 GEMMs, K = C
//        [ 0    0    1 ]     y_{o,t} = Aᵀ M_{·,o,t} A + b[o]   the tile's 2 x 2 outputs
//
// Per output pixel that is 16·C/4 = 4C multiply-adds instead of 9C: the GEMMs do 16 products
// of K = C for 4 pixels. The transforms are additions only (Bᵀ, Aᵀ hold 0 and ±1; G's halves
// are applied once per call, in double). Why here: after the im2col work, the MNIST CNN's
// 14 x 14 and 7 x 7 convolutions still ran at 0.7-0.8x PyTorch's speed with the GEMM near its
// peak, so the remaining factor had to come from fewer multiplications. The input gradient of
// a stride-1 convolution with padding p is the convolution of dout with the filters turned by
// 180° (channels swapped) and padding 2 - p, so it is the same routine with other weights.
// Rounding differs from the direct sum (float32 results agree to ~1e-6 relative; the twins'
// tests bound it); float64 always takes im2col, and NNLITE_WINOGRAD=0 (or
// _conv._set_winograd(False)) switches it off; NNLITE_WINOGRAD=2 (_set_winograd(2)) keeps
// F(2x2, 3x3) where F(4x4, 3x3) would pay (winograd4_pays). The weight gradient is
// F(3x3, 2x2) (see winograd_weight_grad). Measured on a 2-core Zen 4, 1 thread, CPU time,
// the MNIST CNN's convolutions forward + input grad + weight grad: 128x32x14x14 -> 64 40.7-46.4 -> 28.3-30.2
// ms, 128x64x7x7 -> 64 24.0-24.4 -> 18.0-18.5 ms.
//
// Chunks of NB images (about kWinoTiles tiles) go to the threads whole, as the im2col path's
// do: a chunk's V (16 x C x T) and M (16 x O x T) are written and read by one core.
constexpr int64_t kWinoTiles = 512;
constexpr int64_t kWino4Tiles = 256;   // F(4x4, 3x3): 36 planes a tile instead of 16

// 0: off; 2: F(2x2, 3x3) only; 4: F(4x4, 3x3) where it pays (winograd4_pays), else F(2x2)
static std::atomic<int> g_winograd{-1};   // -1: not read yet (NNLITE_WINOGRAD=0 / 2 / 4)

static int winograd_mode() {
    int mode = g_winograd.load(std::memory_order_relaxed);
    if (mode < 0) {
        const char* env = std::getenv("NNLITE_WINOGRAD");
        mode = env && env[0] == '0' ? 0 : env && env[0] == '2' ? 2 : 4;
        g_winograd.store(mode, std::memory_order_relaxed);
    }
    return mode;
}

static bool winograd_on() { return winograd_mode() != 0; }

void set_winograd(int mode) {
    if (mode != 0 && mode != 2 && mode != 4)
        throw std::invalid_argument("Winograd mode must be 0 (off), 2 (F(2x2, 3x3) only) or 4");
    g_winograd.store(mode, std::memory_order_relaxed);
}

// Does the forward (input_grad = false) or the input gradient of g take Winograd? Channels
// below 16 leave the GEMMs too little depth (the first conv of a CNN, C = 1, stays im2col).
template <typename T>
bool winograd_fits(const ConvGeom& g) {
    return std::is_same<T, float>::value && winograd_on() && g.G == 1 && g.KH == 3 &&
           g.KW == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph <= 2 &&
           g.pw <= 2 && g.C >= 16 && g.O >= 16 && g.Ho >= 2 && g.Wo >= 2 && g.N > 0;
}

// One image's plane xp (H x W) staged into the zeroed, padded, de-interleaved rows of e and o
// (LP·B apart; e, o point at the image's lane b): padded row R = r + ph, padded column J =
// j + pw goes to e[R][(J/2)·B] when J is even, o[R][(J/2)·B] when odd. Read plane by plane,
// the input streams (walking down the B images row by row instead waited on a new line for
// most elements). Its own function: inlined, its counters were spilled to the stack.
template <typename T>
NNLITE_PLAIN_LOOPS __attribute__((noinline)) void wino_stage_plane(
        const T* xp, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t RP, int64_t LP,
        int64_t B, T* e, T* o) {
    const int64_t n = std::min(W, 2 * LP - pw);    // columns that land in the staged rows
    const int64_t rows = std::min(H, RP - ph);
    const int64_t je = pw & 1, jo = 1 - je;        // first input column of each parity
    for (int64_t r = 0; r < rows; r++) {
        const T* src = xp + r * W;
        T *er = e + (r + ph) * LP * B, *orow = o + (r + ph) * LP * B;
        for (int64_t j = je; j < n; j += 2) er[((j + pw) >> 1) * B] = src[j];
        for (int64_t j = jo; j < n; j += 2) orow[((j + pw) >> 1) * B] = src[j];
    }
}

// Output row of B images (ys apart) from the tile outputs: yr[b·ys + 2k + c] = q_c[k·B + b]
template <typename T>
NNLITE_PLAIN_LOOPS __attribute__((noinline)) void wino_scatter_row(
        const T* q0, const T* q1, int64_t B, int64_t Wo, T* yr, int64_t ys) {
    const int64_t half = Wo / 2;
    for (int64_t b = 0; b < B; b++) {
        T* d = yr + b * ys;
        for (int64_t k = 0; k < half; k++) {
            d[2 * k] = q0[k * B + b];
            d[2 * k + 1] = q1[k * B + b];
        }
        if (Wo % 2) d[Wo - 1] = q0[half * B + b];
    }
}

// U (16, Oc, Ic) for the Winograd convolution with Oc outputs and Ic inputs: from w (O, C, 3, 3)
// as it is (Oc = O), or for the input gradient (flip: Oc = C, Ic = O, filter (c, o) = w[o, c]
// turned by 180°). U_ξ = (G g Gᵀ)[i, j], ξ = 4i + j, computed in double.
template <typename T>
void winograd_weights(const T* w, int64_t O, int64_t C, bool flip, T* U) {
    const int64_t Oc = flip ? C : O, Ic = flip ? O : C;
    parallel_range(Oc, Ic * 64, [&](int64_t lo, int64_t hi) {
        for (int64_t oc = lo; oc < hi; oc++)
            for (int64_t ic = 0; ic < Ic; ic++) {
                double g[3][3];
                const T* f = flip ? w + (ic * C + oc) * 9 : w + (oc * C + ic) * 9;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) g[i][j] = flip ? f[(2 - i) * 3 + 2 - j] : f[i * 3 + j];
                double gg[4][3];   // G g
                for (int j = 0; j < 3; j++) {
                    gg[0][j] = g[0][j];
                    gg[1][j] = 0.5 * (g[0][j] + g[1][j] + g[2][j]);
                    gg[2][j] = 0.5 * (g[0][j] - g[1][j] + g[2][j]);
                    gg[3][j] = g[2][j];
                }
                for (int i = 0; i < 4; i++) {   // (G g) Gᵀ
                    const double u[4] = {gg[i][0], 0.5 * (gg[i][0] + gg[i][1] + gg[i][2]),
                                         0.5 * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
                    for (int j = 0; j < 4; j++) U[((4 * i + j) * Oc + oc) * Ic + ic] = T(u[j]);
                }
            }
    });
}

// 2 x 2 tiles of an Ho x Wo output (TH x TW an image, P in all) and chunks of NB images,
// about kWinoTiles tiles (Tc) each
struct WinoChunks {
    int64_t TH, TW, P, NB, chunks, Tc;
};

inline WinoChunks wino_chunks(int64_t N, int64_t Ho, int64_t Wo, int R = 2) {
    const int64_t TH = (Ho + R - 1) / R, TW = (Wo + R - 1) / R, P = TH * TW;
    const int64_t tiles = R == 2 ? kWinoTiles : kWino4Tiles;
    const int64_t want = std::max<int64_t>(1, (N * P + tiles - 1) / tiles);
    const int64_t NB = (N + want - 1) / want;
    return {TH, TW, P, NB, (N + NB - 1) / NB, NB * P};
}

// V (16, Ic, Tc) of images [n0, n0 + B) of x (·, Ic, H, W): tile (ty, tx) of image b is
// column (ty·TW + tx)·B + b; each channel's B padded planes are staged de-interleaved
// (wino_stage_row), then transformed a tile row at a time (conv.inc: wino_in_row)
template <typename T>
void wino_input(const T* x, int64_t n0, int64_t B, int64_t Ic, int64_t H, int64_t W,
                int64_t ph, int64_t pw, int64_t TH, int64_t TW, int64_t Tc, T* vb) {
    const int64_t RP = 2 * TH + 2, LP = TW + 1;   // the padded plane, de-interleaved: RP x LP
    const int64_t Tu = B * TH * TW, n = TW * B;
    const auto in_row = NNLITE_PICK(wino_in_row<T>);
    parallel_range(Ic, 16 * Tu, [&](int64_t lo, int64_t hi) {   // V, channel by channel
        thread_local std::vector<T> eo;
        eo.resize(size_t(2 * RP * LP * B));
        T *e = eo.data(), *o = e + RP * LP * B;
        for (int64_t c = lo; c < hi; c++) {
            // stage the B padded planes of channel c, de-interleaved, images fastest
            std::fill(e, e + 2 * RP * LP * B, T(0));
            for (int64_t b = 0; b < B; b++)
                wino_stage_plane(x + ((n0 + b) * Ic + c) * H * W, H, W, ph, pw, RP, LP, B,
                                 e + b, o + b);
            for (int64_t ty = 0; ty < TH; ty++)
                in_row(e + 2 * ty * LP * B, o + 2 * ty * LP * B, LP * B, B, n,
                       vb + c * Tc + ty * n, Ic * Tc);
        }
    });
}

// -- F(4x4, 3x3): the same scheme with 6 x 6 input tiles 4 apart and 4 x 4 outputs (conv.inc:
// wino4_in_row, wino4_out_row), 36 GEMMs a chunk: 2.25 products an output pixel instead of 4.
// Why: with F(2x2, 3x3) the MNIST CNN's 7 x 7 convolution (C = O = 64) still spent half its
// time in the GEMMs at ~90% of the FMA peak and ran at 0.90-0.97x PyTorch's speed. Rounding:
// Bᵀ and Aᵀ hold 2, 4, 5 and 8, so float32 results agree with the direct sum to ~1e-5 of the
// output's scale (F(2x2): ~1e-6); the twins' tolerances hold it.
//
// One image's plane staged in four phases (RP x LP each, s_p = s + p·RP·LP·B, lane b): padded
// column J = j + pw of padded row R = r + ph goes to s_{J mod 4}[R][(J/4)·B], the offset
// at[j] of Wino4Columns (computed once per call: on the fly it cost as much as the copy).
template <typename T>
NNLITE_PLAIN_LOOPS __attribute__((noinline)) void wino4_stage_plane(
        const T* xp, int64_t H, int64_t W, int64_t ph, int64_t RP, int64_t LP, int64_t B,
        const int64_t* at, int64_t n, T* s) {
    const int64_t rows = std::min(H, RP - ph);
    for (int64_t r = 0; r < rows; r++) {
        const T* src = xp + r * W;
        T* row = s + (r + ph) * LP * B;
        for (int64_t j = 0; j < n; j++) row[at[j]] = src[j];
    }
}

// The staging of one call's planes (W wide, padding pw, phases RP x LP x B): at[j] for the
// first min(W, 4·LP - pw) columns of a plane, those that land in the staged rows
struct Wino4Columns {
    std::vector<int64_t> at;
    int64_t RP, LP, B;
    Wino4Columns(int64_t W, int64_t pw, int64_t RP_, int64_t LP_, int64_t B_)
        : at(size_t(std::max<int64_t>(0, std::min(W, 4 * LP_ - pw)))), RP(RP_), LP(LP_), B(B_) {
        for (size_t j = 0; j < at.size(); j++)
            at[j] = ((int64_t(j) + pw) & 3) * RP * LP * B + ((int64_t(j) + pw) >> 2) * B;
    }
    // image plane xp (H x W, top padding ph) into lane b of the staged phases s
    template <typename T>
    void stage(const T* xp, int64_t H, int64_t W, int64_t ph, T* s, int64_t b) const {
        wino4_stage_plane(xp, H, W, ph, RP, LP, B, at.data(), int64_t(at.size()), s + b);
    }
};

// Output row of B images (ys apart) from the tile outputs: yr[b·ys + 4k + c] = q[c·n + k·B + b]
template <typename T>
NNLITE_PLAIN_LOOPS __attribute__((noinline)) void wino4_scatter_row(
        const T* q, int64_t n, int64_t B, int64_t Wo, T* yr, int64_t ys) {
    const int64_t full = Wo / 4;
    const T *q0 = q, *q1 = q + n, *q2 = q + 2 * n, *q3 = q + 3 * n;
    for (int64_t b = 0; b < B; b++) {
        T* d = yr + b * ys;
        for (int64_t k = 0; k < full; k++) {
            const int64_t i = k * B + b;
            d[4 * k] = q0[i], d[4 * k + 1] = q1[i], d[4 * k + 2] = q2[i], d[4 * k + 3] = q3[i];
        }
        for (int64_t j = 4 * full; j < Wo; j++) d[j] = q[(j & 3) * n + full * B + b];
    }
}

// U (36, Oc, Ic), as winograd_weights with the 6 x 3 filter transform of F(4x4, 3x3):
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
template <typename T>
void winograd4_weights(const T* w, int64_t O, int64_t C, bool flip, T* U) {
    const int64_t Oc = flip ? C : O, Ic = flip ? O : C;
    const auto G = [](const double g[3], double u[6]) {   // u = G g (products: a division
        constexpr double s6 = 1.0 / 6, s12 = 1.0 / 12, s24 = 1.0 / 24;   // per term cost 10%)
        const double a = g[0] + g[2], c = g[0] * s24 + g[2] * s6;
        u[0] = g[0] * 0.25;
        u[1] = -(a + g[1]) * s6;
        u[2] = -(a - g[1]) * s6;
        u[3] = c + g[1] * s12;
        u[4] = c - g[1] * s12;
        u[5] = g[2];
    };
    parallel_range(Oc, Ic * 256, [&](int64_t lo, int64_t hi) {
        // one output's 36 x Ic values, then 36 runs of U: stored straight into U's 36 planes
        // filter by filter, this took as long as the 7 x 7 convolution's input transform
        thread_local std::vector<T> row;
        row.resize(size_t(36 * Ic));
        for (int64_t oc = lo; oc < hi; oc++) {
            for (int64_t ic = 0; ic < Ic; ic++) {
                const T* f = flip ? w + (ic * C + oc) * 9 : w + (oc * C + ic) * 9;
                double gg[6][3];   // G g, column by column
                for (int j = 0; j < 3; j++) {
                    double col[3], u[6];
                    for (int i = 0; i < 3; i++)
                        col[i] = flip ? f[(2 - i) * 3 + 2 - j] : f[i * 3 + j];
                    G(col, u);
                    for (int i = 0; i < 6; i++) gg[i][j] = u[i];
                }
                for (int i = 0; i < 6; i++) {   // (G g) Gᵀ, row by row
                    double u[6];
                    G(gg[i], u);
                    for (int j = 0; j < 6; j++) row[size_t((6 * i + j) * Ic + ic)] = T(u[j]);
                }
            }
            for (int xi = 0; xi < 36; xi++)
                std::memcpy(U + (xi * Oc + oc) * Ic, row.data() + xi * Ic, sizeof(T) * Ic);
        }
    });
}

// V (36, Ic, Tc) of images [n0, n0 + B), as wino_input
template <typename T>
void wino4_input(const T* x, int64_t n0, int64_t B, int64_t Ic, int64_t H, int64_t W,
                 int64_t ph, int64_t pw, int64_t TH, int64_t TW, int64_t Tc, T* vb) {
    const int64_t RP = 4 * TH + 2, LP = TW + 1;   // each phase of the padded plane: RP x LP
    const int64_t Tu = B * TH * TW, n = TW * B, phase = RP * LP * B;
    const auto in_row = NNLITE_PICK(wino4_in_row<T>);
    const Wino4Columns cols(W, pw, RP, LP, B);
    parallel_range(Ic, 36 * Tu, [&](int64_t lo, int64_t hi) {   // V, channel by channel
        thread_local std::vector<T> st;
        st.resize(size_t(4 * phase));
        T* s = st.data();
        for (int64_t c = lo; c < hi; c++) {
            std::fill(s, s + 4 * phase, T(0));
            for (int64_t b = 0; b < B; b++)
                cols.stage(x + ((n0 + b) * Ic + c) * H * W, H, W, ph, s, b);
            for (int64_t ty = 0; ty < TH; ty++) {
                const T* r = s + 4 * ty * LP * B;
                in_row(r, r + phase, r + 2 * phase, r + 3 * phase, LP * B, B, n,
                       vb + c * Tc + ty * n, Ic * Tc);
            }
        }
    });
}

// y (N, Oc, Ho, Wo) = conv(x (N, Ic, H, W), U) + b, 3 x 3, stride 1, padding (ph, pw) <= 2,
// by F(R x R, 3 x 3): R = 2 (U from winograd_weights) or 4 (winograd4_weights)
template <typename T, int R>
void winograd_conv(const T* x, const T* U, const T* b, T* y, int64_t N, int64_t Ic, int64_t H,
                   int64_t W, int64_t Oc, int64_t ph, int64_t pw) {
    constexpr int64_t NX = (R + 2) * (R + 2);     // planes of the transformed domain
    const int64_t Ho = H + 2 * ph - 2, Wo = W + 2 * pw - 2;
    const WinoChunks wc = wino_chunks(N, Ho, Wo, R);
    const int64_t TH = wc.TH, TW = wc.TW, P = wc.P, NB = wc.NB, chunks = wc.chunks, Tc = wc.Tc;
    const size_t nv = size_t(NX * Ic * Tc), nm = size_t(NX * Oc * Tc);
    const int teams = chunk_teams(chunks);
    T* const v0 = scratch<T>(0, nv * teams);
    T* const m0 = scratch<T>(1, nm * teams);
    const auto out_row = R == 2 ? NNLITE_PICK(wino_out_row<T>) : NNLITE_PICK(wino4_out_row<T>);
    for_chunks(chunks, teams, [&](int64_t ci, int worker) {
        T *vb = v0 + worker * nv, *mb = m0 + worker * nm;
        const int64_t n0 = ci * NB, B = std::min(NB, N - n0), Tu = B * P, n = TW * B;
        // tile (ty, tx) of image b is column t = (ty·TW + tx)·B + b of V and M
        if (R == 2) wino_input<T>(x, n0, B, Ic, H, W, ph, pw, TH, TW, Tc, vb);
        else wino4_input<T>(x, n0, B, Ic, H, W, ph, pw, TH, TW, Tc, vb);
        for (int xi = 0; xi < NX; xi++)   // M_ξ (Oc, Tu) = U_ξ (Oc, Ic) @ V_ξ (Ic, Tu)
            gemm_strided<T>(Oc, Tu, Ic, {U + xi * Oc * Ic, Ic, 1}, {vb + xi * Ic * Tc, Tc, 1},
                            {mb + xi * Oc * Tc, Tc, 1}, false);
        parallel_range(Oc, (R == 2 ? 8 : 18) * Tu, [&](int64_t lo, int64_t hi) {   // y, by channel
            thread_local std::vector<T> rows;
            rows.resize(size_t(R * R * n));
            T* q = rows.data();
            const int64_t ys = Oc * Ho * Wo;   // from one image to the next
            for (int64_t oc = lo; oc < hi; oc++) {
                const T bias = b ? b[oc] : T(0);
                for (int64_t ty = 0; ty < TH; ty++) {
                    out_row(mb + oc * Tc + ty * n, Oc * Tc, n, bias, q);
                    // output pixel (R·ty + a, R·k + c) of image b is q[R·a + c][k·B + b]
                    for (int64_t a = 0; a < R && R * ty + a < Ho; a++) {
                        T* yr = y + (n0 * Oc + oc) * Ho * Wo + (R * ty + a) * Wo;
                        if (R == 2)
                            wino_scatter_row(q + 2 * a * n, q + (2 * a + 1) * n, B, Wo, yr, ys);
                        else
                            wino4_scatter_row(q + 4 * a * n, n, B, Wo, yr, ys);
                    }
                }
            }
        });
    });
}

// F(4x4, 3x3) or F(2x2, 3x3) for an Ho x Wo output? The GEMMs' work is 36 products per 4 x 4
// tile against 16 per 2 x 2 tile, ragged tiles counted whole; F(4x4) must save 40% of it to
// repay its dearer transforms and their padding. Measured (1 thread, CPU time, forward and
// input gradient each): 128x64x7x7 -> 64 (4 tiles of 4 x 4 against 16 of 2 x 2: 144 vs 256
// products, -44%) 4.4-4.7 -> 3.0-3.1 ms; 128x32x14x14 -> 64 (576 vs 784, -27%) 7.3-7.7 ->
// 8.1-8.3 ms, so that one keeps F(2x2), as do 5 x 5, 6 x 6, 9 x 9 and small planes; sizes
// that are multiples of 4 (-44%) and 7 x 7 take F(4x4).
inline bool winograd4_pays(int64_t Ho, int64_t Wo) {
    if (winograd_mode() != 4) return false;
    const int64_t t2 = ((Ho + 1) / 2) * ((Wo + 1) / 2), t4 = ((Ho + 3) / 4) * ((Wo + 3) / 4);
    return 5 * 36 * t4 <= 3 * 16 * t2;
}

template <typename T>
void winograd_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
    if (winograd4_pays(g.Ho, g.Wo)) {
        std::vector<T> U(size_t(36 * g.O * g.C));
        winograd4_weights(w, g.O, g.C, false, U.data());
        return winograd_conv<T, 4>(x, U.data(), b, y, g.N, g.C, g.H, g.W, g.O, g.ph, g.pw);
    }
    std::vector<T> U(size_t(16 * g.O * g.C));
    winograd_weights(w, g.O, g.C, false, U.data());
    winograd_conv<T, 2>(x, U.data(), b, y, g.N, g.C, g.H, g.W, g.O, g.ph, g.pw);
}

// dx = conv(dout, w turned by 180°, channels swapped, padding 2 - p): (N, C, H, W) from Ho, Wo
template <typename T>
void winograd_input_grad(const T* dout, const T* w, T* dx, const ConvGeom& g) {
    if (winograd4_pays(g.H, g.W)) {
        std::vector<T> U(size_t(36 * g.O * g.C));
        winograd4_weights(w, g.O, g.C, true, U.data());
        return winograd_conv<T, 4>(dout, U.data(), nullptr, dx, g.N, g.O, g.Ho, g.Wo, g.C,
                                   2 - g.ph, 2 - g.pw);
    }
    std::vector<T> U(size_t(16 * g.O * g.C));
    winograd_weights(w, g.O, g.C, true, U.data());
    winograd_conv<T, 2>(dout, U.data(), nullptr, dx, g.N, g.O, g.Ho, g.Wo, g.C, 2 - g.ph,
                        2 - g.pw);
}

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
    FtzScope ftz;
    if (winograd_fits<T>(g)) return winograd_forward(x, w, b, y, g);
    // plain names rather than a structured binding, which C++17 lambdas may not capture
    const ConvChunks cc = conv_chunks(g);
    const int64_t L = cc.L, Og = cc.Og, Kg = cc.Kg, NB = cc.NB, chunks = cc.chunks;
    const size_t ncols = cc.ncols, nout = cc.nrows;
    const int teams = chunk_teams(chunks);
    T* const cols0 = scratch<T>(0, ncols * teams);
    T* const out0 = scratch<T>(1, nout * teams);
    for_chunks(chunks, teams, [&](int64_t ci, int worker) {
        T *cols = cols0 + worker * ncols, *out = out0 + worker * nout;
        const int64_t n0 = ci * NB, B = std::min(NB, g.N - n0), BL = B * L;
        chunk_cols(x, cols, n0, B, g);
        for (int64_t gr = 0; gr < g.G; gr++)   // out_g (Og, B·L) = W_g (Og, Kg) @ cols_g (Kg, B·L)
            gemm_strided<T>(Og, BL, Kg, {w + gr * Og * Kg, Kg, 1}, {cols + gr * Kg * BL, BL, 1},
                            {out + gr * Og * BL, BL, 1}, false);
        parallel_range(B * g.O, L, [&](int64_t lo, int64_t hi) {   // y[n0 + b, o] = out + b[o]
            for (int64_t t = lo; t < hi; t++) {
                const int64_t bi = t / g.O, o = t % g.O;
                const T* src = out + o * BL + bi * L;
                T* dst = y + ((n0 + bi) * g.O + o) * L;
                const T bias = b ? b[o] : T(0);
                for (int64_t l = 0; l < L; l++) dst[l] = src[l] + bias;
            }
        });
    });
}

template <typename T>
void conv2d_input_grad(const T* dout, const T* w, T* dx, const ConvGeom& g) {
    FtzScope ftz;
    if (winograd_fits<T>(g)) return winograd_input_grad(dout, w, dx, g);
    const ConvChunks cc = conv_chunks(g);
    const int64_t L = cc.L, Og = cc.Og, Kg = cc.Kg, NB = cc.NB, chunks = cc.chunks;
    const size_t ncols = cc.ncols, nrows = cc.nrows;
    const int64_t plane = g.C * g.H * g.W;
    const int teams = chunk_teams(chunks);
    T* const dcols0 = scratch<T>(0, ncols * teams);
    T* const rows0 = scratch<T>(1, nrows * teams);
    for_chunks(chunks, teams, [&](int64_t ci, int worker) {
        T *dcols = dcols0 + worker * ncols, *rows = rows0 + worker * nrows;
        const int64_t n0 = ci * NB, B = std::min(NB, g.N - n0), BL = B * L;
        gather_rows(dout, rows, n0, B, g.O, L);
        for (int64_t gr = 0; gr < g.G; gr++)   // dcols_g (Kg, B·L) = W_gᵀ (Kg, Og) @ dout_g
            gemm_strided<T>(Kg, BL, Og, {w + gr * Og * Kg, 1, Kg}, {rows + gr * Og * BL, BL, 1},
                            {dcols + gr * Kg * BL, BL, 1}, false);
        parallel_range(B * g.C, g.KH * g.KW * L, [&](int64_t lo, int64_t hi) {
            for (int64_t t = lo; t < hi; t++) {   // each (image, channel) owns its dx plane
                const int64_t bi = t / g.C, c = t % g.C;
                T* dxn = dx + (n0 + bi) * plane;
                if (small_planes(g)) {
                    col2im_small(dcols + bi * L, BL, dxn, g, c);
                    continue;
                }
                std::fill(dxn + c * g.H * g.W, dxn + (c + 1) * g.H * g.W, T(0));
                col2im(dcols + bi * L, BL, dxn, g, c);
            }
        });
    });
}

// The weight gradient is a sum over every image. With several chunks it is summed in `parts`
// partial sums, each over a fixed run of chunks in order, added in part order at the end:
// the parts run on different threads (for_chunks), and since they are fixed by the sizes
// alone, not by the thread count, the result is the same on any number of threads. Up to 8
// parts, while the partial sums stay under 4 MiB; a bigger weight (or one chunk) is summed
// chunk after chunk into dw with each chunk's GEMM threaded, as before.
constexpr int64_t kMaxParts = 8;
constexpr int64_t kPartialBytes = int64_t(4) << 20;

// How many parts a weight gradient of `bytes` is summed in, over `chunks` chunks of images
inline int64_t weight_grad_parts(int64_t chunks, int64_t bytes) {
    return chunks < 2 ? 1 : std::clamp<int64_t>(kPartialBytes / std::max<int64_t>(bytes, 1), 1,
                                                 std::min(kMaxParts, chunks));
}

// A Winograd weight gradient's workspace over nx transformed planes: each worker's V and U of
// one chunk (scratch), and the parts' sums M, part p at sums + p·nw (kept across calls, as
// scratch() is: a fresh 1 MiB faults in again)
template <typename T>
struct WinoWeightWork {
    int64_t nw, parts;
    int teams;
    size_t nv, nu;
    T *v0, *u0, *sums;
    WinoWeightWork(int nx, int64_t O, int64_t C, int64_t chunks, int64_t Tc)
        : nw(nx * O * C), parts(weight_grad_parts(chunks, nw * int64_t(sizeof(T)))),
          teams(parts > 1 ? chunk_teams(parts) : 1), nv(size_t(nx * C * Tc)),
          nu(size_t(nx * O * Tc)), v0(scratch<T>(0, nv * teams)), u0(scratch<T>(1, nu * teams)) {
        thread_local std::vector<T> buf;
        buf.resize(size_t(std::max<int64_t>(int64_t(buf.size()), parts * nw)));
        sums = buf.data();
    }
    T* v(int worker) const { return v0 + worker * nv; }
    T* u(int worker) const { return u0 + worker * nu; }
};

// M_ξ (O, C) (+)= U_ξ (O, Tu) @ V_ξ (C, Tu)ᵀ for the nx planes ξ of one chunk (U and V hold
// Tc columns a plane row): a Winograd weight gradient's products, K = the chunk's tiles
template <typename T>
void wino_weight_gemms(int nx, int64_t O, int64_t C, int64_t Tu, int64_t Tc, const T* ub,
                       const T* vb, T* M, bool accumulate) {
    for (int xi = 0; xi < nx; xi++)
        gemm_strided<T>(O, C, Tu, {ub + xi * O * Tc, Tc, 1}, {vb + xi * C * Tc, 1, Tc},
                        {M + xi * O * C, C, 1}, accumulate);
}

// M = part 0 + part 1 + ..., in order, element by element (part p at M + p·nw)
template <typename T>
void add_parts(T* M, int64_t nw, int64_t parts) {
    if (parts > 1)
        parallel_range(nw, parts, [&](int64_t lo, int64_t hi) {
            for (int64_t p = 1; p < parts; p++) {
                const T* src = M + p * nw;
                for (int64_t i = lo; i < hi; i++) M[i] += src[i];
            }
        });
}

// The bias gradient, db[o] = Σ_{n, l} dout[n, o, l], is summed while the weight gradient reads
// dout anyway: each (image, channel) plane's plane_sum lands in sums[n·O + o] (gather_rows,
// winograd_weight_grad's staging), and db[o] adds them image by image, in order, in double.
// A pass of its own over dout cost as much as the weight gradient of the MNIST CNN's first
// convolution (32 x 100,352 entries, 12.8 MB: 17% of its forward + backward on 1 thread).
// The planes' sums and their order are those of a separate pass, so the bits are too.
template <typename T>
void plane_sums_to_bias(const T* sums, T* db, int64_t N, int64_t O) {
    for (int64_t o = 0; o < O; o++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += sums[n * O + o];
        db[o] = T(s);
    }
}

// dw (O, C, 3, 3) of a 3 x 3 stride-1 convolution, by Winograd F(3x3, 2x2): tile t's share,
// dw[o, c, i, j] += Σ_{a, b} dout[o, 2ty + a, 2tx + b] · xpad[c, 2ty + a + i, 2tx + b + j],
// is a 3 x 3 correlation of the 4 x 4 input patch with the 2 x 2 dout tile, so
//
//   M_ξ (O, C) = Σ_t U_ξ[o, t] · V_ξ[c, t]   (U: dout tiles, wino_dy_row; V: x, wino_input)
//   dw[o, c] = Aᵀ M[·, o, c] A / 4,   Aᵀ = [1 1 1 0; 0 1 -1 0; 0 1 1 1]
//
// 16 GEMMs of K = the chunk's tiles, accumulated in the transformed domain across chunks and
// transformed back once. Like the im2col path, the chunks are summed in parts fixed by the
// sizes (each a run of chunks in order, then the parts in order): the same bits on any
// number of threads. Ragged tiles read 0 past dout's edge, so they add nothing.
template <typename T>
void winograd_weight_grad(const T* dout, const T* x, T* dw, T* plane_sums,
                          const ConvGeom& g) {
    const int64_t O = g.O, C = g.C, Ho = g.Ho, Wo = g.Wo;
    const WinoChunks wc = wino_chunks(g.N, Ho, Wo);
    const int64_t TH = wc.TH, TW = wc.TW, P = wc.P, NB = wc.NB, chunks = wc.chunks, Tc = wc.Tc;
    const WinoWeightWork<T> ww(16, O, C, chunks, Tc);
    const int64_t nw = ww.nw, parts = ww.parts;
    const auto dy_row = NNLITE_PICK(wino_dy_row<T>);
    for_chunks(parts, ww.teams, [&](int64_t p, int worker) {
        T *vb = ww.v(worker), *ub = ww.u(worker), *M = ww.sums + p * nw;
        const int64_t c0 = chunks * p / parts, c1 = chunks * (p + 1) / parts;
        for (int64_t ci = c0; ci < c1; ci++) {
            const int64_t n0 = ci * NB, B = std::min(NB, g.N - n0), Tu = B * P, n = TW * B;
            wino_input<T>(x, n0, B, C, g.H, g.W, g.ph, g.pw, TH, TW, Tc, vb);
            parallel_range(O, 16 * Tu, [&](int64_t lo, int64_t hi) {   // U, channel by channel
                thread_local std::vector<T> eo;
                eo.resize(size_t(2 * 2 * TH * TW * B));
                T *e = eo.data(), *od = e + 2 * TH * TW * B;
                for (int64_t o = lo; o < hi; o++) {
                    std::fill(e, e + 2 * 2 * TH * TW * B, T(0));   // 0 past dout's edge
                    for (int64_t b = 0; b < B; b++) {
                        const T* plane = dout + ((n0 + b) * O + o) * Ho * Wo;
                        wino_stage_plane(plane, Ho, Wo, int64_t(0), int64_t(0), 2 * TH, TW, B,
                                         e + b, od + b);
                        if (plane_sums)
                            plane_sums[(n0 + b) * O + o] = plane_sum(plane, Ho * Wo);
                    }
                    for (int64_t ty = 0; ty < TH; ty++)
                        dy_row(e + 2 * ty * TW * B, od + 2 * ty * TW * B, TW * B, n,
                               ub + o * Tc + ty * n, O * Tc);
                }
            });
            wino_weight_gemms(16, O, C, Tu, Tc, ub, vb, M, ci > c0);
        }
    });
    T* const M = ww.sums;   // part 0's, then the sum of all parts
    add_parts(M, nw, parts);
    parallel_range(O * C, 64, [&](int64_t lo, int64_t hi) {
        for (int64_t oc = lo; oc < hi; oc++) {
            T m[16];
            for (int xi = 0; xi < 16; xi++) m[xi] = M[xi * O * C + oc];
            T s[3][4];   // Aᵀ m, along the rows
            for (int j = 0; j < 4; j++) {
                s[0][j] = m[j] + m[4 + j] + m[8 + j];
                s[1][j] = m[4 + j] - m[8 + j];
                s[2][j] = m[4 + j] + m[8 + j] + m[12 + j];
            }
            T* out = dw + oc * 9;
            for (int i = 0; i < 3; i++) {   // then s A, and the factor 4 of wino_dy_row off
                out[i * 3 + 0] = T(0.25) * (s[i][0] + s[i][1] + s[i][2]);
                out[i * 3 + 1] = T(0.25) * (s[i][1] - s[i][2]);
                out[i * 3 + 2] = T(0.25) * (s[i][1] + s[i][2] + s[i][3]);
            }
        }
    });
}

// dw by F(3x3, 4x4), where F(4x4, 3x3) takes the forward (winograd4_pays): the same scheme as
// winograd_weight_grad over 4 x 4 dout tiles, 36 GEMMs of K = the chunk's tiles,
//
//   M_ξ (O, C) = Σ_t U_ξ[o, t] · V_ξ[c, t]   (U = 576 G₄ g G₄ᵀ: wino4_dy_row; V: wino4_input)
//   dw[o, c] = A₃ᵀ M[·, o, c] A₃ / 576,   A₃ᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 1]
//
// summed over parts of chunks fixed by the sizes, as there. Measured, 128x64x7x7 -> 64, 1
// thread, CPU time: F(3x3, 2x2) 5.06-5.07 ms, F(3x3, 4x4) 3.73-3.94 ms.
template <typename T>
void winograd4_weight_grad(const T* dout, const T* x, T* dw, T* plane_sums,
                           const ConvGeom& g) {
    const int64_t O = g.O, C = g.C, Ho = g.Ho, Wo = g.Wo;
    const WinoChunks wc = wino_chunks(g.N, Ho, Wo, 4);
    const int64_t TH = wc.TH, TW = wc.TW, P = wc.P, NB = wc.NB, chunks = wc.chunks, Tc = wc.Tc;
    const WinoWeightWork<T> ww(36, O, C, chunks, Tc);
    const int64_t nw = ww.nw, parts = ww.parts;
    const auto dy_row = NNLITE_PICK(wino4_dy_row<T>);
    const int64_t phase = 4 * TH * TW * NB;   // a staged dout plane's phases: 4TH x TW x B
    for_chunks(parts, ww.teams, [&](int64_t p, int worker) {
        T *vb = ww.v(worker), *ub = ww.u(worker), *M = ww.sums + p * nw;
        const int64_t c0 = chunks * p / parts, c1 = chunks * (p + 1) / parts;
        for (int64_t ci = c0; ci < c1; ci++) {
            const int64_t n0 = ci * NB, B = std::min(NB, g.N - n0), Tu = B * P, n = TW * B;
            const int64_t ph = 4 * TH * TW * B;   // this chunk's phase size
            wino4_input<T>(x, n0, B, C, g.H, g.W, g.ph, g.pw, TH, TW, Tc, vb);
            const Wino4Columns cols(Wo, 0, 4 * TH, TW, B);   // dout, unpadded
            parallel_range(O, 36 * Tu, [&](int64_t lo, int64_t hi) {   // U, channel by channel
                thread_local std::vector<T> st;
                st.resize(size_t(4 * phase));
                T* s = st.data();
                for (int64_t o = lo; o < hi; o++) {
                    std::fill(s, s + 4 * ph, T(0));   // 0 past dout's edge
                    for (int64_t b = 0; b < B; b++) {
                        const T* plane = dout + ((n0 + b) * O + o) * Ho * Wo;
                        cols.stage(plane, Ho, Wo, int64_t(0), s, b);
                        if (plane_sums)
                            plane_sums[(n0 + b) * O + o] = plane_sum(plane, Ho * Wo);
                    }
                    for (int64_t ty = 0; ty < TH; ty++) {
                        const T* r = s + 4 * ty * TW * B;
                        dy_row(r, r + ph, r + 2 * ph, r + 3 * ph, TW * B, n,
                               ub + o * Tc + ty * n, O * Tc);
                    }
                }
            });
            wino_weight_gemms(36, O, C, Tu, Tc, ub, vb, M, ci > c0);
        }
    });
    T* const M = ww.sums;   // part 0's, then the sum of all parts
    add_parts(M, nw, parts);
    // dw = A₃ᵀ M A₃ / 576 for runs of 64 (o, c) pairs, the pair innermost: M's planes are
    // contiguous in it, so the loops vectorise (pair by pair, 36 gathered loads each, this
    // was 9% of the 7 x 7 weight gradient)
    constexpr int64_t kRun = 64;
    const int64_t OC = O * C;
    parallel_range(OC, 256, [&](int64_t lo, int64_t hi) {
        double s[3][6][kRun];   // A₃ᵀ m, down the columns
        for (int64_t r0 = lo; r0 < hi; r0 += kRun) {
            const int64_t nr = std::min(kRun, hi - r0);
            for (int j = 0; j < 6; j++) {
                const T* m[6];
                for (int i = 0; i < 6; i++) m[i] = M + (6 * i + j) * OC + r0;
                for (int64_t k = 0; k < nr; k++) {
                    const double m1 = m[1][k], m2 = m[2][k], m3 = m[3][k], m4 = m[4][k];
                    s[0][j][k] = double(m[0][k]) + m1 + m2 + m3 + m4;
                    s[1][j][k] = m1 - m2 + 2 * (m3 - m4);
                    s[2][j][k] = m1 + m2 + 4 * (m3 + m4) + double(m[5][k]);
                }
            }
            for (int a = 0; a < 3; a++)   // then s A₃, and the factor 576 off
                for (int64_t k = 0; k < nr; k++) {
                    const double* t[6] = {&s[a][0][k], &s[a][1][k], &s[a][2][k],
                                          &s[a][3][k], &s[a][4][k], &s[a][5][k]};
                    const double m1 = *t[1], m2 = *t[2], m3 = *t[3], m4 = *t[4];
                    T* out = dw + (r0 + k) * 9 + a * 3;
                    out[0] = T((*t[0] + m1 + m2 + m3 + m4) / 576);
                    out[1] = T((m1 - m2 + 2 * (m3 - m4)) / 576);
                    out[2] = T((m1 + m2 + 4 * (m3 + m4) + *t[5]) / 576);
                }
        }
    });
}

template <typename T>
void conv2d_weight_grad(const T* dout, const T* x, T* dw, T* db, const ConvGeom& g) {
    FtzScope ftz;
    std::vector<T> sums_store(db ? size_t(g.N * g.O) : 0);   // the planes' sums for db
    T* const sums = db ? sums_store.data() : nullptr;
    if (winograd_fits<T>(g)) {
        if (winograd4_pays(g.Ho, g.Wo)) winograd4_weight_grad(dout, x, dw, sums, g);
        else winograd_weight_grad(dout, x, dw, sums, g);
        if (db) plane_sums_to_bias(sums, db, g.N, g.O);
        return;
    }
    const ConvChunks cc = conv_chunks(g);
    const int64_t L = cc.L, Og = cc.Og, Kg = cc.Kg, NB = cc.NB, chunks = cc.chunks;
    const size_t ncols = cc.ncols, nrows = cc.nrows;
    const int64_t nw = g.O * Kg;
    const int64_t parts = weight_grad_parts(chunks, nw * int64_t(sizeof(T)));
    const int teams = parts > 1 ? chunk_teams(parts) : 1;
    T* const cols0 = scratch<T>(0, ncols * teams);
    T* const rows0 = scratch<T>(1, nrows * teams);
    // parts > 1: part p's sum in partial + p·nw (the caller's dw is part 0's)
    std::unique_ptr<T[]> partial(parts > 1 ? new T[size_t((parts - 1) * nw)] : nullptr);
    for_chunks(parts, teams, [&](int64_t p, int worker) {
        T *cols = cols0 + worker * ncols, *rows = rows0 + worker * nrows;
        T* sum = p == 0 ? dw : partial.get() + (p - 1) * nw;
        const int64_t c0 = chunks * p / parts, c1 = chunks * (p + 1) / parts;
        for (int64_t ci = c0; ci < c1; ci++) {
            const int64_t n0 = ci * NB, B = std::min(NB, g.N - n0), BL = B * L;
            chunk_cols(x, cols, n0, B, g);
            gather_rows(dout, rows, n0, B, g.O, L, sums);
            for (int64_t gr = 0; gr < g.G; gr++)   // dW_g (Og, Kg) += dout_g (Og, B·L) @ cols_gᵀ
                gemm_strided<T>(Og, Kg, BL, {rows + gr * Og * BL, BL, 1},
                                {cols + gr * Kg * BL, 1, BL}, {sum + gr * Og * Kg, Kg, 1},
                                ci > c0);
        }
    });
    if (parts > 1)   // dw = part 0 + part 1 + ..., in order, element by element
        parallel_range(nw, parts, [&](int64_t lo, int64_t hi) {
            for (int64_t p = 1; p < parts; p++) {
                const T* src = partial.get() + (p - 1) * nw;
                for (int64_t i = lo; i < hi; i++) dw[i] += src[i];
            }
        });
    if (g.N == 0) std::fill(dw, dw + g.O * Kg, T(0));
    if (db) plane_sums_to_bias(sums, db, g.N, g.O);
}

// -- pooling: window (oh, ow) covers rows oh·sh - ph + [0, KH), columns ow·sw - pw + [0, KW)
// One window's running maximum: (best, at) := (v, i) when v > best, and the first NaN, which
// wins in the end (as in the twin, numpy's argmax, and PyTorch). Masks and maxss, not
// branches (see max_pool2d_forward).
template <typename T>
struct WindowMax {
    T best;
    int64_t at, nan_at = -1;
    WindowMax(T v, int64_t i) : best(v), at(i), nan_at(v != v ? i : -1) {}
    void add(T v, int64_t i) {
        const int64_t m = -int64_t(v > best);  // all ones or 0
        at = (i & m) | (at & ~m);
        best = std::max(best, v);              // = v > best ? v : best
        const int64_t n = -int64_t((v != v) & (nan_at < 0));
        nan_at = (i & n) | (nan_at & ~n);
    }
    void store(const T* xp, T* y, int64_t* argmax) const {
        *argmax = nan_at < 0 ? at : nan_at;
        *y = nan_at < 0 ? best : xp[nan_at];
    }
};

// The CNN's pooling, 2 x 2 windows at stride 2 without padding, with its loops unrolled: the
// general loop's variable bounds cost more than its four comparisons.
template <typename T>
static void max_pool_2x2(const T* xp, T* y, int64_t* argmax, const ConvGeom& g) {
    // Rows of 12 windows or more go to the per-ISA row (conv.inc: pool2x2_row), which the
    // compiler vectorises; shorter ones stay in this loop, built for the baseline ISA, which
    // ran them faster (2 threads, max_pool2d of (128, 64, 14, 14): 1.6 ms here, 2.6 ms in the
    // vectorised row; of (128, 32, 28, 28), 14 windows a row: 3.6 -> 2.4 ms vectorised).
    const auto row = NNLITE_PICK(pool2x2_row<T>);
    const bool long_rows = g.Wo >= 12;
    for (int64_t oh = 0; oh < g.Ho; oh++) {
        const int64_t r = 2 * oh * g.W;      // the window's top row, in the plane
        bool nan = false;
        if (long_rows) {
            nan = row(xp + r, xp + r + g.W, g.Wo, r, g.W, y + oh * g.Wo, argmax + oh * g.Wo);
        } else {
            for (int64_t ow = 0; ow < g.Wo; ow++) {
                const int64_t i = r + 2 * ow;
                const T a = xp[i], b = xp[i + 1], c = xp[i + g.W], d = xp[i + g.W + 1];
                // the maximum, then the first of a, b, c, d equal to it, by arithmetic on the
                // comparisons (which of the four wins is data: branches would mispredict)
                const T m = std::max(std::max(a, b), std::max(c, d));
                const int64_t ea = a == m, eb = (b == m) & !ea, ec = (c == m) & !(ea | eb);
                const int64_t ed = 1 - (ea | eb | ec);
                y[oh * g.Wo + ow] = m;
                argmax[oh * g.Wo + ow] = i + eb + ec * g.W + ed * (g.W + 1);
                nan |= (a != a) | (b != b) | (c != c) | (d != d);
            }
        }
        if (!nan) continue;
        // a NaN: std::max and == pass it over; WindowMax lets the first NaN win
        for (int64_t ow = 0; ow < g.Wo; ow++) {
            const int64_t i = r + 2 * ow;
            WindowMax<T> m(xp[i], i);
            m.add(xp[i + 1], i + 1);
            m.add(xp[i + g.W], i + g.W);
            m.add(xp[i + g.W + 1], i + g.W + 1);
            m.store(xp, y + oh * g.Wo + ow, argmax + oh * g.Wo + ow);
        }
    }
}

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const ConvGeom& g) {
    FtzScope ftz;
    const int64_t HW = g.H * g.W, L = g.Ho * g.Wo;
    if (g.KH == 2 && g.KW == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0) {
        parallel_range(g.C, L * 4, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; p++)
                max_pool_2x2<T>(x + p * HW, y + p * L, argmax + p * L, g);
        });
        return;
    }
    parallel_range(g.C, L * g.KH * g.KW, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; p++) {
            const T* xp = x + p * HW;
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
                    const int64_t hlo = std::max<int64_t>(h0, 0), hhi = std::min(h0 + g.KH, g.H);
                    const int64_t wlo = std::max<int64_t>(w0, 0), whi = std::min(w0 + g.KW, g.W);
                    if (hlo >= hhi || wlo >= whi) {  // (a window all padding: none here)
                        y[p * L + oh * g.Wo + ow] = -std::numeric_limits<T>::infinity();
                        argmax[p * L + oh * g.Wo + ow] = -1;
                        continue;
                    }
                    // From the window's first element on, a greater one replaces it, so ties
                    // keep the first, as in the twin. WindowMax uses masks, not branches:
                    // which element is the max is data, and with a branch per comparison
                    // (which GCC kept even for ?:) half of them mispredicted.
                    WindowMax<T> m(xp[hlo * g.W + wlo], hlo * g.W + wlo);
                    for (int64_t h = hlo; h < hhi; h++)
                        for (int64_t w = wlo; w < whi; w++) m.add(xp[h * g.W + w], h * g.W + w);
                    m.store(xp, y + p * L + oh * g.Wo + ow, argmax + p * L + oh * g.Wo + ow);
                }
        }
    });
}

template <typename T>
void max_pool2d_backward(const T* dout, const int64_t* argmax, T* dx, const ConvGeom& g) {
    FtzScope ftz;
    const int64_t HW = g.H * g.W, L = g.Ho * g.Wo;
    // plane by plane, zeroed right before its scatter: zeroing a thread's whole share first
    // (6 MB of the CNN's first pooling) sent it to memory and back (2.7 -> 1.4 ms, 2 threads)
    parallel_range(g.C, L + HW, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; p++) {
            T* d = dx + p * HW;
            std::fill(d, d + HW, T(0));
            for (int64_t l = 0; l < L; l++) d[argmax[p * L + l]] += dout[p * L + l];
        }
    });
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const ConvGeom& g) {
    FtzScope ftz;
    const int64_t HW = g.H * g.W, L = g.Ho * g.Wo;
    const T inv = T(1) / T(g.KH * g.KW);
    parallel_range(g.C, L * g.KH * g.KW, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; p++)
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
                    T s = 0;
                    for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + g.KH, g.H); h++)
                        for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + g.KW, g.W);
                             w++)
                            s += x[p * HW + h * g.W + w];
                    y[p * L + oh * g.Wo + ow] = s * inv;
                }
    });
}

template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const ConvGeom& g) {
    FtzScope ftz;
    const int64_t HW = g.H * g.W, L = g.Ho * g.Wo;
    const T inv = T(1) / T(g.KH * g.KW);
    parallel_range(g.C, L * g.KH * g.KW, [&](int64_t p0, int64_t p1) {
        std::fill(dx + p0 * HW, dx + p1 * HW, T(0));
        for (int64_t p = p0; p < p1; p++)
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
                    const T v = dout[p * L + oh * g.Wo + ow] * inv;
                    for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + g.KH, g.H); h++)
                        for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + g.KW, g.W);
                             w++)
                            dx[p * HW + h * g.W + w] += v;
                }
    });
}

// -- BatchNorm: channel c's rows are x + (n·C + c)·M, n in [0, N)
template <typename T, bool Relu>
static void bn_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t N, int64_t C, int64_t M, double eps) {
    FtzScope ftz;
    const auto sum = NNLITE_PICK(bn_row_sum<T>);
    const auto sqdev = NNLITE_PICK(bn_row_sqdev<T>);
    const auto affine = NNLITE_PICK(bn_row_affine<T, Relu>);
    const double count = double(N) * double(M);
    parallel_range(C, 3 * N * M, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; c++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += sum(x + (n * C + c) * M, M);
            const T m = T(s / count);
            double v = 0;
            for (int64_t n = 0; n < N; n++) v += sqdev(x + (n * C + c) * M, m, M);
            const T r = T(1.0 / std::sqrt(v / count + eps));
            const T a = r * gamma[c], b = beta[c] - m * a;
            for (int64_t n = 0; n < N; n++)
                affine(x + (n * C + c) * M, a, b, y + (n * C + c) * M, M);
            mean[c] = m;
            rstd[c] = r;
        }
    });
}

template <typename T>
void batchnorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t N, int64_t C, int64_t M, double eps, bool relu) {
    (relu ? bn_forward<T, true> : bn_forward<T, false>)(x, gamma, beta, y, mean, rstd, N, C, M,
                                                        eps);
}

// Relu: g = dout·[y > 0] in place of dout in both passes (bn_grad in conv.inc), read as the
// rows go: no masked copy of the gradient is written
template <typename T, bool Relu>
static void bn_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* rstd,
                        const T* y, T* dx, T* dgamma, T* dbeta, int64_t N, int64_t C, int64_t M) {
    FtzScope ftz;
    const auto sum = NNLITE_PICK(bn_row_grad_sum<T, Relu>);
    const auto dot_dev = NNLITE_PICK(bn_row_dot_dev<T, Relu>);
    const auto affine2 = NNLITE_PICK(bn_row_affine2<T, Relu>);
    const double count = double(N) * double(M);
    parallel_range(C, (Relu ? 5 : 3) * N * M, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; c++) {
            const T m = mean[c], r = rstd[c];
            double sg = 0, sgx = 0;                // Σ g, Σ g·(x - μ)
            for (int64_t n = 0; n < N; n++) {
                const int64_t o = (n * C + c) * M;
                sg += sum(dout + o, Relu ? y + o : nullptr, M);
                sgx += dot_dev(dout + o, Relu ? y + o : nullptr, x + o, m, M);
            }
            const double dg = sgx * r, A = double(r) * gamma[c];
            const double B = -A * r * dg / count, K = -A * sg / count - B * m;
            if (dx)
                for (int64_t n = 0; n < N; n++) {
                    const int64_t o = (n * C + c) * M;
                    affine2(dout + o, Relu ? y + o : nullptr, x + o, T(A), T(B), T(K), dx + o, M);
                }
            dgamma[c] = T(dg);
            dbeta[c] = T(sg);
        }
    });
}

template <typename T>
void batchnorm_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* rstd,
                        const T* y, T* dx, T* dgamma, T* dbeta, int64_t N, int64_t C, int64_t M) {
    (y ? bn_backward<T, true> : bn_backward<T, false>)(dout, x, gamma, mean, rstd, y, dx, dgamma,
                                                       dbeta, N, C, M);
}

template <typename T, bool Relu>
static void bn_inference(const T* x, const T* gamma, const T* beta, const T* rmean,
                         const T* rvar, T* y, int64_t N, int64_t C, int64_t M, double eps) {
    FtzScope ftz;
    const auto affine = NNLITE_PICK(bn_row_affine<T, Relu>);
    parallel_range(C, N * M, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; c++) {
            const T a = T(gamma[c] / std::sqrt(double(rvar[c]) + eps)), b = beta[c] - rmean[c] * a;
            for (int64_t n = 0; n < N; n++)
                affine(x + (n * C + c) * M, a, b, y + (n * C + c) * M, M);
        }
    });
}

template <typename T>
void batchnorm_inference(const T* x, const T* gamma, const T* beta, const T* rmean,
                         const T* rvar, T* y, int64_t N, int64_t C, int64_t M, double eps,
                         bool relu) {
    (relu ? bn_inference<T, true> : bn_inference<T, false>)(x, gamma, beta, rmean, rvar, y, N, C,
                                                            M, eps);
}

#define NNLITE_CONV_INSTANTIATE(T)                                                              \
    template void conv2d_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&);        \
    template void conv2d_input_grad<T>(const T*, const T*, T*, const ConvGeom&);               \
    template void conv2d_weight_grad<T>(const T*, const T*, T*, T*, const ConvGeom&);          \
    template void max_pool2d_forward<T>(const T*, T*, int64_t*, const ConvGeom&);              \
    template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const ConvGeom&);       \
    template void avg_pool2d_forward<T>(const T*, T*, const ConvGeom&);                        \
    template void avg_pool2d_backward<T>(const T*, T*, const ConvGeom&);                       \
    template void batchnorm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t,      \
                                       int64_t, int64_t, double, bool);                        \
    template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, const T*,      \
                                        const T*, T*, T*, T*, int64_t, int64_t, int64_t);      \
    template void batchnorm_inference<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                         int64_t, int64_t, int64_t, double, bool);
NNLITE_CONV_INSTANTIATE(float)
NNLITE_CONV_INSTANTIATE(double)

}  // namespace nnlite
