#include "bind_common.h"
PYBIND11_MODULE(_nn, m) {
    m.doc() = "nnlite nn kernels (placeholder)";
    nnlite::bind_runtime(m);
}
