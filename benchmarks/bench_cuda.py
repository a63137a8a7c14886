"""GPU speed: nnlite's CUDA kernels, the CUDA teaching ladder and nnlite's models on the GPU,
against cuBLAS and PyTorch on the same GPU. One run, one table, one JSON.

Cases (``--parts``, all by default):

* ``sgemm``: C = A @ B, float32, M = N = K = 1024, 2048, 4096, 8192 (``--sizes``): cuBLAS
  (``cupy.matmul``, FP32: CuPy's default compute type, no TF32), nnlite's shipped GEMM
  (``nnlite.ops.cuda_gemm``) and every step of the SGEMM ladder (``dev/cuda/build/sgemm/*``,
  built by ``make -C dev/cuda``, at ``--ladder-sizes``, 4096 by default; each binary checks
  its answer, then times itself with cudaEvents and prints best, quartiles and median: read
  here). 2·M·N·K flops per call.
* ``attention``: causal attention forward + backward, float32, (B, H, T, D) = (32, 8, 256, 16)
  and (4, 6, 1024, 64): nnlite (``nnlite.ops.cuda_attention``) vs
  ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` on CUDA (whatever
  backend torch picks for float32), plus the ladder's 04_flash_backward (its forward and
  backward timed separately by the binary, summed here). 14·D flops per visible (query, key)
  pair (4·D forward, 10·D backward), T(T+1)/2 pairs per head.
* ``gpt``: one training iteration (forward, backward, clip 1.0, AdamW) of the baby GPT
  (bench_gpt.py's: 4 layers, 4 heads, n_embd 128, block 64, batch 12, vocabulary 65) and of
  the course-best GPT (examples/gpt_shakespeare.py's: 8 layers, 8 heads, n_embd 128, block
  256, batch 32), both without dropout (the torch model has none): nnlite's GPT moved with
  ``model.to("cuda")`` vs the same model in torch (``_common.torch_gpt``) on CUDA.
* ``mnist``: one epoch (938 steps of batch 64 over 60 000 random images of MNIST's shape: the
  GPU machine has no network) of bench_mnist_mlp.py's 784-256-128-10 MLP with Adam, nnlite
  (``.to("cuda")``) vs torch on CUDA.

Timing (benchmarks/_common.py): each library in its own block (warm-up, then samples until a
count and a time budget are reached, a pause before each block), never call by call; each
call ends with a device synchronise, so a sample is the whole GPU work. Median, IQR and best
per row; the last column is the baseline's median over the row's (cuBLAS for SGEMM, torch
otherwise): 100 % = as fast as the baseline, 70 % = the baseline takes 0.7 of the time.
A part nnlite does not have yet (a module or ``Model.to`` missing) is a "missing" row; a
failure is a "failed" row with the error: neither stops the run.

    python benchmarks/bench_cuda.py                       # everything, writes bench_cuda.json
    python benchmarks/bench_cuda.py --quick --parts sgemm # does it run?
    python benchmarks/bench_cuda.py --json out.json --ladder-dir dev/cuda/build

Without a GPU (no driver, no device, no CuPy) it prints "no GPU: <reason>" and exits 77.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

import _common

NO_GPU_EXIT = 77
PARTS = ("sgemm", "attention", "gpt", "mnist")
ATTENTION_SHAPES = [(32, 8, 256, 16), (4, 6, 1024, 64)]
GPT_CONFIGS = {   # name: (n_layer, n_head, n_embd, block_size, batch_size, vocab)
    "baby GPT": (4, 4, 128, 64, 12, 65),
    "course-best GPT": (8, 8, 128, 256, 32, 65),
}


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    _common.add_twins_arg(p)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192],
                   help="SGEMM sizes (M = N = K)")
    p.add_argument("--ladder-sizes", type=int, nargs="*", default=[4096],
                   help="the SGEMM sizes (of --sizes) at which the ladder binaries run too "
                        "(default 4096, the README's table; each binary checks, then times)")
    p.add_argument("--ladder-dir", default=os.path.join(_common.REPO, "dev", "cuda", "build"),
                   help="where `make -C dev/cuda` put the ladder binaries")
    p.add_argument("--ladder-time", type=float, default=0.3,
                   help="DEV_TIME: seconds each ladder binary times itself")
    p.add_argument("--json", default="bench_cuda.json", help="where to write the results")
    p.add_argument("--budget", type=float, default=0.5, help="seconds of samples per block")
    p.add_argument("--repeat", type=int, default=7, help="at least this many samples per block")
    p.add_argument("--pause", type=float, default=0.1, help="seconds of sleep before each block")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, few samples: checks that everything runs")
    return p


# ----------------------------------------------------------------------------- the GPU

def why_no_gpu():
    """None when there is a GPU this script can use, else the reason (a short sentence)."""
    import ctypes
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"no NVIDIA driver (libcuda.so.1 cannot be loaded: {e})"
    try:
        import cupy
    except ImportError:
        return ("CuPy is not installed (`pip install cupy-cuda13x`): it holds the device arrays "
                "and gives the cuBLAS baseline")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:   # cupy's CUDARuntimeError: no device, driver too old, ...
        return f"CUDA says: {e}"
    return None if n > 0 else "CUDA found no device"


def gpu_name():
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def sync():
    import cupy
    cupy.cuda.Device().synchronize()


class Results:
    """The rows of the table and the JSON."""

    def __init__(self, args):
        self.args, self.rows, self.notes = args, [], []

    def add(self, part, case, lib, stats=None, flops=None, base=None, status="ok", note=""):
        self.rows.append({"part": part, "case": case, "lib": lib, "flops": flops, "base": base,
                          "status": status, "note": note,
                          "stats": stats.to_dict() if stats is not None else None})

    def time(self, part, case, fns, flops=None, base=None, repeat=None):
        """Time ``fns = {lib: fn | str}``: a str is a "missing"/"failed" row, not timed.
        ``repeat``: fewer samples than --repeat, for calls of a second or more (an epoch)."""
        a = self.args
        for lib, fn in fns.items():
            if isinstance(fn, str):
                status, _, note = fn.partition(": ")
                self.add(part, case, lib, status=status, note=note, base=base)
                continue
            try:
                st = _common.time_libraries({lib: fn}, pause=a.pause, budget=a.budget,
                                            min_samples=min(a.repeat, repeat or a.repeat),
                                            sample_s=a.sample_s,
                                            warmup_s=a.warmup_s)[lib]
            except Exception as e:   # a library failing mid-run is a row, not the end
                self.add(part, case, lib, status="failed", note=f"{type(e).__name__}: {e}",
                         base=base)
                continue
            self.add(part, case, lib, st, flops=flops, base=base)


def synced(fn):
    def call():
        fn()
        sync()
    return call


# ----------------------------------------------------------------------------- the ladder

TIME_RE = re.compile(r"^TIME\s+(\S+) \| (.+?) \| best ([\d.]+) ms \| median ([\d.]+) ms \| "
                     r"q1 ([\d.]+) ms \| q3 ([\d.]+) ms \| worst ([\d.]+) ms \| (\d+) runs")


def run_ladder(exe, args, dev_time, timeout=120):
    """Run a ladder binary; returns ([(size label, Stats)], None) or ([], why it failed)."""
    if not os.path.exists(exe):
        return [], f"missing: {exe} not built (make -C dev/cuda)"
    try:
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ, DEV_TIME=str(dev_time)))
    except subprocess.TimeoutExpired:
        return [], f"failed: timed out after {timeout} s"
    out = r.stdout + r.stderr
    if r.returncode:
        last = [ln for ln in out.splitlines() if ln.strip()][-1:] or [""]
        return [], f"failed: exit {r.returncode}: {last[0][:200]}"
    found = []
    for line in out.splitlines():
        m = TIME_RE.match(line)
        if m:
            best, med, q1, q3, worst = (float(m.group(i)) * 1e-3 for i in range(3, 8))
            found.append((m.group(2), _common.Stats(med, q1, q3, best, worst, int(m.group(8)))))
    return (found, None) if found else ([], "failed: no TIME line in its output")


def ladder_steps(args, ladder):
    d = os.path.join(args.ladder_dir, ladder)
    src = os.path.join(_common.REPO, "dev", "cuda", ladder)
    names = sorted(f[:-3] for f in os.listdir(src) if re.match(r"\d\d_.*\.cu$", f)) \
        if os.path.isdir(src) else []
    return [(n, os.path.join(d, n)) for n in names]


# ----------------------------------------------------------------------------- the parts

def nnlite_kernels(module):
    """nnlite's CUDA wrappers of ``module`` on the GPU, or a "missing: ..." string."""
    import importlib
    try:
        mod = importlib.import_module(f"nnlite.ops.{module}")
        from nnlite.ops import cuda_device
        return mod.kernels(cuda_device.gpu())
    except (ImportError, AttributeError) as e:
        return f"missing: nnlite.ops.{module} ({type(e).__name__}: {e})"
    except RuntimeError as e:
        return f"missing: {e}"


