// Row-wise softmax forward/backward and fused softmax + cross-entropy. See pointwise.h.
//
// The kernels live in softmax.inc, written once over simd::Vec and compiled here once per ISA;
// these entry points set FTZ and pick the copy for simd_path().
#include <vector>

#include "cpu/pointwise.h"

#define NNLITE_KERNELS "cpu/softmax.inc"
#include "common/foreach_isa.h"  // scalar::, avx2::, avx512:: softmax_rows, ..., xent_rows

namespace nnlite {

template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t C) {
    FtzScope ftz;
    if (rows == 0 || C == 0) return;
    NNLITE_PICK(softmax_rows<T>)(x, y, rows, C);
}

template <typename T>
void softmax_backward(const T* dout, const T* y, T* dx, int64_t rows, int64_t C) {
    FtzScope ftz;
    if (rows == 0 || C == 0) return;
    NNLITE_PICK(softmax_backward_rows<T>)(dout, y, dx, rows, C);
}

// Returns the mean loss. The per-row losses are summed here, in row order, so the result does
// not depend on the thread count.
template <typename T>
double softmax_xent(const T* z, const int64_t* labels, T* dz, int64_t N, int64_t C) {
    FtzScope ftz;
    if (N == 0 || C == 0) return 0.0;
    std::vector<double> row_loss(static_cast<size_t>(N));
    NNLITE_PICK(xent_rows<T>)(z, labels, dz, N, C, row_loss.data());
    double loss = 0.0;
    for (const double l : row_loss) loss += l;
    return loss * (1.0 / static_cast<double>(N));
}

template void softmax_forward<float>(const float*, float*, int64_t, int64_t);
template void softmax_forward<double>(const double*, double*, int64_t, int64_t);
template void softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t);
template double softmax_xent<float>(const float*, const int64_t*, float*, int64_t, int64_t);
template double softmax_xent<double>(const double*, const int64_t*, double*, int64_t, int64_t);

}  // namespace nnlite
