"""Run the atheris fuzz targets of this folder (``.ci/fuzz`` calls this; see _target.py for what
a target checks). For each target, in its own work folder:

1. write its seed corpus (valid files made by nnlite) and its regression inputs (known attacks);
2. replay both once each: every input that raises an undocumented exception, hangs or
   allocates too much is a finding;
3. fuzz for ``--seconds`` (coverage-guided, libFuzzer through atheris), starting from the
   seeds, with ``-timeout`` per input (hangs) and ``-rss_limit_mb`` (the memory backstop);
   a finding stops it and leaves the input in ``<work>/<target>/artifacts/``.

Exit status 1 if any target has a finding (each printed with the path of its input and the
traceback), or did not run; 0 otherwise.

    python tests/fuzz/targets/run.py                       # 60 s per target
    python tests/fuzz/targets/run.py --seconds 5 --targets idx_reader,load_model

Environment: NNLITE_FUZZ_SECONDS (default 60), NNLITE_FUZZ_TIMEOUT (seconds per input, 10),
NNLITE_FUZZ_RSS_MB (2048), NNLITE_FUZZ_ALLOWANCE_MB (8: the fixed part of the memory budget),
NNLITE_FUZZ_WORK (the work folder, default .fuzz-work in the repository).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TARGETS = ("safetensors_reader", "load_model", "idx_reader", "gpt_checkpoint")
ARTIFACT = re.compile(r"Test unit written to (\S+)")
STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def _env():
    """The children import the nnlite this process would import (installed or the checkout)."""
    env = dict(os.environ)
    try:
        import nnlite
    except ImportError:
        sys.path.insert(0, REPO)
        import nnlite
    root = os.path.dirname(os.path.dirname(os.path.abspath(nnlite.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _target_options(name):
    """(max_len, dictionary entries) from the target module's source (no import: importing
    it instruments nnlite)."""
    with open(os.path.join(HERE, f"{name}.py"), encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"^MAX_LEN = (.+)$", src, re.M)
    max_len = eval(m.group(1), {}) if m else 4096           # (our own constant)
    d = re.search(r"^DICT = (\[.*?\])$", src, re.M | re.S)
    entries = eval(d.group(1), {}) if d else [] 
    return max_len, entries


def _escape(token):
    """A dictionary token in libFuzzer's syntax (inside double quotes, \\xNN escapes)."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\x{ord(c):02x}"
                   for c in token)


def _tail(text, n=60):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def run_target(name, seconds, work, env, timeout, rss_mb, regressions=True):
    """Returns (ok, summary dict); prints the findings."""
    script = os.path.join(HERE, f"{name}.py")
    base = os.path.join(work, name)
    shutil.rmtree(base, ignore_errors=True)
    seeds, regress, corpus, artifacts = (os.path.join(base, d) for d in
                                         ("seeds", "regressions", "corpus", "artifacts"))
    for d in (seeds, regress, corpus, artifacts):
        os.makedirs(d)
    summary = {"target": name, "findings": [], "executions": 0, "exec_per_s": 0, "new_units": 0}
    py = sys.executable
    env = {**env, "NNLITE_FUZZ_TMP": os.path.join(base, "tmp")}    # the readers' files

    cmd = [py, script, "--prepare", seeds, regress] + ([] if regressions else
                                                       ["--skip-regressions"])
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        r, out = None, f"{e.stdout or ''}{e.stderr or ''}\n(killed after 900 s)"
    found = re.findall(r"^FINDING (.+)$", out, re.M)
    replayed = re.search(r"^replayed (\d+) inputs", out, re.M)
    if found or r is None or r.returncode or not replayed:
        print(f"[{name}] replay of the seeds{' and regressions' if regressions else ''}: "
              f"{len(found)} findings" + ("" if replayed else " (did not finish)"))
        print(_tail(out, 200))
        summary["findings"] += found or ["replay failed"]
    if not replayed:
        return False, summary
    if seconds <= 0:
        return not summary["findings"], summary

    max_len, entries = _target_options(name)
    cmd = [py, script, corpus, seeds, f"-max_total_time={seconds}", f"-timeout={timeout}",
           f"-rss_limit_mb={rss_mb}", f"-max_len={max_len}", "-use_value_profile=1",
           f"-artifact_prefix={artifacts}{os.sep}", "-print_final_stats=1"]
    if entries:
        dict_path = os.path.join(base, "dict.txt")
        with open(dict_path, "w", encoding="utf-8") as f:
            f.write("".join(f'"{_escape(e)}"\n' for e in entries))
        cmd.append(f"-dict={dict_path}")
    log_path = os.path.join(base, "fuzz.log")
    t0 = time.monotonic()
    try:
        with open(log_path, "w") as log:
            rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                timeout=seconds + 300).returncode
    except subprocess.TimeoutExpired:
        rc = "killed: ran 5 minutes past -max_total_time"
    with open(log_path, errors="replace") as f:
        log = f.read()
    stats = {k: int(v) for k, v in STAT.findall(log)}
    summary.update(executions=stats.get("number_of_executed_units", 0),
                   exec_per_s=stats.get("average_exec_per_sec", 0),
                   new_units=stats.get("new_units_added", 0),
                   seconds=round(time.monotonic() - t0, 1))
    if rc != 0:
        paths = ARTIFACT.findall(log) or sorted(glob.glob(os.path.join(artifacts, "*")))
        print(f"[{name}] fuzzing found a problem (exit {rc}); input: "
              f"{', '.join(paths) or '(none written)'}\n{_tail(log, 80)}")
        summary["findings"] += paths or [f"fuzzer exit {rc}"]
    elif summary["executions"] == 0:
        print(f"[{name}] the fuzzer ran no input:\n{_tail(log)}")
        summary["findings"].append("no executions")
    return not summary["findings"], summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int,
                   default=int(os.environ.get("NNLITE_FUZZ_SECONDS", "60")),
                   help="fuzzing time per target (0: only replay the seeds and regressions)")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--work", default=os.environ.get("NNLITE_FUZZ_WORK",
                                                    os.path.join(REPO, ".fuzz-work")))
    p.add_argument("--no-regressions", action="store_true",
                   help="do not replay the known-attack inputs")
    args = p.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("run.py: atheris is not installed (pip install atheris: Linux x86_64, "
              "CPython 3.11-3.13)")
        return 2
    env = _env()
    timeout = int(os.environ.get("NNLITE_FUZZ_TIMEOUT", "10"))
    rss_mb = int(os.environ.get("NNLITE_FUZZ_RSS_MB", "2048"))
    names = [t for t in args.targets.split(",") if t]
    unknown = set(names) - set(TARGETS) - {"selftest"}     # (planted bugs: the harness test)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; the targets are {', '.join(TARGETS)}")
    results = []
    for name in names:
        print(f"[{name}] {args.seconds} s ...", flush=True)
        ok, summary = run_target(name, args.seconds, os.path.abspath(args.work), env, timeout,
                                 rss_mb, regressions=not args.no_regressions)
        results.append((ok, summary))
        print(f"[{name}] {'ok' if ok else 'FAILED'}: {summary['executions']:,} executions "
              f"({summary['exec_per_s']:,}/s), {summary['new_units']} new corpus units"
              + (f", findings: {', '.join(summary['findings'])}" if summary["findings"] else ""),
              flush=True)
    bad = [s["target"] for ok, s in results if not ok]
    print(f"fuzz: {len(results) - len(bad)} of {len(results)} targets clean"
          + (f"; FAILED: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
