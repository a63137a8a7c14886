#!/usr/bin/env bash
# benchmarks/gpu_check.sh: the one script to run on a GPU machine (made for an H200: the whole
# run fits in 8 minutes). From the repository root:
#
#     bash benchmarks/gpu_check.sh                 # everything; results in gpu_check/
#     bash benchmarks/gpu_check.sh --dry-run       # the commands it would run; checks that the
#                                                  # files it needs exist (no GPU needed)
#     bash benchmarks/gpu_check.sh --out DIR       # where the logs and gpu_check.json go
#     bash benchmarks/gpu_check.sh --only ladder,bench   # some stages only (names below)
#
# Stages, each time-boxed with `timeout` (seconds; GPU_CHECK_T_<STAGE> overrides one), in order:
#   gpu             nvidia-smi: which GPU, which driver
#   build           nnlite with its CUDA module, in place (setup.py build_ext --inplace, nvcc;
#                   NNLITE_CUDA_ARCHS, default 90)
#   ladder-build    the CUDA teaching ladder, dev/cuda (make -B -j, ARCH=sm_90 by default)
#   gpu-tests       pytest -m cuda: every CUDA test on the GPU
#   memcheck        compute-sanitizer --tool memcheck on the CUDA kernel tests (-m cuda
#                   tests/test_cuda_*.py)
#   racecheck       compute-sanitizer --tool racecheck on the same
#   ladder-sanitize memcheck and racecheck on every ladder binary (--check, a small awkward size)
#   ladder          every ladder step's check on awkward sizes (make -C dev/cuda check)
#   bench           benchmarks/bench_cuda.py: SGEMM 1024-8192 vs cuBLAS (+ the ladder at 4096),
#                   attention fwd+bwd vs torch SDPA, baby-GPT and course-best iterations and an
#                   MNIST-MLP epoch vs torch on the GPU
# A stage that fails or runs out of time is recorded and the next one runs. At the end:
# OUT/gpu_check.json ({"stages": [...], "bench": bench_cuda.py's JSON}) and one table (the
# stages, then the benchmark's rows). Exit status: 0 when every stage passed, 1 otherwise.
# Environment: PYTHON (default python3), NVCC, COMPUTE_SANITIZER, NNLITE_CUDA_ARCHS, ARCH.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=gpu_check
ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        --only) ONLY=",$2,"; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (--dry-run, --out DIR, --only STAGES)" >&2; exit 2 ;;
    esac
    shift
done

PY=${PYTHON:-python3}
SAN=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
ARCHS=${NNLITE_CUDA_ARCHS:-90}
ARCH=${ARCH:-sm_90}
JOBS=$(nproc 2>/dev/null || echo 4)
SANFLAGS="--error-exitcode 99 --target-processes all --print-limit 20"
# the ladder binaries and the small awkward sizes they are sanitized at
SGEMM_BINS=$(ls dev/cuda/sgemm/[0-9]*.cu 2>/dev/null | sed 's|dev/cuda/\(.*\)\.cu|dev/cuda/build/\1|' | tr '\n' ' ')
ATTN_BINS=$(ls dev/cuda/attention/[0-9]*.cu 2>/dev/null | sed 's|dev/cuda/\(.*\)\.cu|dev/cuda/build/\1|' | tr '\n' ' ')
ladder_sanitize() {   # the command of the ladder-sanitize stage
    echo "set -e; for t in memcheck racecheck; do" \
         "for b in $SGEMM_BINS; do $SAN --tool \$t $SANFLAGS \$b --check 65 36 132; done;" \
         "for b in $ATTN_BINS; do $SAN --tool \$t $SANFLAGS \$b --check 1 2 70 20; done; done"
}

# name | seconds | command
STAGES=(
    "gpu|10|nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv"
    "build|${GPU_CHECK_T_BUILD:-120}|NNLITE_CUDA_ARCHS=$ARCHS $PY setup.py build_ext --inplace -j $JOBS"
    "ladder-build|${GPU_CHECK_T_LADDER_BUILD:-40}|make -C dev/cuda -B -j $JOBS ARCH=$ARCH all"
    "gpu-tests|${GPU_CHECK_T_GPU_TESTS:-60}|$PY -m pytest -q -p no:cacheprovider -m cuda tests"
    "memcheck|${GPU_CHECK_T_MEMCHECK:-40}|$SAN --tool memcheck $SANFLAGS $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda_*.py"
    "racecheck|${GPU_CHECK_T_RACECHECK:-40}|$SAN --tool racecheck $SANFLAGS $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda_*.py"
    "ladder-sanitize|${GPU_CHECK_T_LADDER_SANITIZE:-35}|$(ladder_sanitize)"
    "ladder|${GPU_CHECK_T_LADDER:-30}|make -C dev/cuda ARCH=$ARCH check"
    "bench|${GPU_CHECK_T_BENCH:-90}|$PY benchmarks/bench_cuda.py --json $OUT/bench_cuda.json"
)

