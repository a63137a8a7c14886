// nnlite.ops._memory: the array buffer cache (common/array_pool.h) as a numpy memory handler.
//
// numpy (>= 1.22) allocates every array's data through a "handler" held in a context variable,
// and each array keeps the handler it was allocated with, to free its data through it later.
// use() installs nnlite's handler for the current context and returns the previous one;
// restore(previous) puts it back. nnlite/ops/memory.py wraps the pair as a context manager.
// An array made inside the scope and freed outside it still goes back to the cache.
#define PY_ARRAY_UNIQUE_SYMBOL nnlite_memory_ARRAY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define NPY_TARGET_VERSION NPY_1_22_API_VERSION
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <climits>
#include <cstdint>

#include "common/array_pool.h"

namespace py = pybind11;

static void* h_malloc(void*, size_t n) { return nnlite::pool_allocate(n, false); }
static void* h_calloc(void*, size_t nelem, size_t elsize) {
    if (elsize && nelem > SIZE_MAX / elsize) return nullptr;
    return nnlite::pool_allocate(nelem * elsize, true);
}
static void* h_realloc(void*, void* p, size_t n) { return nnlite::pool_resize(p, n); }
static void h_free(void*, void* p, size_t) { nnlite::pool_release(p); }

static PyDataMem_Handler g_handler = {
    "nnlite_pool", 1, {nullptr, h_malloc, h_calloc, h_realloc, h_free}};

PYBIND11_MODULE(_memory, m) {
    if (_import_array() < 0) throw py::error_already_set();
    // the capsule numpy stores in every array allocated through it (a static handler: no
    // destructor)
    py::object capsule = py::reinterpret_steal<py::object>(
        PyCapsule_New(&g_handler, "mem_handler", nullptr));
    if (!capsule) throw py::error_already_set();
    m.attr("HANDLER") = capsule;
    m.def("use", []() {
        py::object h = py::module_::import("nnlite.ops._memory").attr("HANDLER");
        PyObject* old = PyDataMem_SetHandler(h.ptr());
        if (!old) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(old);
    }, "Install the cache's handler for this context; returns the previous handler.");
    m.def("restore", [](py::object old) {
        PyObject* prev = PyDataMem_SetHandler(old.is_none() ? nullptr : old.ptr());
        if (!prev) throw py::error_already_set();
        Py_DECREF(prev);
    }, py::arg("previous"), "Put back the handler use() returned.");
    m.def("clear", &nnlite::pool_clear, "Free every cached block.");
    m.def("set_limit", &nnlite::pool_set_limit, py::arg("bytes"),
          "Cache at most this many bytes of free blocks.");
    m.def("stats", []() {
        const nnlite::PoolStats s = nnlite::pool_stats();
        py::dict d;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        d["cached_bytes"] = s.cached_bytes;
        d["cached_blocks"] = s.cached_blocks;
        d["limit_bytes"] = s.limit_bytes;
        return d;
    });
}
