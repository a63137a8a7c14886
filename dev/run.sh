#!/usr/bin/env bash
# dev/run.sh [BUILD]: run every ladder step at the stated sizes, print dev/README.md's tables.
#
#   make -C dev run            (builds first, then runs this)
#   DEV_TIME=2 make -C dev run (seconds of repeated timing per measurement; default 1)
#
# Sizes: GEMM 1024^3 and M=64 K=784 N=256 (an MLP layer: batch 64, 784 -> 256);
# attention B=4 H=8 T=256 D=32, causal, forward, and the backward in the last step.
# Every step checks its answer against step 0 first (a failure stops the run). The raw lines
# go to BUILD/run.log and stderr; the markdown tables to stdout.
set -euo pipefail
cd "$(dirname "$0")"
B=${1:-build}
log=$B/run.log
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs || uname -m)
{
    echo "MACHINE $cpu, $(getconf _NPROCESSORS_ONLN) cores, $(${CC:-cc} --version | head -1),"\
         "$(date -u +%Y-%m-%d)"
    "$B/peak"
    for p in "$B"/gemm/[0-9]*; do "$p" 1024 1024 1024; "$p" 64 784 256; done
    for p in "$B"/attention/[0-9]*; do "$p" 4 8 256 32; done
} | tee "$log" >&2

python3 - "$log" <<'PY'
import glob, os, re, sys

peaks, times, skips, machine = {}, {}, {}, ""
for line in open(sys.argv[1]).read().splitlines():
    f = [x.strip() for x in line[6:].split("|")]
    if line.startswith("MACHINE"):
        machine = line[8:]
    elif line.startswith("PEAK"):
        peaks[(f[0], int(f[1].split()[1]))] = float(f[2].split()[0])
    elif line.startswith("TIME"):
        times[(f[0], f[1])] = (int(f[2].split()[1]), float(f[3].split()[0]), float(f[4].split()[0]))
    elif ": skipped (" in line:
        step, why = line.split(": skipped (", 1)
        skips[step] = why.rstrip(")")
isa = "avx512" if any(k[0] == "avx512" for k in peaks) else "avx2"


def idea(path):  # "GEMM step 1: loop order i-k-j.    C = ..." -> "loop order i-k-j"
    first = open(path).read().split("\n")[1]
    return re.split(r"\s{2,}", first.split(": ", 1)[1])[0].rstrip(".")


def table(ladder, sizes, labels, backward=None):
    """One row per step, 4 cells per size; speed-up over the previous step that ran."""
    print("| step | idea | threads | " + " | ".join(
        f"{l} ms | GFLOP/s | speed-up | of peak" for l in labels) + " |")
    print("|---|---|---:|" + "---:|---:|---:|---:|" * len(sizes))
    prev = [None] * len(sizes)
    for path in sorted(glob.glob(f"{ladder}/[0-9]*.c")):
        step, row, thr = os.path.basename(path)[:-2], [], ""
        for i, size in enumerate(sizes):
            bwd = backward and (step, size + backward) in times
            t = times.get((step, size + backward if bwd else size))
            if t is None:
                row += ["skipped: " + skips.get(step, "no result"), "", "", ""]
                continue
            thr, ms, gf = t
            pk = peaks[(isa, 1)] * thr if (isa, 1) in peaks else None
            row += [f"{ms:.3f}" if ms < 10 else f"{ms:.1f}", f"{gf:.1f}",
                    "(backward)" if bwd else f"{prev[i] / ms:.2f}x" if prev[i] else "",
                    f"{100 * gf / pk:.0f} %" if pk else "?"]
            prev[i] = prev[i] if bwd else ms
        print(f"| {step} | {idea(path)} | {thr} | " + " | ".join(row) + " |")


one = peaks.get((isa, 1), 0)
alln = ", ".join(f"{v:.0f} GFLOP/s on {t} threads at once" for (i, t), v in peaks.items()
                 if i == isa and t > 1)
print(f"Measured on {machine}.")
print(f"Peak: {one:.0f} GFLOP/s per thread ({isa.upper()} FMA throughput on registers, "
      f"build/peak), times the threads a step used" + (f"; measured: {alln}" if alln else "")
      + ".\n")
print("GEMM, C = A @ B, float32\n")
table("gemm", ["M=1024 K=1024 N=1024", "M=64 K=784 N=256"], ["1024³", "64×784×256"])
print("\nAttention, causal, float32, B=4 H=8 T=256 D=32: forward; the last row is the backward\n")
fwd = "B=4 H=8 T=256 D=32"
table("attention", [fwd], ["time"], backward=" backward")
for (step, size), (thr, ms, gf) in times.items():
    if size == fwd + " backward":
        f = times[(step, fwd)][1]
        print(f"\n{step}'s forward (step 5's code) took {f:.3f} ms: its backward takes "
              f"{ms / f:.2f}x as long, for 2.5x the flops.")
PY