def part_sgemm(res, args):
    import cupy
    ks = nnlite_kernels("cuda_gemm")
    for n in args.sizes:
        case = f"sgemm {n}³"
        flops = 2.0 * n ** 3
        rng = cupy.random.default_rng(0)
        a = rng.uniform(-1, 1, (n, n), dtype=cupy.float32)
        b = rng.uniform(-1, 1, (n, n), dtype=cupy.float32)
        fns = {"cuBLAS": synced(lambda: cupy.matmul(a, b))}
        if isinstance(ks, str):
            fns["nnlite"] = ks
        elif "gemm" not in ks:
            fns["nnlite"] = "missing: nnlite.ops.cuda_gemm has no 'gemm'"
        else:
            gemm = ks["gemm"]
            err = float(cupy.abs(gemm(a, b) - cupy.matmul(a, b)).max())
            res.notes.append(f"{case}: nnlite's gemm vs cuBLAS max abs diff {err:.2e}")
            fns["nnlite"] = synced(lambda: gemm(a, b))
        res.time("sgemm", case, fns, flops=flops, base="cuBLAS")
        a = b = None            # the closures above are done: free the GPU memory now
        if n not in args.ladder_sizes and not args.quick:
            continue
        for step, exe in ladder_steps(args, "sgemm"):
            found, why = run_ladder(exe, [n, n, n], args.ladder_time)
            if why:
                status, _, note = why.partition(": ")
                res.add("sgemm", case, f"ladder {step}", status=status, note=note, base="cuBLAS")
            for _, st in found:
                res.add("sgemm", case, f"ladder {step}", st, flops=flops, base="cuBLAS")


