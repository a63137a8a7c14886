#include "bind_common.h"
PYBIND11_MODULE(_gemm, m) {
    m.doc() = "nnlite gemm kernels (placeholder)";
    nnlite::bind_runtime(m);
}
