"""What every atheris fuzz target of tests/fuzz/targets/ shares (run them through
tests/fuzz/targets/run.py, or .ci/fuzz, which also make their seeds).

A target module defines:

``ALLOWED``
    the exception types its reader documents for bad files; any other exception is a finding.
``error_ok(exc, path)`` (optional)
    a further check of an allowed exception (e.g. that its message names the file).
``MAX_LEN``
    libFuzzer's -max_len for it (the seeds must fit).
``setup(work)``
    once per process, before any input: build what ``run`` needs in the folder ``work``.
``seeds(work)``, ``regressions(work)``
    ``{name: bytes}``: valid inputs made by nnlite itself (the seed corpus), and inputs that
    reproduce known attacks (replayed before fuzzing, never mutated).
``run(data, work)``
    feed one input to the reader, writing the file(s) it reads with :func:`write`.

Per input, three rules (a finding otherwise, written to an artifact file):

* no exception other than ``ALLOWED`` (and ``error_ok``);
* no hang: libFuzzer's ``-timeout`` (seconds per input) when fuzzing, ``signal.alarm`` when
  replaying;
* peak memory: the most the reader allocates (tracemalloc: Python objects, and numpy arrays,
  which numpy reports to it) is at most ``MEMORY_FACTOR × file size + allowance``
  (``MEMORY_FACTOR``: 64 unless the target says otherwise; NNLITE_FUZZ_ALLOWANCE_MB, default
  8 MiB). libFuzzer's ``-rss_limit_mb`` is the backstop for memory outside tracemalloc's view.

Command line: ``python <target>.py --prepare SEEDS REGRESSIONS [--skip-regressions]`` writes
the two corpora into those folders and replays them once each (every failure reported as a
``FINDING <path>`` line and its traceback; exit status 1 if any); ``python <target>.py
--replay FILE...`` replays files (a finding's input, to reproduce it); anything else goes to
atheris/libFuzzer (``python <target>.py CORPUS SEEDS -max_total_time=60 ...``).
"""
import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import tracemalloc
import traceback

MEMORY_FACTOR = 64
ALLOWANCE = int(float(os.environ.get("NNLITE_FUZZ_ALLOWANCE_MB", "8")) * (1 << 20))
REPLAY_TIMEOUT = int(os.environ.get("NNLITE_FUZZ_TIMEOUT", "10"))


_written = [0]          # bytes written by write() for the current input


def write(path, data):
    """Write ``data`` to ``path`` for the reader; the memory budget counts every byte written."""
    with open(path, "wb") as f:
        f.write(data)
    _written[0] += len(data)
    return path


def instrumented(*packages):
    """``with instrumented("nnlite"): import nnlite``: coverage instrumentation for libFuzzer
    (a plain import when only writing or replaying corpora, or without atheris)."""
    if any(a in sys.argv for a in ("--prepare", "--replay")):
        return contextlib.nullcontext()
    import atheris
    return atheris.instrument_imports(include=list(packages))


class MemoryFinding(Exception):
    """The reader allocated more than the target's budget for the input."""


class HangFinding(Exception):
    """The reader ran past the per-input time limit (replay mode)."""


def _work_dir():
    """A fresh folder for the files the readers read: under NNLITE_FUZZ_TMP (run.py's work
    folder, emptied by its next run), else a temporary folder removed at a normal exit."""
    base = os.environ.get("NNLITE_FUZZ_TMP")
    if base:
        os.makedirs(base, exist_ok=True)
        return tempfile.mkdtemp(prefix="nnlite-fuzz-", dir=base)
    work = tempfile.mkdtemp(prefix="nnlite-fuzz-")
    atexit.register(shutil.rmtree, work, True)
    return work


def make_one_input(target, work):
    """The function libFuzzer calls: one input through ``target.run`` under the three rules."""
    allowed = tuple(target.ALLOWED)
    error_ok = getattr(target, "error_ok", None)
    factor = getattr(target, "MEMORY_FACTOR", MEMORY_FACTOR)

    def one_input(data):
        data = bytes(data)
        _written[0] = 0
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        try:
            target.run(data, work)
        except allowed as e:
            if error_ok is not None and not error_ok(e, work):
                raise AssertionError(f"{type(e).__name__} is allowed, but not this one: "
                                     f"{e}") from e
        peak = tracemalloc.get_traced_memory()[1] - before
        size = max(_written[0], len(data))
        limit = factor * size + ALLOWANCE
        if peak > limit:
            raise MemoryFinding(f"{peak:,} bytes allocated for a {size:,}-byte file: more "
                                f"than {factor} x its size + {ALLOWANCE / (1 << 20):g} "
                                f"MiB = {limit:,}")
    return one_input


def _write(corpus, folder):
    """Write ``{name: bytes}`` into ``folder``; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, data in corpus.items():
        paths.append(os.path.join(folder, name))
        with open(paths[-1], "wb") as f:
            f.write(data)
    return paths


def _alarm(signum, frame):
    raise HangFinding(f"input still running after {REPLAY_TIMEOUT} s")


def _replay(one_input, files):
    signal.signal(signal.SIGALRM, _alarm)
    failed = 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        signal.alarm(REPLAY_TIMEOUT)
        try:
            one_input(data)
        except Exception:           # noqa: BLE001  (every finding is reported)
            failed += 1
            print(f"FINDING {path}", flush=True)
            traceback.print_exc()
        finally:
            signal.alarm(0)
    print(f"replayed {len(files)} inputs, {failed} findings", flush=True)
    return 1 if failed else 0


def main(target):
    """Entry point of a target module: ``_target.main(sys.modules[__name__])``."""
    argv = sys.argv[1:]
    work = _work_dir()
    target.setup(work)
    seeds = target.seeds(work)
    files = None
    if argv and argv[0] == "--prepare":
        files = _write(seeds, argv[1])
        regressions = _write(target.regressions(work), argv[2])
        if "--skip-regressions" not in argv:
            files += regressions
    elif argv and argv[0] == "--replay":
        files = argv[1:]
    one_input = make_one_input(target, work)
    # warm up (first imports, caches) before memory is measured: run every seed once
    tracemalloc.start()
    for data in seeds.values():
        try:
            one_input(data)
        except Exception:           # noqa: BLE001  (a seed that fails is reported by replay)
            pass
    if files is not None:
        return _replay(one_input, files)
    import atheris
    target.run = atheris.instrument_func(target.run)       # the target's own comparisons too
    atheris.Setup([sys.argv[0]] + argv, one_input)
    atheris.Fuzz()
    return 0