def part_attention(res, args, torch):
    import cupy
    ks = nnlite_kernels("cuda_attention")
    shapes = [(2, 2, 64, 16)] if args.quick else ATTENTION_SHAPES
    for B, H, T, D in shapes:
        case = f"attention fwd+bwd {B}x{H}x{T}x{D}"
        flops = 14.0 * D * B * H * T * (T + 1) / 2
        rng = cupy.random.default_rng(0)
        q, k, v, do = (rng.standard_normal((B, H, T, D), dtype=cupy.float32) for _ in range(4))
        fns = {}
        if isinstance(ks, str):
            fns["nnlite"] = ks
        elif "attention" not in ks or "attention_backward" not in ks:
            fns["nnlite"] = "missing: nnlite.ops.cuda_attention has no attention(_backward)"
        else:
            fwd, bwd = ks["attention"], ks["attention_backward"]

            def nnlite_fb():
                out, lse = fwd(q, k, v, causal=True, return_lse=True)
                bwd(q, k, v, out, do, lse=lse, causal=True)
            fns["nnlite"] = synced(nnlite_fb)
        if torch is None:
            fns["torch"] = "missing: torch with CUDA is not available"
        else:
            F = torch.nn.functional
            tq, tk, tv, tdo = (torch.as_tensor(x, device="cuda").requires_grad_(i < 3)
                               for i, x in enumerate((q, k, v, do)))

            def torch_fb():
                out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
                torch.autograd.grad(out, (tq, tk, tv), tdo)
                torch.cuda.synchronize()
            fns["torch"] = torch_fb
        res.time("attention", case, fns, flops=flops, base="torch")
        for step, exe in ladder_steps(args, "attention"):
            if not step.startswith("04"):
                continue
            found, why = run_ladder(exe, [B, H, T, D], args.ladder_time)
            if why:
                status, _, note = why.partition(": ")
                res.add("attention", case, f"ladder {step}", status=status, note=note,
                        base="torch")
            elif len(found) == 2:   # forward and backward, timed apart: summed
                f, b = found[0][1], found[1][1]
                st = _common.Stats(f.median + b.median, f.q1 + b.q1, f.q3 + b.q3,
                                   f.best + b.best, f.worst + b.worst, min(f.n, b.n))
                res.add("attention", case, f"ladder {step}", st, flops=flops, base="torch",
                        note="forward and backward timed apart, summed")


