// dev/cuda/sgemm/shim_test.cpp: every SGEMM step's kernel (NN_name.cuh) run through the shim
// (csrc/cuda/shim/cuda_shim.h: CUDA threads as std::threads, __syncthreads a std::barrier) on
// small awkward sizes, checked against reference.h. No GPU needed; built by `make -C dev/cuda
// shim-test` and tests/test_dev.py, also under ThreadSanitizer (a missing barrier is a race).
//
//     g++ -std=c++20 -O1 -pthread -DNNLITE_CUDA_SHIM -Icsrc -Icsrc/cuda -o sgemm_shim_test
//         dev/cuda/sgemm/shim_test.cpp   (one line)
//     ./sgemm_shim_test [--quick] [step ...]   e.g. 03 05 (default: every step, every size);
//                                              exit 0 all OK, 1 not, 2 usage
//
// Step 07 (TF32 WMMA) needs tensor-core fragments the shim does not have: nvcc only.
#include "01_naive.cuh"
#include "02_smem_tiling.cuh"
#include "03_blocktile_1d.cuh"
#include "04_blocktile_2d.cuh"
#include "05_vectorized.cuh"
#include "06_warptiling.cuh"
#include "reference.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using launch_fn = void (*)(const float*, const float*, float*, int, int, int, cudaStream_t);
using supports_fn = const char* (*)(int, int, int);
struct Step { const char* name; launch_fn launch; supports_fn supports; };

const Step kSteps[] = {
    {"01_naive", sgemm01::launch, sgemm01::supports},
    {"02_smem_tiling", sgemm02::launch, sgemm02::supports},
    {"03_blocktile_1d", sgemm03::launch, sgemm03::supports},
    {"04_blocktile_2d", sgemm04::launch, sgemm04::supports},
    {"05_vectorized", sgemm05::launch, sgemm05::supports},
    {"06_warptiling", sgemm06::launch, sgemm06::supports},
};

// M K N: 1s, primes, one past a tile, more than one block tile in each direction (129 > 128);
// the float4 steps take the ones with N and K multiples of 4 and say "skip" for the others
const int kSizes[][3] = {{1, 1, 1}, {7, 33, 65}, {65, 7, 33}, {3, 70, 2}, {33, 129, 31},
                         {1, 4, 4}, {7, 12, 68}, {65, 36, 132}, {130, 20, 8}, {2, 132, 4}};
// --quick (the ThreadSanitizer run: every CUDA thread is an OS thread under TSan's watch): one
// odd size, one float4 size with two k-tiles of every step and two block columns of 128
const int kQuick[][3] = {{7, 33, 65}, {9, 20, 132}};

void fill(std::vector<float>& x, unsigned seed) {   // dev/common.h's stream
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& v : x) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        v = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f;
    }
}

bool run(const Step& st, int M, int K, int N) {
    if (const char* why = st.supports(M, N, K)) {
        std::printf("skip   %s | M=%d K=%d N=%d | %s\n", st.name, M, K, N, why);
        return true;
    }
    std::vector<float> A((size_t)M * K), B((size_t)K * N), C((size_t)M * N, NAN);
    fill(A, 1), fill(B, 2);
    st.launch(A.data(), B.data(), C.data(), M, N, K, nullptr);
    std::vector<double> want(N);
    double worst = 0, tol = sgemm_tolerance(K, false);
    for (int i = 0; i < M; i++) {
        sgemm_reference_row(A.data(), B.data(), want.data(), i, N, K);
        for (int j = 0; j < N; j++) {
            const double d = std::fabs(C[(size_t)i * N + j] - want[j]);
            if (!(d <= worst)) worst = d;   // NaN (an element never written) sticks
        }
    }
    const bool ok = worst <= tol;
    std::printf("%-6s %s | M=%d K=%d N=%d | max abs diff %.2e (tolerance %.1e)\n",
                ok ? "OK" : "NOT OK", st.name, M, K, N, worst, tol);
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
            for (const auto& s : kQuick) ok = run(st, s[0], s[1], s[2]) && ok;
        else
            for (const auto& s : kSizes) ok = run(st, s[0], s[1], s[2]) && ok;
    }
    if (!ran) {
        std::fprintf(stderr, "no step matches; steps: 01 .. 06\n");
        return 2;
    }
    return ok ? 0 : 1;
}