if [ $DRY = 1 ]; then
    missing=0
    for f in setup.py dev/cuda/Makefile dev/cuda/harness.cuh benchmarks/bench_cuda.py \
             benchmarks/_common.py csrc/cuda/cuda_compat.h csrc/cuda/launch.h; do
        if [ -e "$f" ]; then echo "[dry-run] found $f"; else echo "[dry-run] MISSING $f"; missing=1; fi
    done
    for glob in "tests/test_cuda_*.py" "dev/cuda/sgemm/[0-9]*.cu" "dev/cuda/attention/[0-9]*.cu"; do
        n=$(ls $glob 2>/dev/null | wc -l)
        if [ "$n" -gt 0 ]; then echo "[dry-run] found $n files $glob"; else echo "[dry-run] MISSING $glob"; missing=1; fi
    done
    for tool in "$PY" nvcc "$SAN" nvidia-smi make timeout; do
        if command -v "$tool" >/dev/null 2>&1; then echo "[dry-run] tool $tool: $(command -v "$tool")"
        else echo "[dry-run] tool $tool: not here (needed on the GPU machine)"; fi
    done
    total=0
    for s in "${STAGES[@]}"; do
        IFS='|' read -r name secs cmd <<< "$s"
        [ -z "$ONLY" ] || [[ "$ONLY" == *",$name,"* ]] || continue
        total=$((total + secs))
        echo "[dry-run] stage $name (timeout ${secs}s): $cmd"
    done
    echo "[dry-run] time boxes add up to ${total}s (the budget: 8 minutes on an H200, 470s" \
         "of boxes and the rest for starts, kills and the summary)"
    [ $total -le 470 ] || { echo "[dry-run] the time boxes exceed 8 minutes"; missing=1; }
    exit $missing
fi

mkdir -p "$OUT"
rm -f "$OUT/stages.tsv" "$OUT/bench_cuda.json"
fail=0
t_all=$(date +%s)
for s in "${STAGES[@]}"; do
    IFS='|' read -r name secs cmd <<< "$s"
    [ -z "$ONLY" ] || [[ "$ONLY" == *",$name,"* ]] || continue
    echo "=== $name (timeout ${secs}s): $cmd"
    t0=$(date +%s%N)
    timeout --kill-after=10 "$secs" bash -c "$cmd" > "$OUT/$name.log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    dt=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
    case $rc in
        0) status=ok ;;
        124|137) status=timeout; fail=1 ;;
        *) status=failed; fail=1 ;;
    esac
    tail -n 3 "$OUT/$name.log" | sed 's/^/    /'
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$dt" "$secs" >> "$OUT/stages.tsv"
done
echo "total: $(( $(date +%s) - t_all ))s"

OUT="$OUT" "$PY" - <<'PY'
import json, os, sys
sys.path.insert(0, "benchmarks")
out = os.environ["OUT"]
stages = []
for line in open(os.path.join(out, "stages.tsv")):
    name, status, rc, secs, box = line.rstrip("\n").split("\t")
    log = open(os.path.join(out, f"{name}.log"), errors="replace").read().strip().splitlines()
    stages.append({"stage": name, "status": status, "rc": int(rc), "seconds": secs,
                   "timeout": int(box), "last_line": log[-1][:160] if log else ""})
bench = None
path = os.path.join(out, "bench_cuda.json")
if os.path.exists(path):
    bench = json.load(open(path))
json.dump({"stages": stages, "bench": bench}, open(os.path.join(out, "gpu_check.json"), "w"),
          indent=1)
print(f"\n{'stage / case':<44} {'status / lib':<24} result")
print("-" * 110)
for s in stages:
    print(f"{s['stage']:<44} {s['status']:<24} {s['seconds']}s of {s['timeout']}s: {s['last_line'][:60]}")
if bench:
    import bench_cuda
    print(f"GPU: {bench['meta']['gpu']}")
    print("\n".join(bench_cuda.table(bench["rows"])))
print(f"written: {os.path.join(out, 'gpu_check.json')}")
PY
exit $fail
