/* Flush-to-zero / denormals-are-zero: the one implementation, in C so the Cython optimizer
 * kernels can call it too; C++ kernels use its scope guard nnlite::FtzScope (cpu.h).
 *
 *     unsigned long long saved = nnlite_ftz_enter();   ... hot loop ...   nnlite_ftz_leave(saved);
 *
 * FTZ flushes subnormal results to zero, DAZ reads subnormal inputs as zero (x86: MXCSR bits
 * 15 and 6; AArch64: FPCR.FZ, which does both).
 * Why: Adam's second moments decay into subnormals, and subnormal arithmetic takes microcode
 * assists that make a plain float32 loop several times slower. The mode is per thread, so
 * every OpenMP thread must call it itself. No-op where neither x86 nor AArch64. */
#ifndef NNLITE_FTZ_H
#define NNLITE_FTZ_H

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
static inline unsigned long long nnlite_ftz_enter(void) {
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
}
static inline void nnlite_ftz_leave(unsigned long long saved) { _mm_setcsr((unsigned int)saved); }
#elif defined(__aarch64__)
static inline unsigned long long nnlite_ftz_enter(void) {
    unsigned long long saved, v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved));
    v = saved | (1ull << 24); /* FZ */
    __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
    return saved;
}
static inline void nnlite_ftz_leave(unsigned long long saved) {
    __asm__ __volatile__("msr fpcr, %0" : : "r"(saved));
}
#else
static inline unsigned long long nnlite_ftz_enter(void) { return 0; }
static inline void nnlite_ftz_leave(unsigned long long saved) { (void)saved; }
#endif

#endif /* NNLITE_FTZ_H */
