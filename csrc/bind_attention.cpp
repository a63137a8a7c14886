#include "bind_common.h"
PYBIND11_MODULE(_attention, m) {
    m.doc() = "nnlite attention kernels (placeholder)";
    nnlite::bind_runtime(m);
}
