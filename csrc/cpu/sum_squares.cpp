// Σₖ Σᵢ xₖᵢ² over many tensors in one call: the squared global norm of a model's gradients,
// which every optimizer step needs (clipping, and the check that no entry is NaN or inf before
// anything is updated).
//
// Deterministic: the tensors are laid end to end (N elements) and cut into pieces of
// kSquaresPiece elements, fixed by the sizes alone; each piece is summed on its own (by
// whichever thread), the pieces are added in order. The result is the same bits for any
// thread count.
//
// The element kernel is in sum_squares.inc (compiled per ISA).
#include <algorithm>
#include <cmath>

#include "cpu/nn.h"

namespace nnlite {
constexpr int64_t kSquaresChunk = 128;      // elements summed in T before going to double
constexpr int64_t kSquaresPiece = 1 << 15;  // elements per piece (the unit of parallel work)
}  // namespace nnlite

#define NNLITE_KERNELS "cpu/sum_squares.inc"
#include "common/foreach_isa.h"

namespace nnlite {

template <typename T>
double sum_squares_many(const std::vector<const T*>& xs, const std::vector<int64_t>& ns) {
    FtzScope ftz;
    const auto range = NNLITE_PICK(sum_squares_range<T>);
    const size_t nt = xs.size();
    std::vector<int64_t> start(nt + 1, 0);   // tensor i covers [start[i], start[i+1])
    for (size_t i = 0; i < nt; i++) start[i + 1] = start[i] + ns[i];
    const int64_t n = start[nt], pieces = (n + kSquaresPiece - 1) / kSquaresPiece;
    std::vector<double> part(size_t(pieces), 0.0);   // allocated before the parallel region
    parallel_range(pieces, kSquaresPiece, [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; p++) {
            const int64_t a0 = p * kSquaresPiece, b0 = std::min(n, a0 + kSquaresPiece);
            size_t i = size_t(std::upper_bound(start.begin(), start.end(), a0) - start.begin()) - 1;
            double s = 0.0;
            for (; i < nt && start[i] < b0; i++) {
                const int64_t a = std::max(a0, start[i]) - start[i];
                const int64_t b = std::min(b0, start[i + 1]) - start[i];
                if (a < b) s += range(xs[i] + a, b - a);
            }
            part[size_t(p)] = s;
        }
    });
    double total = 0.0;
    for (double s : part) total += s;
    return total;
}

template double sum_squares_many<float>(const std::vector<const float*>&,
                                        const std::vector<int64_t>&);
template double sum_squares_many<double>(const std::vector<const double*>&,
                                         const std::vector<int64_t>&);

}  // namespace nnlite
