"""The compiled kernels' OpenMP threads spin only briefly after a kernel, then sleep: on a busy
machine a thread that spins for milliseconds after every kernel takes cores the other programs
(and nnlite's own main thread) are waiting for (nnlite/ops/_openmp_wait.py)."""
import os

import _child as child
import pytest

from nnlite import ops

# CPU time the process uses while its main thread sleeps right after a threaded kernel: what
# the worker threads burn waiting for the next kernel (median of 15 tries, in ms)
IDLE_CPU = """
import time, numpy as np, nnlite as nl
nl.ops.set_num_threads(2)
x = np.ones((512, 1024), np.float32)
used = []
for _ in range(15):
    nl.ops.act_forward(x, "relu")
    c0 = time.process_time()
    time.sleep(0.05)
    used.append(time.process_time() - c0)
print(1e3 * sorted(used)[7])
"""

needs_threads = pytest.mark.skipif(not ops.has_openmp() or (os.cpu_count() or 1) < 2,
                                   reason="needs OpenMP and 2 CPUs")


def run(code, **env):
    unset = dict.fromkeys(("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"))
    return child.python("-c", code, extra_env={**unset, **env}, check=True).stdout.strip()


@needs_threads
def test_threads_sleep_soon_after_a_kernel():
    assert float(run(IDLE_CPU)) < 2.0


@needs_threads
def test_the_measure_sees_a_long_spin():
    """The same measure with libgomp spinning as long as it likes: so the test above can fail."""
    if "libgomp" not in run("import nnlite; print(open('/proc/self/maps').read())"):
        pytest.skip("the kernels do not use GNU libgomp")
    assert float(run(IDLE_CPU, OMP_WAIT_POLICY="active")) > 5.0


def test_settings_are_restored_and_the_users_win():
    code = ("import os, nnlite as nl; print(os.environ.get('GOMP_SPINCOUNT'), "
            "os.environ.get('KMP_BLOCKTIME'), '|', nl.ops._openmp_wait.describe())")
    out = run(code)
    assert out.startswith("None None |")          # set for the import only
    if ops.has_openmp():
        assert "nnlite's default" in out
    out = run(code, GOMP_SPINCOUNT="123")
    assert out.startswith("123 None |") and "GOMP_SPINCOUNT=123" in out


# ----------------------------------------------------------------------------- a busy machine
# A team whose thread was kept off its core (late start, or finishing far after the others)
# makes the kernels run on the calling thread alone for a while (csrc/common/cpu.cpp).


def _family():
    return ops._extensions()[0]


def _quiet(mod):
    """Wait until no earlier team's lateness counts: the suite's real kernels on a loaded CI
    machine may have left the module running alone (up to 1.6 s) or holding a strike (100 ms)."""
    import time
    deadline = time.monotonic() + 5
    while mod._threads_now() == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.12)


# Synthetic reports: (start delay, finish spread, region time) in ns. The regions are long
# (0.3 s) so that each report "began" well before the previous one ended: a report is judged
# only when its region began within 0.2 ms of the last one's end, and a test process held off
# its core between two calls (a loaded CI machine) must not turn one into a "woken" team.
HEALTHY = (0, 0, 300_000_000)
LATE = (200_000_000, 0, 300_000_000)           # started 200 ms late in 300 ms
UNEVEN = (0, 200_000_000, 300_000_000)         # one thread ended 200 ms after the other


@needs_threads
def test_a_late_thread_makes_kernels_run_alone_for_a_while():
    import time
    mod, n0 = _family(), ops.num_threads()
    ops.set_num_threads(2)
    try:
        _quiet(mod)
        mod._report_team(*HEALTHY)                          # a healthy team: stays 2
        assert mod._threads_now() == 2
        mod._report_team(*LATE)                             # late once
        assert mod._threads_now() == 2                      # is not a busy machine...
        mod._report_team(*LATE)                             # ...twice within 100 ms is
        assert mod._threads_now() == 1 and ops.num_threads() == 2
        time.sleep(0.12)                                    # past the 50 ms and the strike
        assert mod._threads_now() == 2
        mod._report_team(*HEALTHY)                          # the machine is idle again
        mod._report_team(600_000, 0, 300_000_000)           # 0.6 ms in a 300 ms kernel: not late
        assert mod._threads_now() == 2
        mod._report_team(*UNEVEN)                           # (the last strike is long gone)
        assert mod._threads_now() == 2
        mod._report_team(*UNEVEN)
        assert mod._threads_now() == 1
    finally:
        time.sleep(0.06)
        mod._report_team(*HEALTHY)
        ops.set_num_threads(n0)


@needs_threads
def test_a_team_woken_from_sleep_is_not_judged():
    """The first team after a pause starts late because its workers were asleep (a VM may take
    over a millisecond to wake a vCPU): that is not a busy machine. Judging it fed itself: time
    alone put the workers to sleep, and the next team woke late again."""
    import time
    mod, n0 = _family(), ops.num_threads()
    ops.set_num_threads(2)
    try:
        _quiet(mod)
        mod._report_team(*HEALTHY)
        time.sleep(0.35)                                    # a pause longer than a region
        mod._report_team(*LATE)                             # late, but after the pause
        mod._report_team(*LATE)                             # late right after: one strike
        assert mod._threads_now() == 2
        mod._report_team(*LATE)                             # and again: busy
        assert mod._threads_now() == 1
    finally:
        time.sleep(0.06)
        mod._report_team(*HEALTHY)
        ops.set_num_threads(n0)


@needs_threads
def test_the_busy_watch_can_be_switched_off():
    code = ("import nnlite as nl; m = nl.ops._extensions()[0]; nl.ops.set_num_threads(2); "
            f"m._report_team(*{HEALTHY}); m._report_team(*{LATE}); m._report_team(*{LATE}); "
            "print(m._threads_now())")
    assert run(code) == "1"
    assert run(code, NNLITE_BUSY_WATCH="0") == "2"
