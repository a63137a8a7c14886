// Compile the kernels of one file once per instruction set (see simd.h):
//
//     #define NNLITE_KERNELS "cpu/foo.inc"
//     #include "common/foreach_isa.h"
//
// gives nnlite::scalar::…, and on x86-64 nnlite::avx2::… and nnlite::avx512::…, each copy
// compiled for its ISA (the target region), each seeing `Isa` as its tag. Deliberately no
// include guard: a file includes it once per kernel file it instantiates.
#ifndef NNLITE_KERNELS
#error "define NNLITE_KERNELS (the kernel file to instantiate) before including foreach_isa.h"
#endif
#include "common/simd.h"

namespace nnlite {
namespace scalar {
using Isa = simd::Scalar;
#include NNLITE_KERNELS
}  // namespace scalar
}  // namespace nnlite

#if NNLITE_X86
NNLITE_TARGET_BEGIN_AVX2
namespace nnlite {
namespace avx2 {
using Isa = simd::Avx2;
#include NNLITE_KERNELS
}  // namespace avx2
}  // namespace nnlite
NNLITE_TARGET_END

NNLITE_TARGET_BEGIN_AVX512
namespace nnlite {
namespace avx512 {
using Isa = simd::Avx512;
#include NNLITE_KERNELS
}  // namespace avx512
}  // namespace nnlite
NNLITE_TARGET_END
#endif
#undef NNLITE_KERNELS
