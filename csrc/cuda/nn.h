// nn.h: the launchers of nn_kernels.cuh (plain C++; see csrc/cuda/README.md). Pointers are
// device pointers; a launcher only queues its kernels on `stream`.
#pragma once
#include <cstdint>

namespace nnl::cuda {
using Stream = void*;

// LayerNorm over the last axis of x (rows × C): y, and mean, rstd (rows each)
template <class T>
void nn_layernorm(const T* x, const T* gamma, const T* beta, double eps, int64_t rows,
                  int64_t C, T* y, T* mean, T* rstd, Stream stream);
// its backward: dx (rows × C), dgamma and dbeta (C each)
template <class T>
void nn_layernorm_backward(const T* g, const T* x, const T* gamma, const T* mean,
                           const T* rstd, int64_t rows, int64_t C, T* dx, T* dgamma, T* dbeta,
                           Stream stream);
// out[i, :] = table[ids[i], :], n ids (int64, already checked to lie in [0, vocab))
template <class T>
void nn_embedding(const int64_t* ids, const T* table, int64_t n, int64_t C, T* out,
                  Stream stream);
// dtable[ids[i], :] += g[i, :]
template <class T>
void nn_embedding_backward(const int64_t* ids, const T* g, int64_t n, int64_t C, T* dtable,
                           Stream stream);
// the optimizers' steps, in place (velocity unused when momentum is 0)
template <class T>
void nn_sgd_update(T* p, const T* g, T* velocity, int64_t n, double lr, double momentum,
                   bool nesterov, double weight_decay, Stream stream);
template <class T>
void nn_rmsprop_update(T* p, const T* g, T* sq, int64_t n, double lr, double alpha, double eps,
                       double weight_decay, Stream stream);

// Multi-tensor launches take device tables: pointer arrays (as uint64), int64 sizes, double
// weight decays, and first_block (ntensors + 1 int64: tensor i is worked by blocks
// [first_block[i], first_block[i + 1]), each on `chunk` elements; nn_chunk() is that size).
// Every tensor must have at least one element.
int64_t nn_chunk();
template <class T>
void nn_adam_many(const uint64_t* ps, const uint64_t* gs, const uint64_t* ms, const uint64_t* vs,
                  const int64_t* sizes, const double* weight_decays, const int64_t* first_block,
                  int ntensors, int64_t nblocks, double lr, double beta1, double beta2,
                  double eps, int64_t step, bool decoupled, Stream stream);
// out[0] = Σ over the tensors of Σ x², in double; partial: nblocks doubles of scratch
template <class T>
void nn_sum_squares_many(const uint64_t* xs, const int64_t* sizes, const int64_t* first_block,
                         int ntensors, int64_t nblocks, double* partial, double* out,
                         Stream stream);
}  // namespace nnl::cuda
