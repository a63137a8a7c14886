// GEMM kernels: C (M,N) = op(A) (M,K) @ op(B) (K,N), float32 and float64. See gemm.cpp.
#pragma once
#include <cstdint>

namespace nnlite {

// An operand view: element (i, j) at p[i*rs + j*cs]. Strides are in elements and may be
// negative or zero, so a transposed, sliced, reversed or Fortran-ordered matrix is only a
// different pair of strides: op(A) of gemm_tn is A's view with rs and cs swapped (t()).
// Functions that are not inlined take views by const reference: a 24-byte struct passed by
// value goes through the stack, and GCC copies it there with one 16-byte load of a just
// written temporary, which store forwarding cannot serve (measured: +4% on 5 us GEMMs).
template <typename T>
struct Mat {
    T* p;
    int64_t rs, cs;
    T* at(int64_t i, int64_t j) const { return p + i * rs + j * cs; }
    Mat block(int64_t i, int64_t j) const { return {at(i, j), rs, cs}; }  // from (i, j) on
    Mat t() const { return {p, cs, rs}; }                                  // the transpose
};

// A Linear layer's bias and a residual (the x of x + f(x) in a transformer block), added to
// the product while each tile is still in L1, instead of in passes of their own over C:
//     P[i][j] = sum_k op(A)[i][k] op(B)[k][j]  +  bias[j]  +  r.at(i, j)
// bias: N values (nullptr: none); r: an M x N view with unit column stride (r.p == nullptr:
// none). r must not overlap C: a tile's first K block is stored before its last adds r.
template <typename T>
struct Epilogue {
    const T* bias = nullptr;
    Mat<const T> r{nullptr, 0, 1};
    bool any() const { return bias != nullptr || r.p != nullptr; }
};

// accumulate=false: C = P;  accumulate=true: C += P, with P = op(A) @ op(B) (+ the epilogue)
//   op(A)[i][k] = a.at(i, k)    op(B)[k][j] = b.at(k, j)    C[i][j] = c.at(i, j).
// K == 0 gives P = 0 (+ the epilogue). Allocates only cached per-thread packing buffers;
// callable without the GIL.
template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K, const Mat<const T>& a, const Mat<const T>& b,
                  const Mat<T>& c, bool accumulate, const Epilogue<T>& epi = {});

// Tuning sweeps (benchmarks/tune_gemm.py): values > 0 replace plan_gemm's choices for every
// later call in this process (kc, mc, nc: block sizes; pack_a: 0 or 1); 0 or less: automatic.
// Not for use beside other calls: it is one process-wide setting, read without a lock.
struct GemmOverride {
    int64_t kc = 0, mc = 0, nc = 0;
    int pack_a = -1;
    int prefetch_c = -1;
    int team = -1;  // 1: big problems run as one team sharing packed blocks, with barriers
    int phases = 0;  // 1: time the phases of every call (gemm_phase_seconds)
    int pack_b = -1;  // 1: always pack B; 0: read row-contiguous B in place when it can
    int uarch = -1;   // the plan's micro-architecture rules: 0 generic, 1 Intel AVX-512
    int prefetch_b = -1;  // the next block's operands while computing: 0 no, 1 into L1, 2 L2
};
void set_gemm_override(const GemmOverride& o);

// With GemmOverride::phases on: seconds spent, summed over threads, since the last call, in
// packing B, packing A, the micro-kernels, and waiting (barriers, and the final join of a
// thread that finished before the slowest one); the counters restart at zero.
struct GemmPhases {
    double pack_b, pack_a, compute, wait;
};
GemmPhases gemm_phase_seconds();

extern template void gemm_strided<float>(int64_t, int64_t, int64_t, const Mat<const float>&,
                                         const Mat<const float>&, const Mat<float>&, bool,
                                         const Epilogue<float>&);
extern template void gemm_strided<double>(int64_t, int64_t, int64_t, const Mat<const double>&,
                                          const Mat<const double>&, const Mat<double>&, bool,
                                          const Epilogue<double>&);

}  // namespace nnlite
