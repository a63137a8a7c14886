"""The array buffer cache (nnlite/ops/memory.py, csrc/common/array_pool.cpp): inside
``ops.array_pool()`` numpy allocates through nnlite's cache, which reuses freed buffers."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import nnlite as nl
from nnlite import ops
from nnlite.ops import memory

needs_pool = pytest.mark.skipif(not memory._ENABLED,
                                reason="compiled _memory module not built or pool switched off")

try:                                    # numpy >= 2
    from numpy._core.multiarray import get_handler_name
except ImportError:                     # numpy 1.x
    from numpy.core.multiarray import get_handler_name

BIG = 1 << 18                           # 256 Ki float64 = 2 MiB: pooled
SMALL = 100                             # 800 bytes: plain malloc, never cached


@pytest.fixture(autouse=True)
def fresh_cache():
    ops.empty_cache()
    yield
    ops.empty_cache()


@needs_pool
def test_a_freed_buffer_is_reused_inside_the_scope():
    with ops.array_pool():
        a = np.empty(BIG)
        address = a.ctypes.data
        assert get_handler_name(a) == "nnlite_pool"
        del a
        hits = ops.pool_info()["hits"]
        b = np.empty(BIG)
        assert b.ctypes.data == address
        assert ops.pool_info()["hits"] == hits + 1
        assert b.ctypes.data % 64 == 0


@needs_pool
def test_outside_the_scope_numpy_allocates_as_before():
    with ops.array_pool():
        with ops.array_pool():          # nested: each scope puts back what it found
            pass
        assert get_handler_name(np.empty(BIG)) == "nnlite_pool"
    assert get_handler_name(np.empty(BIG)) != "nnlite_pool"


@needs_pool
def test_zeros_from_a_reused_dirty_buffer_are_zeros():
    with ops.array_pool():
        a = np.empty(BIG)
        a.fill(7.0)
        del a
        z = np.zeros(BIG)
        assert not z.any()


@needs_pool
def test_an_array_made_inside_returns_its_buffer_when_freed_outside():
    with ops.array_pool():
        a = np.ones(BIG)
    before = ops.pool_info()["cached_bytes"]
    del a
    assert ops.pool_info()["cached_bytes"] >= before + BIG * 8
    with ops.array_pool():
        assert ops.pool_info()["hits"] >= 0
        b = np.empty(BIG)               # takes it back
    assert ops.pool_info()["cached_bytes"] == before
    del b


@needs_pool
def test_small_arrays_are_not_cached():
    with ops.array_pool():
        a = np.ones(SMALL)
        assert get_handler_name(a) == "nnlite_pool"
        del a
    assert ops.pool_info()["cached_blocks"] == 0


@needs_pool
def test_resize_keeps_the_data():
    with ops.array_pool():
        a = np.arange(BIG, dtype=np.float64)
        a.resize(3 * BIG, refcheck=False)          # numpy reallocs through the handler
        assert np.array_equal(a[:BIG], np.arange(BIG, dtype=np.float64))
        assert not a[BIG:].any()
        a.resize(10, refcheck=False)
        assert np.array_equal(a, np.arange(10, dtype=np.float64))


@needs_pool
def test_limit_and_empty_cache():
    limit = ops.pool_info()["limit_bytes"]
    try:
        ops.set_pool_limit(0)
        with ops.array_pool():
            a = np.empty(BIG)
            del a
        assert ops.pool_info()["cached_bytes"] == 0
        ops.set_pool_limit(limit)
        with ops.array_pool():
            a = np.empty(BIG)
            del a
        assert ops.pool_info()["cached_blocks"] == 1
        ops.empty_cache()
        assert ops.pool_info()["cached_bytes"] == 0
    finally:
        ops.set_pool_limit(limit)
    with pytest.raises(ValueError, match="set_pool_limit"):
        ops.set_pool_limit(-1)


@needs_pool
def test_threads_allocating_at_once_never_share_a_buffer():
    errors = []

    def work(tid):
        rng = np.random.default_rng(tid)
        with ops.array_pool():     # a new thread starts in its own context: its own scope
            live = []
            for i in range(300):
                n = int(rng.integers(BIG // 8, BIG))
                a = np.full(n, float(tid))
                live.append(a)
                if len(live) > 4:
                    b = live.pop(int(rng.integers(0, len(live))))
                    if not (b == tid).all():
                        errors.append((tid, i))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _tiny_mlp():
    nl.random.seed(0)
    model = nl.Sequential([nl.Linear(64, 512), nl.ReLU(), nl.Linear(512, 10)])
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
    return model


@needs_pool
def test_training_steps_allocate_from_the_cache():
    model = _tiny_mlp()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 64)).astype(np.float32), rng.integers(0, 10, 256)
    model.train_step(x, y)
    misses = ops.pool_info()["misses"]
    for _ in range(3):
        model.train_step(x, y)
    info = ops.pool_info()
    assert info["hits"] > 0
    assert info["misses"] == misses     # later steps find every big buffer in the cache
    relu = model.layers[1]
    cached = [v for v in vars(relu).values() if isinstance(v, np.ndarray) and v.nbytes >= BIG]
    assert cached and all(handler(v) == "nnlite_pool" for v in cached)


def handler(a):
    """The memory handler of the array owning ``a``'s data (a view has none of its own)."""
    while a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return get_handler_name(a)


SCRIPT = """
import numpy as np, nnlite as nl
nl.random.seed(0)
m = nl.Sequential([nl.Linear(64, 512), nl.ReLU(), nl.Linear(512, 10)])
m.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
r = np.random.default_rng(0)
x, y = r.standard_normal((256, 64)).astype(np.float32), r.integers(0, 10, 256)
print(repr([m.train_step(x, y) for _ in range(5)]), nl.ops.pool_info()["enabled"])
"""


def test_results_do_not_depend_on_the_cache():
    env = dict(os.environ)
    outs = {}
    for flag in ("1", "0"):
        env["NNLITE_ARRAY_POOL"] = flag
        r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, check=True)
        outs[flag] = r.stdout.split()
    assert outs["1"][:-1] == outs["0"][:-1]
    assert outs["0"][-1] == "False"
