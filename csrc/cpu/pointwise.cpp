// Activations: y = act(x + b) forward, dx = dout · act'(x) backward. See pointwise.h.
//
// The kernels live in pointwise.inc, written once over simd::Vec and compiled here once per
// ISA; this file turns the run-time (activation, bias or not, SIMD path) into one compiled
// kernel, so there is no switch inside the loops.
#include "cpu/pointwise.h"

#include <type_traits>

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

template void bias_act<float>(const float*, const float*, float*, int64_t, int64_t, Act, float);
template void bias_act<double>(const double*, const double*, double*, int64_t, int64_t, Act,
                               double);
template void act_backward<float>(const float*, const float*, const float*, float*, int64_t, Act,
                                  float);
template void act_backward<double>(const double*, const double*, const double*, double*, int64_t,
                                   Act, double);

}  // namespace nnlite
