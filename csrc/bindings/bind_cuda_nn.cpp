// Bindings of csrc/cuda/nn.cu (nnlite/ops/cuda_nn.py): one Python function per launcher and
// dtype, suffixed _f32 / _f64. Pointers arrive as ints, the stream as an int (bind_cuda.h).
#include "bindings/bind_cuda.h"
#include "cuda/nn.h"

namespace {
namespace py = pybind11;
using nnl::cuda::dev_ptr;
using nnl::cuda::stream_of;

template <class T>
void bind_dtype(py::module_& m, const std::string& sfx) {
    m.def(("nn_layernorm" + sfx).c_str(),
          [](uintptr_t x, uintptr_t gamma, uintptr_t beta, double eps, int64_t rows, int64_t C,
             uintptr_t y, uintptr_t mean, uintptr_t rstd, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_layernorm<T>(dev_ptr<const T>(x), dev_ptr<const T>(gamma),
                                         dev_ptr<const T>(beta), eps, rows, C, dev_ptr<T>(y),
                                         dev_ptr<T>(mean), dev_ptr<T>(rstd), stream_of(s));
              nnl::cuda::check("layernorm");
          });
    m.def(("nn_layernorm_backward" + sfx).c_str(),
          [](uintptr_t g, uintptr_t x, uintptr_t gamma, uintptr_t mean, uintptr_t rstd,
             int64_t rows, int64_t C, uintptr_t dx, uintptr_t dgamma, uintptr_t dbeta,
             uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_layernorm_backward<T>(
                  dev_ptr<const T>(g), dev_ptr<const T>(x), dev_ptr<const T>(gamma),
                  dev_ptr<const T>(mean), dev_ptr<const T>(rstd), rows, C, dev_ptr<T>(dx),
                  dev_ptr<T>(dgamma), dev_ptr<T>(dbeta), stream_of(s));
              nnl::cuda::check("layernorm_backward");
          });
    m.def(("nn_embedding" + sfx).c_str(),
          [](uintptr_t ids, uintptr_t table, int64_t n, int64_t C, uintptr_t out, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_embedding<T>(dev_ptr<const int64_t>(ids), dev_ptr<const T>(table),
                                         n, C, dev_ptr<T>(out), stream_of(s));
              nnl::cuda::check("embedding");
          });
    m.def(("nn_embedding_backward" + sfx).c_str(),
          [](uintptr_t ids, uintptr_t g, int64_t n, int64_t C, uintptr_t dtable, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_embedding_backward<T>(dev_ptr<const int64_t>(ids),
                                                  dev_ptr<const T>(g), n, C,
                                                  dev_ptr<T>(dtable), stream_of(s));
              nnl::cuda::check("embedding_backward");
          });
    m.def(("nn_sgd_update" + sfx).c_str(),
          [](uintptr_t p, uintptr_t g, uintptr_t vel, int64_t n, double lr, double momentum,
             bool nesterov, double wd, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_sgd_update<T>(dev_ptr<T>(p), dev_ptr<const T>(g), dev_ptr<T>(vel),
                                          n, lr, momentum, nesterov, wd, stream_of(s));
              nnl::cuda::check("sgd_update");
          });
    m.def(("nn_rmsprop_update" + sfx).c_str(),
          [](uintptr_t p, uintptr_t g, uintptr_t sq, int64_t n, double lr, double alpha,
             double eps, double wd, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_rmsprop_update<T>(dev_ptr<T>(p), dev_ptr<const T>(g),
                                              dev_ptr<T>(sq), n, lr, alpha, eps, wd,
                                              stream_of(s));
              nnl::cuda::check("rmsprop_update");
          });
    m.def(("nn_adam_many" + sfx).c_str(),
          [](uintptr_t ps, uintptr_t gs, uintptr_t ms, uintptr_t vs, uintptr_t sizes,
             uintptr_t wds, uintptr_t first_block, int ntensors, int64_t nblocks, double lr,
             double beta1, double beta2, double eps, int64_t step, bool decoupled,
             uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_adam_many<T>(
                  dev_ptr<const uint64_t>(ps), dev_ptr<const uint64_t>(gs),
                  dev_ptr<const uint64_t>(ms), dev_ptr<const uint64_t>(vs),
                  dev_ptr<const int64_t>(sizes), dev_ptr<const double>(wds),
                  dev_ptr<const int64_t>(first_block), ntensors, nblocks, lr, beta1, beta2, eps,
                  step, decoupled, stream_of(s));
              nnl::cuda::check("adam_update_many");
          });
    m.def(("nn_sum_squares_many" + sfx).c_str(),
          [](uintptr_t xs, uintptr_t sizes, uintptr_t first_block, int ntensors,
             int64_t nblocks, uintptr_t partial, uintptr_t out, uintptr_t s) {
              py::gil_scoped_release nogil;
              nnl::cuda::nn_sum_squares_many<T>(
                  dev_ptr<const uint64_t>(xs), dev_ptr<const int64_t>(sizes),
                  dev_ptr<const int64_t>(first_block), ntensors, nblocks,
                  dev_ptr<double>(partial), dev_ptr<double>(out), stream_of(s));
              nnl::cuda::check("sum_squares_many");
          });
}

void bind(py::module_& m) {
    bind_dtype<float>(m, "_f32");
    bind_dtype<double>(m, "_f64");
    m.def("nn_chunk", &nnl::cuda::nn_chunk,
          "elements per block of the multi-tensor kernels (Adam, sum of squares)");
}
}  // namespace

NNL_CUDA_BINDINGS(nn, bind)
