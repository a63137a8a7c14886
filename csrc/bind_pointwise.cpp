#include "bind_common.h"
PYBIND11_MODULE(_pointwise, m) {
    m.doc() = "nnlite pointwise kernels (placeholder)";
    nnlite::bind_runtime(m);
}
