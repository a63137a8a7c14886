// Python bindings of the GEMM kernels: nnlite.ops._gemm. The public functions (argument
// checks with the twins' errors) are in nnlite/ops/native_gemm.py; this layer only reads
// shapes and strides, allocates `out` when needed, and releases the GIL around the compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/bind_common.h"
#include "common/cpu.h"
#include "common/peak.h"
#include "cpu/gemm.h"

namespace py = pybind11;

namespace {

// [lo, hi) byte range an array's elements span, for the aliasing check.
void byte_extent(const py::array& x, uintptr_t& lo, uintptr_t& hi) {
    intptr_t l = 0, h = 0;
    for (py::ssize_t d = 0; d < x.ndim(); d++) {
        if (x.shape(d) == 0) {
            lo = hi = 0;
            return;
        }
        intptr_t span = (intptr_t)x.strides(d) * (intptr_t)(x.shape(d) - 1);
        (span < 0 ? l : h) += span;
    }
    uintptr_t base = reinterpret_cast<uintptr_t>(x.data());
    lo = base + l;
    hi = base + h + x.itemsize();
}

bool overlaps(const py::array& x, const py::array& y) {
    uintptr_t xl, xh, yl, yh;
    byte_extent(x, xl, xh);
    byte_extent(y, yl, yh);
    return xl < xh && yl < yh && xl < yh && yl < xh;
}

// Strides in elements, data aligned for T; a view whose byte strides are not whole elements or
// whose data starts at an odd byte offset (both from a structured or raw byte buffer) is copied
// first (ndarray.copy(): C order, aligned): the kernels address and load elements as T.
template <typename T>
bool element_addressable(const py::array& x) {
    if (!nnlite::is_aligned_for<T>(x)) return false;
    for (py::ssize_t d = 0; d < x.ndim(); d++)
        if (x.strides(d) % (py::ssize_t)sizeof(T) != 0) return false;
    return true;
}

template <typename T>
py::array addressable(const py::array& x) {
    if (element_addressable<T>(x)) return x;
    return x.attr("copy")().cast<py::array>();
}

template <typename T>
py::array run(const std::string& op, py::array a, py::array b, bool ta, bool tb,
              py::object out_obj, bool accumulate, py::object bias_obj, py::object res_obj) {
    a = addressable<T>(a);
    b = addressable<T>(b);
    const int64_t M = ta ? a.shape(1) : a.shape(0);
    const int64_t K = ta ? a.shape(0) : a.shape(1);
    const int64_t N = tb ? b.shape(0) : b.shape(1);
    const int64_t es = sizeof(T);
    const int64_t sa0 = a.strides(0) / es, sa1 = a.strides(1) / es;
    const int64_t sb0 = b.strides(0) / es, sb1 = b.strides(1) / es;

    py::array out;
    if (out_obj.is_none()) {
        out = py::array_t<T>({(py::ssize_t)M, (py::ssize_t)N});
    } else {
        out = py::reinterpret_borrow<py::array>(out_obj);
        if (!out.writeable())
            throw py::value_error(op + ": out is read-only");
    }
    // out sharing memory with an input (gemm(a, b, out=a)), or not addressable as T (misaligned,
    // odd byte strides): compute into a fresh array first, as the numpy twin does, then copy/add
    // it in.
    // The epilogue's operands (checked by native_gemm.py: bias (N,), residual (M, N), both
    // C-contiguous and aligned, of a's dtype). A residual sharing memory with out, as in
    // gemm(a, b, out=r, residual=r), also goes through the fresh array: the product's first K
    // block is stored into out before its last one reads the residual.
    nnlite::Epilogue<T> epi;
    py::array bias, res;
    if (!bias_obj.is_none()) {
        bias = py::reinterpret_borrow<py::array>(bias_obj);
        epi.bias = static_cast<const T*>(bias.data());
    }
    if (!res_obj.is_none()) {
        res = py::reinterpret_borrow<py::array>(res_obj);
        epi.r = {static_cast<const T*>(res.data()), res.strides(0) / es, 1};
    }
    py::array target = out;
    bool via_tmp = !out_obj.is_none() &&
                   (overlaps(out, a) || overlaps(out, b) || !element_addressable<T>(out) ||
                    (epi.r.p && overlaps(out, res)));
    if (via_tmp) target = py::array_t<T>({(py::ssize_t)M, (py::ssize_t)N});

    const T* pa = static_cast<const T*>(a.data());
    const T* pb = static_cast<const T*>(b.data());
    T* pc = static_cast<T*>(target.mutable_data());
    const int64_t rc = target.strides(0) / es, cc = target.strides(1) / es;
    const nnlite::Mat<const T> va{pa, sa0, sa1}, vb{pb, sb0, sb1};  // the arrays as they are
    {
        py::gil_scoped_release release;
        nnlite::gemm_strided<T>(M, N, K, ta ? va.t() : va, tb ? vb.t() : vb, {pc, rc, cc},
                                accumulate && !via_tmp, epi);
    }
    if (via_tmp) {
        if (accumulate)
            out.attr("__iadd__")(target);
        else
            out.attr("__setitem__")(py::ellipsis(), target);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_gemm, m) {
    m.doc() = "nnlite GEMM kernels: C = op(A) @ op(B) (+ C), float32/float64, any strides";
    nnlite::bind_runtime(m);
    // _gemm(op, a, b, trans_a, trans_b, out, accumulate, bias=None, residual=None): inputs
    // already checked by native_gemm.py (2-D, same float dtype, matching inner size, out
    // shape/dtype; bias (N,) and residual (M, N) C-contiguous and aligned).
    m.def(
        "_gemm",
        [](const std::string& op, py::array a, py::array b, bool ta, bool tb, py::object out,
           bool accumulate, py::object bias, py::object residual) -> py::array {
            if (a.dtype().equal(py::dtype::of<float>()))
                return run<float>(op, a, b, ta, tb, out, accumulate, bias, residual);
            if (a.dtype().equal(py::dtype::of<double>()))
                return run<double>(op, a, b, ta, tb, out, accumulate, bias, residual);
            throw py::type_error(op + ": a must be float32 or float64");
        },
        py::arg("op"), py::arg("a"), py::arg("b"), py::arg("trans_a"), py::arg("trans_b"),
        py::arg("out"), py::arg("accumulate"), py::arg("bias") = py::none(),
        py::arg("residual") = py::none());
    // Tuning sweeps only (benchmarks/tune_gemm.py): override plan_gemm's blocks for later calls.
    m.def(
        "_set_tuning",
        [](int64_t kc, int64_t mc, int64_t nc, int pack_a, int prefetch_c, int team,
           bool phases, int pack_b, int uarch, int prefetch_b) {
            nnlite::set_gemm_override({kc, mc, nc, pack_a, prefetch_c, team, phases ? 1 : 0,
                                       pack_b, uarch, prefetch_b});
        },
        py::arg("kc") = 0, py::arg("mc") = 0, py::arg("nc") = 0, py::arg("pack_a") = -1,
        py::arg("prefetch_c") = -1, py::arg("team") = -1, py::arg("phases") = false,
        py::arg("pack_b") = -1, py::arg("uarch") = -1, py::arg("prefetch_b") = -1);
    // With _set_tuning(phases=True): seconds per phase (summed over threads) since the last
    // call; the counters restart at zero.
    m.def("_phases", []() {
        const nnlite::GemmPhases p = nnlite::gemm_phase_seconds();
        py::dict d;
        d["pack_b"] = p.pack_b;
        d["pack_a"] = p.pack_a;
        d["compute"] = p.compute;
        d["wait"] = p.wait;
        return d;
    });

    // The FMA peak probe (common/peak.cpp), here because the GEMM is what it is the peak of:
    // nnlite.ops.measure_peak() turns the dict into GFLOP/s and a sentence.
    m.def(
        "_fma_peak",
        [](double seconds, int threads) {
            nnlite::PeakRun r;
            {
                py::gil_scoped_release release;
                r = nnlite::fma_peak(seconds, threads);
            }
            py::dict d;
            d["isa"] = r.isa;
            d["lanes"] = r.lanes;
            d["chains"] = r.chains;
            d["threads"] = r.threads;
            d["iters"] = r.iters;
            d["windows"] = r.windows;
            d["window_flops"] = r.window_flops();
            d["best_seconds"] = r.best_seconds;
            d["total_seconds"] = r.total_seconds;
            return d;
        },
        py::arg("seconds"), py::arg("threads"),
        "Run the FMA chains on `threads` threads for about `seconds`; the fastest window's "
        "time and flop count (peak = window_flops / best_seconds).");
    m.def(
        "_fma_chains",
        [](int64_t iters, float x, float y) {
            std::vector<float> v;
            {
                py::gil_scoped_release release;
                v = nnlite::fma_chains_values(iters, x, y);
            }
            const py::ssize_t chains = nnlite::kPeakChains, lanes = py::ssize_t(v.size()) / chains;
            py::array_t<float> out({chains, lanes});
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
        },
        py::arg("iters"), py::arg("x"), py::arg("y"),
        "The probe's loop, for tests: (chains, lanes) values of `iters` steps of acc = acc*x + y "
        "from acc = chain index, on the current SIMD path.");
}
