"""Four Python threads calling the compiled kernels at once (they release the GIL) get the
same bits as one thread calling them in turn: no shared scratch buffer, no per-thread setting
that leaks into another thread's call."""
import threading

import numpy as np

from nnlite import ops


def _work(seed):
    """A little of everything that runs threaded or keeps a workspace; returns the results."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((65, 257)).astype(np.float32)
    b = rng.standard_normal((257, 63)).astype(np.float32)
    q, k, v = (rng.standard_normal((2, 3, 65, 16)).astype(np.float32) for _ in range(3))
    x = rng.standard_normal((257, 65)).astype(np.float32)
    gamma, beta = np.ones(65, np.float32), np.zeros(65, np.float32)
    y, mean, rstd = ops.layernorm(x, gamma, beta)
    dx, dgamma, dbeta = ops.layernorm_backward(y, x, gamma, mean, rstd)
    att = ops.attention(q, k, v)
    datt = ops.attention_backward(q, k, v, att, att)
    p, g = [a.copy(), b.copy()], [a * 0.5, b * 0.25]
    m, s = [np.zeros_like(t) for t in p], [np.zeros_like(t) for t in p]
    for step in (1, 2, 3):
        ops.adam_update_many(p, g, m, s, lr=1e-2, weight_decays=0.1, step=step)
    return [ops.gemm(a, b), ops.softmax(x), y, dx, dgamma, dbeta, att, *datt, *p, *m, *s,
            np.float64(ops.sum_squares_many([a, b, x]))]


def test_four_threads_at_once_match_one():
    seeds = [0, 1, 2, 3]
    want = {s: _work(s) for s in seeds}
    got, errors = {}, []

    def run(seed):
        try:
            for _ in range(5):
                got.setdefault(seed, []).append(_work(seed))
        except Exception as e:      # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in seeds:
        for results in got[s]:
            for w, r in zip(want[s], results):
                np.testing.assert_array_equal(r, w)