def _torch_cuda(torch):
    return torch is not None and torch.cuda.is_available()


def torch_gpt_cuda(torch, V, T, L, H, C):
    """_common.torch_gpt on CUDA; its forward builds the positions on the input's device."""
    import types
    model = _common.torch_gpt(torch, V, T, L, H, C).to("cuda")

    def forward(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in tr.h:
            x = block(x)
        return self.lm_head(tr.ln_f(x))
    model.forward = types.MethodType(forward, model)
    return model


def nnlite_on_cuda(model):
    """``model.to("cuda")``, or a "missing: ..." string where nnlite has no such method."""
    try:
        moved = model.to("cuda")
    except AttributeError as e:
        return f"missing: Model.to('cuda') ({e})"
    return moved if moved is not None else model


def part_gpt(res, args, torch):
    import cupy
    import numpy as np

    import nnlite as nl
    configs = {"tiny GPT": (1, 2, 16, 8, 2, 65)} if args.quick else GPT_CONFIGS
    for name, (L, H, C, T, B, V) in configs.items():
        case = f"{name} iteration (L{L} H{H} C{C} T{T} B{B})"
        flops = B * T * (6.0 * (L * 12 * C * C + C * V) + 6.0 * L * C * (T + 1))
        rng = np.random.default_rng(0)
        data = [(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(8)]
        fns = {}
        try:
            nl.random.seed(0)
            model = nnlite_on_cuda(nl.models.GPT(V, T, L, H, C))
            if isinstance(model, str):
                fns["nnlite"] = model
            else:
                kw = dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, clipnorm=1.0)
                try:   # bench_gpt.py's optimizer: weight decay on the matrices only
                    opt = nl.optim.AdamW(**kw, decay_filter="matrices")
                except TypeError:
                    opt = nl.optim.AdamW(**kw)
                model.compile(opt, "cross_entropy")
                dev_data = [(cupy.asarray(x), cupy.asarray(y)) for x, y in data]
                i = [0]

                def nnlite_step():
                    i[0] = (i[0] + 1) % len(dev_data)
                    model.train_step(*dev_data[i[0]])
                fns["nnlite"] = synced(nnlite_step)
        except Exception as e:
            fns["nnlite"] = f"failed: {type(e).__name__}: {e}"
        if not _torch_cuda(torch):
            fns["torch"] = "missing: torch with CUDA is not available"
        else:
            F = torch.nn.functional
            torch.manual_seed(0)
            tm = torch_gpt_cuda(torch, V, T, L, H, C)
            decay = [p for p in tm.parameters() if p.dim() >= 2]
            rest = [p for p in tm.parameters() if p.dim() < 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                     {"params": rest, "weight_decay": 0.0}], lr=1e-3,
                                    betas=(0.9, 0.99))
            tdata = [(torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda"))
                     for x, y in data]
            j = [0]

            def torch_step():
                j[0] = (j[0] + 1) % len(tdata)
                x, y = tdata[j[0]]
                logits = tm(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
                opt.step()
                torch.cuda.synchronize()
            fns["torch"] = torch_step
        res.time("gpt", case, fns, flops=flops, base="torch")


def part_mnist(res, args, torch):
    import cupy
    import numpy as np

    import nnlite as nl
    b, n = (64, 64 * 8) if args.quick else (64, 60000)
    steps = -(-n // b)
    case = f"MNIST MLP epoch ({steps} steps of {b})"
    rng = np.random.default_rng(0)
    x = rng.random((n, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    fns = {}
    try:
        nl.random.seed(0)
        model = nnlite_on_cuda(nl.Sequential([nl.Flatten(), nl.Linear(784, 256), nl.ReLU(),
                                              nl.Linear(256, 128), nl.ReLU(),
                                              nl.Linear(128, 10)]))
        if isinstance(model, str):
            fns["nnlite"] = model
        else:
            model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
            batches = [(cupy.asarray(x[i:i + b]), cupy.asarray(y[i:i + b]))
                       for i in range(0, n, b)]

            def nnlite_epoch():
                for xb, yb in batches:
                    model.train_step(xb, yb)
            fns["nnlite"] = synced(nnlite_epoch)
    except Exception as e:
        fns["nnlite"] = f"failed: {type(e).__name__}: {e}"
    if not _torch_cuda(torch):
        fns["torch"] = "missing: torch with CUDA is not available"
    else:
        torch.manual_seed(0)
        tnn = torch.nn
        tm = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(),
                            tnn.Linear(256, 128), tnn.ReLU(), tnn.Linear(128, 10)).to("cuda")
        opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        loss_fn = tnn.CrossEntropyLoss()
        tb = [(torch.as_tensor(x[i:i + b], device="cuda"), torch.as_tensor(y[i:i + b], device="cuda"))
              for i in range(0, n, b)]

        def torch_epoch():
            for xb, yb in tb:
                opt.zero_grad(set_to_none=True)
                loss_fn(tm(xb), yb).backward()
                opt.step()
            torch.cuda.synchronize()
        fns["torch"] = torch_epoch
    s = sum(i * o for i, o in ((784, 256), (256, 128), (128, 10)))
    flops = steps * 2.0 * b * (2 * s + s - 784 * 256)
    res.time("mnist", case, fns, flops=flops, base="torch", repeat=3)


# ----------------------------------------------------------------------------- the table

def table(rows):
    """The one table: a line per (case, library)."""
    head = (f"{'case':<44} {'lib':<24} {'median':>10} {'iqr':>6} {'best':>10} {'GFLOP/s':>9} "
            f"{'% of base':>10}")
    lines = [head, "-" * len(head)]
    base_median = {(r["case"], r["lib"]): r["stats"]["median"] for r in rows if r["stats"]}
    last_case = None
    for r in rows:
        case = r["case"] if r["case"] != last_case else ""
        last_case = r["case"]
        if not r["stats"]:
            lines.append(f"{case:<44} {r['lib']:<24} {r['status']}: {r['note']}")
            continue
        st = _common.Stats.from_dict(r["stats"])
        gf = f"{r['flops'] / st.median / 1e9:.1f}" if r["flops"] else "-"
        bm = base_median.get((r["case"], r["base"]))
        rel = f"{100 * bm / st.median:.0f} %" if bm and r["lib"] != r["base"] else "-"
        lines.append(f"{case:<44} {r['lib']:<24} {_common.fmt_time(st.median):>10} "
                     f"{_common.fmt_iqr(st.iqr):>6} {_common.fmt_time(st.best):>10} {gf:>9} "
                     f"{rel:>10}")
    return lines


def main(argv=None):
    args = parser().parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        print(f"bench_cuda.py: unknown part(s) {bad}; choose from {PARTS}", file=sys.stderr)
        return 2
    # this checkout's nnlite (build it in place), and never its numpy twins timed as nnlite
    _common.repo_nnlite(allow_twins=args.allow_twins)
    why = why_no_gpu()
    if why:
        print(f"no GPU: {why}")
        return NO_GPU_EXIT
    args.sample_s, args.warmup_s = 0.02, 0.05
    if args.quick:
        args.budget, args.repeat, args.pause = 0.01, 3, 0.01
        args.sample_s, args.warmup_s, args.ladder_time = 0.002, 0.005, 0.05
        args.sizes = [min(args.sizes)] if args.sizes else [256]
    try:
        import torch
        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    res = Results(args)
    t0 = time.perf_counter()
    for part in parts:
        try:
            if part == "sgemm":
                part_sgemm(res, args)
            elif part == "attention":
                part_attention(res, args, torch)
            elif part == "gpt":
                part_gpt(res, args, torch)
            elif part == "mnist":
                part_mnist(res, args, torch)
        except Exception as e:   # a part that breaks is a row; the others still run
            res.add(part, part, "(part)", status="failed", note=f"{type(e).__name__}: {e}")
    import cupy
    meta = {"gpu": gpu_name(), "cupy": cupy.__version__,
            "torch": torch.__version__ if torch else None, "python": platform.python_version(),
            "seconds": round(time.perf_counter() - t0, 1), "notes": res.notes,
            "timing": "each library in its own block, synchronised calls; median, IQR, best",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "rows": res.rows}, f, indent=1)
    print(f"GPU: {meta['gpu']}; cupy {meta['cupy']}, torch {meta['torch']}; "
          "each library in its own block, never call by call; '% of base' = the baseline's "
          "median / this row's (cuBLAS FP32 for SGEMM, torch otherwise)")
    for n in res.notes:
        print("  " + n)
    print("\n".join(table(res.rows)))
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
