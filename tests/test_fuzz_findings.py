"""Issue 9, "Make the attacks permanent": what the fuzzers of tests/fuzz/ found, each pinned by a
test that failed before its fix.

* The act_forward / act_backward twins returned a numpy scalar for a 0-d input (numpy's ufuncs
  do), the compiled ops a 0-d array: the result's type depended on NNLITE_BACKEND.
* The embedding_backward twin raised on a table with no columns (``reshape(-1, 0)``); the
  compiled op returned.
* Causal attention backward: an inf or NaN in one query row reached the dK of keys that row
  cannot see (0 · NaN at the masked scores), in the compiled op through dS, in the twin
  through P and dS; a masked score now contributes nothing in both.
* The gelu twins computed ½x(1 + tanh u), which cancels to exactly 0 for x below about -5
  (float32) / -10 (float64) where the true value (and the kernel's x·sigmoid(2u)) is not 0:
  gelu'(x)·inf was NaN in the twin and -inf in the kernel. They now use the kernels' form.
* Resuming the GPT example from a ckpt.json whose sampler or random state holds a number out of
  range (a huge int, Infinity) raised OverflowError instead of the ValueError naming the file.
"""
import json

import numpy as np
import pytest

import nnlite as nl
from _scripts import load_script
from nnlite import ops
from nnlite.ops import reference as ref


@pytest.mark.parametrize("fn", [ops.act_forward, ref.act_forward])
@pytest.mark.parametrize("act", ["none", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
def test_activations_of_a_0d_array_are_0d_arrays(fn, act):
    x = np.array(0.5, np.float32)
    y = fn(x, act)
    assert type(y) is np.ndarray and y.shape == () and y.dtype == np.float32
    for bfn in (ops.act_backward, ref.act_backward):
        d = bfn(x, x, y, act)
        assert type(d) is np.ndarray and d.shape == () and d.dtype == np.float32


@pytest.mark.parametrize("fn", [ops.embedding_backward, ref.embedding_backward])
def test_embedding_backward_of_a_table_without_columns(fn):
    dtable = np.zeros((3, 0), np.float32)
    fn(np.array(1), np.zeros((0,), np.float32), dtable)
    fn(np.array([[0, 2]]), np.zeros((1, 2, 0), np.float32), dtable)
    assert dtable.shape == (3, 0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")       # the twin's inf - inf
@pytest.mark.parametrize("fn", [ops.attention_backward, ref.attention_backward])
@pytest.mark.parametrize("T", [3, 70])          # 70: two key tiles of 64 in the kernel
def test_a_nan_query_row_does_not_reach_the_keys_it_cannot_see(fn, T):
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, 2, T, 4)).astype(np.float32) for _ in range(4))
    q[0, 1, 1, 2] = -np.inf                     # query 1 of head 1: its scores are ±inf
    out = ref.attention(q, k, v)
    dq, dk, dv = fn(q, k, v, out, g)
    assert np.isnan(dq[0, 1, 1]).all() and np.isfinite(dq[0, 1, [0, 2]]).all()
    assert np.isfinite(dv[0, 1, 2:]).all()      # keys 2.. are masked for query 1
    assert np.isfinite(dk[0, 1, 2:, [0, 1, 3]]).all()   # (dim 2: 0 · q[1, 2] = 0 · inf)
    assert np.isfinite(dq[0, 0]).all() and np.isfinite(dk[0, 0]).all()   # the other head


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_twin_does_not_cancel_to_zero_in_the_negative_tail(dtype):
    x = np.array([-4.0, -6.0, -7.2, -8.0, -9.0], dtype)
    g = np.ones_like(x)
    y, d = ref.act_forward(x, "gelu"), ref.act_backward(g, x, x, "gelu")
    assert (y < 0).all() and (d < 0).all()          # tiny, but not 0 (was 0 from -5 / -10 on)
    np.testing.assert_allclose(y, ops.act_forward(x, "gelu"), rtol=2e-5 if dtype == np.float32
                               else 1e-12)
    np.testing.assert_allclose(d, ops.act_backward(g, x, x, "gelu"),
                               rtol=2e-5 if dtype == np.float32 else 1e-12)
    inf = np.full_like(x, np.inf)
    assert (ref.act_backward(inf, x, x, "gelu") == -np.inf).all()
    assert (ops.act_backward(inf, x, x, "gelu") == -np.inf).all()


@pytest.fixture(scope="module")
def gpt():
    return load_script("examples/gpt_shakespeare.py")


def _samplers():
    ids = np.arange(50) % 7
    return {k: nl.data.RandomWindowSampler(ids, 4, 2, seed=i)
            for i, k in enumerate(("train", "eval_train", "eval_val"))}


@pytest.mark.parametrize("bad", [
    {"bit_generator": {"bit_generator": "PCG64", "state": {"state": 2 ** 200, "inc": 1},
                       "has_uint32": 0, "uinteger": 0}},
    {"bit_generator": {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1},
                       "has_uint32": 0, "uinteger": 0}, "batches_drawn": float("inf")},
    {"bit_generator": {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1},
                       "has_uint32": 0, "uinteger": 0}, "batches_drawn": 1e400},
])
def test_sampler_state_with_numbers_out_of_range_is_a_value_error(bad):
    s = _samplers()["train"]
    before = (s.state_dict(), s.batches_drawn)
    bad = json.loads(json.dumps(bad))           # as read from ckpt.json (1e400: Infinity)
    with pytest.raises(ValueError, match="RandomWindowSampler.load_state_dict"):
        s.load_state_dict(bad)
    assert (s.state_dict(), s.batches_drawn) == before      # untouched


def test_resume_with_a_random_state_out_of_range_names_the_file(gpt, tmp_path):
    good = _samplers()["train"].state_dict()
    state = {"samplers": {k: good for k in ("train", "eval_train", "eval_val")},
             "random_state": {"bit_generator": "PCG64", "state": {"state": 2 ** 200, "inc": 1},
                              "has_uint32": 0, "uinteger": 0}}
    path = str(tmp_path / "ckpt.json")
    with pytest.raises(ValueError, match="ckpt.json: samplers or random_state: OverflowError"):
        gpt.restore_samplers(_samplers(), state, path)


def test_idx_header_with_a_zero_and_huge_dimensions_is_a_clear_error(tmp_path):
    """Fuzzing finding (CI, atheris idx_reader): an empty shape whose other dimensions multiply
    past what numpy can index reached reshape ('array is too big'), an undocumented ValueError."""
    import gzip

    from nnlite.datasets import _idx
    from nnlite.datasets._errors import DataFileError
    path = tmp_path / "crash.idx.gz"
    header = b"\x00\x00\x08\x04" + (0).to_bytes(4, "big") + (2 ** 32 - 1).to_bytes(4, "big") * 3
    path.write_bytes(gzip.compress(header))
    with pytest.raises(DataFileError, match="which no array can have"):
        _idx.read_idx(str(path))
