// Token embedding: gather forward, scatter-add backward (llm.c's encoder_forward/backward
// without the position term).
//
//   forward   out[r, :] = table[ids[r], :]               r over the B·T tokens
//   backward  dtable[ids[r], :] += dout[r, :]            repeated ids add up, in r order
//
// The backward splits the *columns* among threads: each thread adds its slice of every row, so
// no two threads touch one element (no races, no atomics) and every element is summed in token
// order, exactly like the twin's np.add.at. The row add is in embedding.inc, written once over
// simd::Vec and compiled per ISA (both dtypes on every path).
//
// ids are int64 and were range-checked by the Python wrapper (and the binding). dout = ∂loss/∂out,
// the upstream gradient.
#include <algorithm>
#include <cstring>

#include "cpu/nn.h"

#define NNLITE_KERNELS "cpu/embedding.inc"
#include "common/foreach_isa.h"

namespace nnlite {

template <typename T>
void embedding_forward(const int64_t* ids, const T* table, T* out, int64_t rows, int64_t C) {
    FtzScope ftz;
    parallel_range(rows, C, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++)
            std::memcpy(out + r * C, table + ids[r] * C, sizeof(T) * size_t(C));
    });
}

template <typename T>
void embedding_backward(const int64_t* ids, const T* dout, T* dtable, int64_t rows, int64_t C) {
    FtzScope ftz;
    const auto add = NNLITE_PICK(add_row<T>);
    // column blocks of 16 (one cache line of float32), split among threads
    constexpr int64_t kBlock = 16;
    const int64_t nblocks = (C + kBlock - 1) / kBlock;
    parallel_range(nblocks, rows * kBlock, [&](int64_t lo, int64_t hi) {
        const int64_t c0 = lo * kBlock, c1 = std::min(C, hi * kBlock);
        for (int64_t r = 0; r < rows; r++)
            add(dtable + ids[r] * C + c0, dout + r * C + c0, c1 - c0);
    });
}

template void embedding_forward<float>(const int64_t*, const float*, float*, int64_t, int64_t);
template void embedding_forward<double>(const int64_t*, const double*, double*, int64_t, int64_t);
template void embedding_backward<float>(const int64_t*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int64_t*, const double*, double*, int64_t, int64_t);

}  // namespace nnlite
