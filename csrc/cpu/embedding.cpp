// Token embedding: gather forward, scatter-add backward (llm.c's encoder_forward/backward
// without the position term).
//
//   forward   out[r, :] = table[ids[r], :]               r over the B·T tokens
//   backward  dtable[ids[r], :] += grad[r, :]            repeated ids add up, in r order
//
// The backward splits the *columns* among threads: each thread adds its slice of every row, so
// no two threads touch one element (no races, no atomics) and every element is summed in token
// order, exactly like the twin's np.add.at. Row adds are vectorised (AVX-512 / AVX2, float32).
// ids are int64 and were range-checked by the Python wrapper.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "cpu/nn.h"

namespace nnlite {

template <typename T>
static void add_row_scalar(T* d, const T* s, int64_t n) {
    for (int64_t j = 0; j < n; j++) d[j] += s[j];
}

#if NNLITE_X86
NNLITE_TARGET_AVX512 static void add_row_avx512(float* d, const float* s, int64_t n) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(d + j, _mm512_add_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(s + j)));
    if (j < n) {
        const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(d + j, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, d + j),
                                                      _mm512_maskz_loadu_ps(k, s + j)));
    }
}

NNLITE_TARGET_AVX2 static void add_row_avx2(float* d, const float* s, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(s + j)));
    for (; j < n; j++) d[j] += s[j];
}
#endif

template <typename T>
void embedding_forward(const int64_t* ids, const T* table, T* out, int64_t rows, int64_t C) {
    FtzScope ftz;
    parallel_range(rows, C, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++)
            std::memcpy(out + r * C, table + ids[r] * C, sizeof(T) * size_t(C));
    });
}

template <typename T>
void embedding_backward(const int64_t* ids, const T* grad, T* dtable, int64_t rows, int64_t C) {
    FtzScope ftz;
    void (*add)(T*, const T*, int64_t) = add_row_scalar<T>;
#if NNLITE_X86
    if constexpr (std::is_same_v<T, float>) {
        if (simd_path() == Simd::AVX512) add = add_row_avx512;
        else if (simd_path() == Simd::AVX2) add = add_row_avx2;
    }
#endif
    // column blocks of 16 (one cache line of float32), split among threads
    constexpr int64_t kBlock = 16;
    const int64_t nblocks = (C + kBlock - 1) / kBlock;
    parallel_range(nblocks, rows * kBlock, [&](int64_t lo, int64_t hi) {
        const int64_t c0 = lo * kBlock, c1 = std::min(C, hi * kBlock);
        for (int64_t r = 0; r < rows; r++)
            add(dtable + ids[r] * C + c0, grad + r * C + c0, c1 - c0);
    });
}

template void embedding_forward<float>(const int64_t*, const float*, float*, int64_t, int64_t);
template void embedding_forward<double>(const int64_t*, const double*, double*, int64_t, int64_t);
template void embedding_backward<float>(const int64_t*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int64_t*, const double*, double*, int64_t, int64_t);

}  // namespace nnlite
