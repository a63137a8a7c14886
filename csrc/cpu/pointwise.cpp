// Activations: y = act(x + b) forward, dx = dout · act'(x) backward, the backward of a
// Linear layer's fused bias + activation, dx = dout · act'(x) with db = Σ_rows dx, and
// dropout with a counter-based mask. See pointwise.h.
//
// The kernels live in pointwise.inc, written once over simd::Vec and compiled here once per
// ISA; this file turns the run-time (activation, bias or not, SIMD path) into one compiled
// kernel, so there is no switch inside the loops.
#include "cpu/pointwise.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#define NNLITE_KERNELS "cpu/pointwise.inc"
#include "common/foreach_isa.h"  // scalar::, avx2::, avx512:: bias_act_rows, act_backward_flat

namespace nnlite {

// f(std::integral_constant<Act, A>{}) for the run-time activation a: the one switch that turns
// the activation code into a template argument.
template <typename Fn>
static auto with_act(Act a, Fn&& f) {
    switch (a) {
        case Act::Relu: return f(std::integral_constant<Act, Act::Relu>{});
        case Act::LeakyRelu: return f(std::integral_constant<Act, Act::LeakyRelu>{});
        case Act::Tanh: return f(std::integral_constant<Act, Act::Tanh>{});
        case Act::Sigmoid: return f(std::integral_constant<Act, Act::Sigmoid>{});
        case Act::Gelu: return f(std::integral_constant<Act, Act::Gelu>{});
        default: return f(std::integral_constant<Act, Act::None>{});
    }
}

template <typename T>
void bias_act(const T* x, const T* b, T* y, int64_t rows, int64_t F, Act act, T alpha) {
    FtzScope ftz;
    if (rows * F == 0) return;
    const auto kernel = with_act(act, [b](auto a) {
        return b ? NNLITE_PICK(bias_act_rows<T, decltype(a)::value, true>)
                 : NNLITE_PICK(bias_act_rows<T, decltype(a)::value, false>);
    });
    kernel(x, b, y, rows, F, alpha);
}

template <typename T>
void act_backward(const T* dout, const T* x, const T* y, T* dx, int64_t n, Act act, T alpha) {
    FtzScope ftz;
    if (n == 0) return;
    const auto kernel =
        with_act(act, [](auto a) { return NNLITE_PICK(act_backward_flat<T, decltype(a)::value>); });
    kernel(dout, x, y, dx, n, alpha);
}

template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, T scale) {
    FtzScope ftz;  // as parallel_range's threads: results independent of the thread count
    if (n == 0) return;
    NNLITE_PICK(dropout_flat<T>)(x, y, n, seed, threshold, scale);
}

// The backward of y = act(z), z = xW + b (a Linear layer with its activation fused), for the
// (rows, C) gradient dout = ∂loss/∂y:
//
//   dx[i, j] = dout[i, j] · act'(x[i, j])          (x = z, or y where act' needs only y)
//   db[j]    = Σ_i dx[i, j]                         (accumulate: db[j] += Σ_i dx[i, j])
//
// in one pass: each element of dx is added into its column's sum as it is made, instead of
// act_backward writing dx and bias_grad reading it back.
//
// The column sums do not depend on the thread count (common/cpu.h, "Reductions"), by
// layernorm_backward's scheme: the rows are cut into kSumChunks-or-fewer chunks whose size
// depends on the row count alone (at least kSumChunkMinRows rows each), each chunk sums its rows,
// in order, into its own (C,) partial sum, and the partial sums are added in chunk order. The
// work is handed out as (chunk, column slab) pieces: a column's sum is made inside one slab, so
// the slab width (and which thread ran a piece) changes nothing but the speed. Slabs keep a
// piece's partial sums in L1 for a long row and let a few rows with many columns use several
// threads. With accumulate the sum is made first, then added into db: two roundings, as
// bias_grad's db += Σ dx.
constexpr int64_t kSumChunks = 16, kSumChunkMinRows = 64, kSumSlab = 1024;

template <typename T>
void act_backward_bias_grad(const T* dout, const T* x, const T* y, T* dx, T* db, int64_t rows,
                            int64_t C, Act act, T alpha, bool accumulate) {
    FtzScope ftz;
    if (C == 0) return;
    const int64_t nchunk = std::max<int64_t>(1, std::min(kSumChunks, rows / kSumChunkMinRows));
    const int64_t nslab = (C + kSumSlab - 1) / kSumSlab;
    // part[c·C + j]: chunk c's partial sum of column j; allocated before any parallel region
    std::vector<T> part(size_t(nchunk) * size_t(C), T(0));
    if (rows > 0) {
        const auto piece = with_act(act, [](auto a) {
            return NNLITE_PICK(act_backward_bias_piece<T, decltype(a)::value>);
        });
        T* parts = part.data();
        const int64_t cost = rows / nchunk * std::min(C, kSumSlab) * act_cost(act);
        parallel_range(nchunk * nslab, cost, [&](int64_t lo, int64_t hi) {
            for (int64_t k = lo; k < hi; k++) {
                const int64_t c = k / nslab, c0 = k % nslab * kSumSlab;
                piece(dout, x, y, dx, parts + c * C, rows * c / nchunk, rows * (c + 1) / nchunk,
                      c0, std::min(C, c0 + kSumSlab), C, alpha);
            }
        });
    }
    T* sum = part.data();   // chunk 0, then the others added in order
    for (int64_t c = 1; c < nchunk; c++) {
        const T* pc = part.data() + c * C;
        for (int64_t j = 0; j < C; j++) sum[j] += pc[j];
    }
    if (accumulate) {
        for (int64_t j = 0; j < C; j++) db[j] += sum[j];
    } else {
        std::copy(sum, sum + C, db);
    }
}

template void bias_act<float>(const float*, const float*, float*, int64_t, int64_t, Act, float);
template void bias_act<double>(const double*, const double*, double*, int64_t, int64_t, Act,
                               double);
template void act_backward<float>(const float*, const float*, const float*, float*, int64_t, Act,
                                  float);
template void act_backward<double>(const double*, const double*, const double*, double*, int64_t,
                                   Act, double);
template void act_backward_bias_grad<float>(const float*, const float*, const float*, float*,
                                            float*, int64_t, int64_t, Act, float, bool);
template void act_backward_bias_grad<double>(const double*, const double*, const double*,
                                             double*, double*, int64_t, int64_t, Act, double,
                                             bool);
template void dropout<float>(const float*, float*, int64_t, uint64_t, uint32_t, float);
template void dropout<double>(const double*, double*, int64_t, uint64_t, uint32_t, double);

}  // namespace nnlite
