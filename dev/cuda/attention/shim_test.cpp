// dev/cuda/attention/shim_test.cpp: every attention step's kernels (NN_name.cuh) run through
// the shim (csrc/cuda/shim/cuda_shim.h) on small awkward shapes, checked against reference.h
// (the forward: out, lse; step 04 also its backward: dq, dk, dv). No GPU needed; built by
// `make -C dev/cuda shim-test` and tests/test_dev.py, also under ThreadSanitizer.
//
//     g++ -std=c++20 -O1 -pthread -DNNLITE_CUDA_SHIM -Icsrc -Icsrc/cuda -o attention_shim_test
//         dev/cuda/attention/shim_test.cpp   (one line)
//     ./attention_shim_test [--quick] [step ...]    e.g. 03 (default: every step, every shape)
#include "01_naive.cuh"
#include "02_online_softmax.cuh"
#include "04_flash_backward.cuh"   // includes 03_flash_forward.cuh
#include "reference.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

using fwd_fn = void (*)(const float*, const float*, const float*, float*, float*, float*, int,
                        int, int, cudaStream_t);
using bwd_fn = void (*)(const float*, const float*, const float*, const float*, const float*,
                        const float*, float*, float*, float*, float*, int, int, int, cudaStream_t);
struct Step {
    const char* name;
    fwd_fn forward;
    bwd_fn backward;
    const char* (*supports)(int, int, int);
    size_t (*workspace)(int, int, int);
};

const Step kSteps[] = {
    {"01_naive", attn01::forward, nullptr, attn01::supports, attn01::workspace_floats},
    {"02_online_softmax", attn02::forward, nullptr, attn02::supports, attn02::workspace_floats},
    {"03_flash_forward", attn03::forward, nullptr, attn03::supports, attn03::workspace_floats},
    {"04_flash_backward", attn04::forward, attn04::backward, attn04::supports,
     attn04::workspace_floats},
};

// B H T D: one token; a tile and one short; T past two query blocks (130 > 2·64) and past
// key tiles of 32; D odd, tiny and the largest (128)
const int kShapes[][4] = {{1, 1, 1, 8}, {2, 1, 63, 32}, {1, 3, 65, 20}, {1, 1, 70, 3},
                          {1, 2, 130, 16}, {1, 1, 33, 128}};
const int kQuick[][4] = {{1, 1, 1, 8}, {1, 2, 70, 20}};

void fill(std::vector<float>& x, unsigned seed, float scale) {   // dev/common.h's stream
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& v : x) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        v = scale * ((float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f);
    }
}

bool close(const char* step, const char* what, const int* sh, const std::vector<float>& got,
           const std::vector<double>& want, double atol, double rtol) {
    double worst = 0;
    bool ok = true;
    for (size_t i = 0; i < got.size(); i++) {
        const double d = std::fabs(got[i] - want[i]);
        ok = ok && d <= atol + rtol * std::fabs(want[i]);   // NaN fails
        if (!(d <= worst)) worst = d;
    }
    std::printf("%-6s %s | B=%d H=%d T=%d D=%d | %s max abs diff %.2e\n", ok ? "OK" : "NOT OK",
                step, sh[0], sh[1], sh[2], sh[3], what, worst);
    return ok;
}

bool run(const Step& st, const int* sh) {
    const int BH = sh[0] * sh[1], T = sh[2], D = sh[3];
    if (const char* why = st.supports(BH, T, D)) {
        std::printf("skip   %s | B=%d H=%d T=%d D=%d | %s\n", st.name, sh[0], sh[1], T, D, why);
        return true;
    }
    const size_t n = (size_t)BH * T * D, nl = (size_t)BH * T;
    std::vector<float> q(n), k(n), v(n), dout(n), out(n, NAN), lse(nl, NAN);
    std::vector<float> dq(n, NAN), dk(n, NAN), dv(n, NAN);
    std::vector<float> ws(std::max<size_t>(1, st.workspace(BH, T, D)), NAN);
    fill(q, 1, 2.0f), fill(k, 2, 1.0f), fill(v, 3, 1.0f), fill(dout, 4, 1.0f);
    st.forward(q.data(), k.data(), v.data(), out.data(), lse.data(), ws.data(), BH, T, D, nullptr);
    if (st.backward)
        st.backward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(),
                    dk.data(), dv.data(), ws.data(), BH, T, D, nullptr);
    std::vector<double> w_out(n), w_lse(nl), w_dq(n), w_dk(n), w_dv(n);
    for (int h = 0; h < BH; h++)
        attention_reference_head(q.data(), k.data(), v.data(), st.backward ? dout.data() : nullptr,
                                 w_out.data(), w_lse.data(), w_dq.data(), w_dk.data(),
                                 w_dv.data(), h, T, D);
    bool ok = close(st.name, "out", sh, out, w_out, 2e-5, 1e-4);
    ok = close(st.name, "lse", sh, lse, w_lse, 2e-5, 1e-4) && ok;
    if (st.backward) {
        ok = close(st.name, "dq", sh, dq, w_dq, 1e-4, 1e-3) && ok;
        ok = close(st.name, "dk", sh, dk, w_dk, 1e-4, 1e-3) && ok;
        ok = close(st.name, "dv", sh, dv, w_dv, 1e-4, 1e-3) && ok;
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    const bool quick = argc > 1 && !std::strcmp(argv[1], "--quick");
    if (quick) argc--, argv++;
    bool ok = true;
    int ran = 0;
    for (const Step& st : kSteps) {
        bool wanted = argc == 1;
        for (int a = 1; a < argc; a++) wanted |= !std::strncmp(st.name, argv[a], std::strlen(argv[a]));
        if (!wanted) continue;
        ran++;
        if (quick)
            for (const auto& s : kQuick) ok = run(st, s) && ok;
        else
            for (const auto& s : kShapes) ok = run(st, s) && ok;
    }
    if (!ran) {
        std::fprintf(stderr, "no step matches; steps: 01 .. 04\n");
        return 2;
    }
    return ok ? 0 : 1;
}
