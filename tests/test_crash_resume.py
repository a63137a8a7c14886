"""Kill a training run anywhere (issue 9, "make the attacks permanent"): a subprocess trains
with ``ModelCheckpoint`` (tests/scripts/train_resumable.py) and is SIGKILLed at seeded random
moments, half of them spread over the whole run, half inside a save (after a random epoch,
while the save's temporary file exists). After each kill:

* the last checkpoint, if there is one, loads (``nl.load_model``), and it is no older than the
  last epoch the run printed minus one, no newer than that epoch;
* the killed run printed the reference's losses so far;
* ``--resume`` continues from it and prints, for every remaining epoch, the losses of an
  uninterrupted run to the bit, and ends with the same weights;
* the resumed run's first save leaves no ``*.tmp`` in the folder (a killed save's temporary is
  removed by the next save), and at the end the folder holds the checkpoint alone.

``test_killed_runs_resume_exactly`` (3 kills, about 3 s on an idle 2-core machine) is in the
default suite; ``test_twenty_kills`` (20 kills, about 15 s idle, up to a minute on a busy
machine) is marked slow: ``pytest -m slow tests/test_crash_resume.py``.
"""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _child as child
import nnlite as nl

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "scripts" / "train_resumable.py"
EPOCHS = 20
TIMEOUT = 120


def _env():
    return child.env(OMP_NUM_THREADS="1")


def _start(ckpt, *extra):
    p = subprocess.Popen([sys.executable, str(SCRIPT), "--ckpt", str(ckpt),
                          "--epochs", str(EPOCHS), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = p.stdout.readline()
    if line != "start\n":
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"the script did not start: {line!r}\n{err}")
    return p


def _parse(lines):
    """``{"epoch": {e: "loss accuracy"}, "saved": [(e, tmp files)], "weights": digest}``."""
    out = {"epoch": {}, "saved": [], "weights": None}
    for line in lines:
        kind, *rest = line.split()
        if kind == "epoch":
            out["epoch"][int(rest[0])] = " ".join(rest[1:])
        elif kind == "saved":
            out["saved"].append((int(rest[0]), int(rest[1])))
        elif kind == "weights":
            out["weights"] = rest[0]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its lines and how long its training took (from ``start`` on)."""
    folder = tmp_path_factory.mktemp("reference")
    p = _start(folder / "ckpt.nnl")
    t0 = time.perf_counter()
    stamped = [(time.perf_counter(), line) for line in p.stdout]
    duration = time.perf_counter() - t0
    assert p.wait(TIMEOUT) == 0, p.stderr.read()
    ref = _parse([line for _, line in stamped])
    assert sorted(ref["epoch"]) == list(range(EPOCHS)) and ref["weights"]
    assert ref["saved"] == [(e, 0) for e in range(EPOCHS)]
    ref["duration"] = duration
    return ref


def _kill_and_resume(ref, folder, how, rng):
    """Start a run in ``folder``, SIGKILL it (``how``: "anywhere": after a random delay up
    to 0.9 of the run's length; "in a save": after a random epoch's line, as soon as its save's
    temporary file is seen, plus up to 2 ms), check the checkpoint, resume, check the resumed
    run. Returns (checkpoint epoch, temp files the kill left)."""
    ckpt = folder / "ckpt.nnl"
    p = _start(ckpt)
    lines = []
    try:
        if how == "anywhere":
            time.sleep(rng.uniform(0, 0.9 * ref["duration"]))
        else:                                   # the save starts as the line is printed
            want = f"epoch {rng.randrange(EPOCHS)} "
            for line in p.stdout:
                lines.append(line)
                if line.startswith(want):
                    break
            deadline = time.perf_counter() + 5
            while not any(f.endswith(".tmp") for f in os.listdir(folder)) and \
                    p.poll() is None and time.perf_counter() < deadline:
                pass
            time.sleep(rng.uniform(0, 0.002))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(TIMEOUT)
    lines += p.stdout.read().splitlines()
    killed = _parse(lines)
    assert killed["epoch"] == {e: ref["epoch"][e] for e in killed["epoch"]}
    done, saved = len(killed["epoch"]), len(killed["saved"])
    left = sorted(f.name for f in folder.glob("*.tmp"))

    if ckpt.exists():
        model = nl.load_model(ckpt)             # the last checkpoint always loads
        epoch = model.epoch
        assert max(saved, done - 1) <= epoch <= done, (saved, done, epoch)
    else:                                       # killed before the first save ended
        epoch = 0
        assert saved == 0 and done <= 1

    r = subprocess.run([sys.executable, str(SCRIPT), "--ckpt", str(ckpt), "--epochs",
                        str(EPOCHS), "--resume"], capture_output=True, text=True,
                       env=_env(), timeout=TIMEOUT, check=False)
    assert r.returncode == 0, r.stderr
    resumed = _parse(r.stdout.splitlines())
    assert resumed["epoch"] == {e: ref["epoch"][e] for e in range(epoch, EPOCHS)}
    assert resumed["weights"] == ref["weights"]
    if epoch < EPOCHS:
        assert resumed["saved"][0] == (epoch, 0), (left, resumed["saved"])
    assert os.listdir(folder) == ["ckpt.nnl"]
    return epoch, left


def _run(ref, tmp_path, kills, seed):
    """``kills`` kills, alternately anywhere and in a save; returns what each left."""
    rng = random.Random(seed)
    results = []
    for i in range(kills):
        how = "anywhere" if i % 2 == 0 else "in a save"
        results.append((how, *_kill_and_resume(ref, tmp_path / f"kill{i:02d}", how, rng)))
    for how, epoch, left in results:
        print(f"killed {how}: checkpoint of epoch {epoch}, temp files left: {left}")
    return results


@pytest.fixture
def folders(tmp_path):
    def make(n):
        for i in range(n):
            (tmp_path / f"kill{i:02d}").mkdir()
        return tmp_path
    return make


def test_killed_runs_resume_exactly(reference, folders):
    _run(reference, folders(3), 3, seed=0)


@pytest.mark.slow
def test_twenty_kills(reference, folders):
    results = _run(reference, folders(20), 20, seed=1)
    # the kills did land inside saves (a temp file left: 9 of the 10 "in a save" ones when
    # measured), and all over the run
    assert any(left for how, _, left in results if how == "in a save"), results
    assert len({epoch for _, epoch, _ in results}) >= 5, results
