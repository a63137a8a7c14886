"""A target with planted bugs, for the test of the fuzz harness itself
(tests/fuzz/test_fuzz_targets.py): ``run.py --targets selftest`` must report each of them.

Its regression inputs are an undocumented exception (``crash``), a hang (``hang``, with
NNLITE_FUZZ_TIMEOUT=1) and an allocation of 100 MiB for a 6-byte file (``memory``); a
``ValueError`` (``error``) is documented and fine. Fuzzing from the seed ``crasX`` finds the
crash within seconds (atheris reports the compared bytes to libFuzzer); with
NNLITE_FUZZ_SELFTEST=crash the other plants are off, so that it finds nothing else first.
"""
import os
import sys
import time

import _target

ALLOWED = (ValueError,)
MAX_LEN = 64


def setup(work):
    pass


def seeds(work):
    return {"ok": b"crasX", "error": b"error"}


def regressions(work):
    return {"crash": b"crash", "hang": b"hang", "memory": b"memory"}


def run(data, work):
    if data[:5] == b"crash":
        raise KeyError("planted crash")
    if data[:5] == b"error":
        raise ValueError("documented")
    if os.environ.get("NNLITE_FUZZ_SELFTEST") == "crash":
        return
    if data == b"hang":
        time.sleep(60)
    if data == b"memory":
        big = bytearray(100 << 20)
        del big


if __name__ == "__main__":
    sys.exit(_target.main(sys.modules[__name__]))
