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

def cells(step, size, prev):  # ms, GFLOP/s, x prev, % peak
    if (step, size) not in times:
        return ["skipped: " + skips.get(step, "no result"), "", "", ""], prev
    thr, ms, gf = times[(step, size)]
    pk = peaks.get((isa, thr))
    return [f"{ms:.3f}" if ms < 10 else f"{ms:.1f}", f"{gf:.1f}",
            f"{prev / ms:.2f}x" if prev else "", f"{100 * gf / pk:.0f} %" if pk else "?"], ms

def table(ladder, sizes, labels):
    print("| step | idea | threads | " + " | ".join(
        f"{l} ms | GFLOP/s | speed-up | of peak" for l in labels) + " |")
    print("|---|---|---:|" + "---:|---:|---:|---:|" * len(sizes))
    prev = [None] * len(sizes)
    for path in sorted(glob.glob(f"{ladder}/[0-9]*.c")):
        step = os.path.basename(path)[:-2]
        row, thr = [], ""
        for i, size in enumerate(sizes):
            c, prev[i] = cells(step, size, prev[i])
            row += c
            thr = times.get((step, size), (thr,))[0]
        print(f"| {step} | {idea(path)} | {thr} | " + " | ".join(row) + " |")

pk = ", ".join(f"{t} thread{'s' if t > 1 else ''} {v:.0f} GFLOP/s"
               for (i, t), v in sorted(peaks.items()) if i == isa)
print(f"Measured on {machine}.")
print(f"Peak (build/peak: {isa.upper()} FMA throughput, registers only): {pk}.\n")
print("GEMM, C = A @ B, float32 (speed-up: over the previous step that ran, same size)\n")
table("gemm", ["M=1024 K=1024 N=1024", "M=64 K=784 N=256"], ["1024³", "64×784×256"])
print("\nAttention, causal, float32, B=4 H=8 T=256 D=32, forward (step 6: backward)\n")
fwd, bwd = "B=4 H=8 T=256 D=32", "B=4 H=8 T=256 D=32 backward"
for step in [s for (s, z) in times if z == bwd]:  # the backward row replaces the forward one
    times[(step + "_fwd", fwd)] = times.pop((step, fwd))
    times[(step, fwd)] = times[(step, bwd)]
table("attention", [fwd], ["fwd"])
for step in [s for (s, z) in times if z == bwd]:
    b, f = times[(step, bwd)][1], times[(step + "_fwd", fwd)][1]
    print(f"\n{step}: the row is its backward ({b:.2f} ms, 10·D flops per pair); its forward "
          f"(step 5's code) took {f:.2f} ms, so backward = {b / f:.2f}x forward (2.5x the flops).")
PY
