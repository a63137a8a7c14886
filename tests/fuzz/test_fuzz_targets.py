"""The atheris fuzz harness (tests/fuzz/targets/, run by .ci/fuzz) works: every target makes its
seeds, replays them and fuzzes a moment without a finding, and the runner reports each kind of
finding (undocumented exception, hang, memory) with the input's path. Bounded: about a second
of fuzzing per target; .ci/fuzz runs the real thing (60 s per target)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (Linux x86_64, CPython 3.11-3.13) fuzzes the "
                                      "readers")

import nnlite  # (after the skip)

RUN = Path(__file__).parent / "targets" / "run.py"
TARGETS = ("safetensors_reader", "load_model", "idx_reader", "gpt_checkpoint")


def runner(tmp_path, *args, **env):
    root = str(Path(nnlite.__file__).resolve().parent.parent)
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
            **env}
    return subprocess.run([sys.executable, str(RUN), "--work", str(tmp_path), *args], env=full,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", TARGETS)
def test_every_target_runs_clean_briefly(name, tmp_path):
    """Seeds made and replayed, then a second of fuzzing (the known-attack regression inputs
    are .ci/fuzz's business)."""
    r = runner(tmp_path, "--seconds", "1", "--no-regressions", "--targets", name)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"[{name}] ok:"))
    assert int(line.split()[2].replace(",", "")) > 0, line       # executions
    assert list((tmp_path / name / "seeds").iterdir()), name


def test_findings_are_reported_with_their_input(tmp_path):
    r = runner(tmp_path, "--seconds", "0", "--targets", "selftest", NNLITE_FUZZ_TIMEOUT="1")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    regress = tmp_path / "selftest" / "regressions"
    for name, why in (("crash", "KeyError: 'planted crash'"),
                      ("hang", "HangFinding: input still running after 1 s"),
                      ("memory", "MemoryFinding")):
        assert f"FINDING {regress / name}" in out, out
        assert why in out, out
    assert "FINDING" not in out.replace(f"FINDING {regress}", "")   # the seeds are fine
    assert "FAILED" in out


def test_fuzzing_finds_and_saves_the_crashing_input(tmp_path):
    r = runner(tmp_path, "--seconds", "60", "--no-regressions", "--targets", "selftest",
               NNLITE_FUZZ_SELFTEST="crash")
    assert r.returncode == 1, r.stdout + r.stderr
    artifacts = list((tmp_path / "selftest" / "artifacts").glob("crash-*"))
    assert len(artifacts) == 1, r.stdout
    assert artifacts[0].read_bytes()[:5] == b"crash"
    assert str(artifacts[0]) in r.stdout
    assert "planted crash" in r.stdout
