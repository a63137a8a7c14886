"""nnlite._args: the one check for integer / fraction / seed arguments."""
import numpy as np
import pytest

from nnlite._args import check_fraction, check_int, check_seed, is_int


def test_is_int():
    assert is_int(3) and is_int(np.int64(3)) and is_int(np.uint8(0)) and is_int(-1)
    for v in (True, np.True_, 3.0, "3", None, np.array(3)):
        assert not is_int(v)


def test_check_int():
    assert check_int("Owner", "n", np.int32(5), low=1) == 5
    assert type(check_int("Owner", "n", np.int32(5))) is int
    with pytest.raises(TypeError, match=r"Owner: n must be an int, got True"):
        check_int("Owner", "n", True)
    with pytest.raises(TypeError, match=r"Owner: n must be an int, got 2.0"):
        check_int("Owner", "n", 2.0)
    with pytest.raises(ValueError, match=r"Owner: n must be >= 1, got 0"):
        check_int("Owner", "n", 0, low=1)


def test_check_fraction_and_seed():
    assert check_fraction("f", "p", 1) == 1.0
    for bad in (True, 1.5, -0.1, "0.5"):
        with pytest.raises(ValueError, match=r"f: p must be a number in \[0, 1\]"):
            check_fraction("f", "p", bad)
    g = np.random.default_rng(0)
    assert check_seed("S", None) is None and check_seed("S", 7) == 7
    assert check_seed("S", g, generators=True) is g
    with pytest.raises(TypeError, match=r"S: seed must be None or an int, got"):
        check_seed("S", g)
    with pytest.raises(TypeError, match=r"S: seed must be None, an int or a numpy.random.Gen"):
        check_seed("S", 1.0, generators=True)
