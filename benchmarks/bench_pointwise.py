"""Pointwise / softmax / cross-entropy / optimizer kernels: nnlite vs its numpy twin vs PyTorch.

    python benchmarks/bench_pointwise.py                    # float32, 2 threads, both shapes
    python benchmarks/bench_pointwise.py --threads 1 --simd avx2
    python benchmarks/bench_pointwise.py --shapes 64x256 --repeat 3

Each (op, shape, library) is timed as the mean over an inner loop of ~20 ms, best of --repeat
rounds, libraries interleaved with a short sleep (so one library's spinning OpenMP pool does
not steal the cores of the next on a small machine). Ratios > 1 mean nnlite is faster.
The optimizer rows update a (rows × cols) parameter in place; PyTorch's are torch.optim steps
(foreach implementation), whose Python overhead dominates at small sizes.
"""
import argparse
import sys

import _common


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="64x256,4096x1024", help="comma-separated ROWSxCOLS")
    return p


args, torch = _common.start_vs_torch(parser(), repeat=5)

import numpy as np  # noqa: E402
from nnlite import ops  # noqa: E402
from nnlite.ops import reference as ref  # noqa: E402

F = torch.nn.functional if torch is not None else None


def cases(rows, cols, rng):
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    g = rng.standard_normal((rows, cols)).astype(np.float32)
    y_gelu = ref.act_forward(x, "gelu")
    y_sm = ref.softmax(x)
    t = rng.integers(0, cols, rows)
    out = np.empty_like(x)
    st = {k: np.zeros_like(x) for k in ("p", "m", "v", "mp", "mv", "vel", "pvel")}
    st["p"][:] = x
    st["pvel"][:] = x
    tc = {}
    if torch is not None:
        tc = dict(x=torch.from_numpy(x), b=torch.from_numpy(b), g=torch.from_numpy(g),
                  y=torch.from_numpy(y_sm), t=torch.from_numpy(t), out=torch.from_numpy(out))
        tp = torch.nn.Parameter(torch.from_numpy(x.copy()))
        tp.grad = tc["g"].clone()
        adam = torch.optim.Adam([tp], lr=1e-3, foreach=True)
        tq = torch.nn.Parameter(torch.from_numpy(x.copy()))
        tq.grad = tc["g"].clone()
        sgd = torch.optim.SGD([tq], lr=1e-3, momentum=0.9, foreach=True)
        zt = torch.from_numpy(x.copy()).requires_grad_()

    def t_xent():
        zt.grad = None
        F.cross_entropy(zt, tc["t"]).backward()

    def t_sm_bwd():
        return torch._softmax_backward_data(tc["g"], tc["y"], -1, torch.float32)

    return [
        ("bias_act relu", lambda: ops.bias_act(x, b, "relu", out=out),
         lambda: ref.bias_act(x, b, "relu", out=out),
         torch and (lambda: torch.add(tc["x"], tc["b"], out=tc["out"]).relu_())),
        ("bias_act gelu", lambda: ops.bias_act(x, b, "gelu", out=out),
         lambda: ref.bias_act(x, b, "gelu", out=out),
         torch and (lambda: F.gelu(tc["x"] + tc["b"], approximate="tanh"))),
        ("act_forward tanh", lambda: ops.act_forward(x, "tanh"), lambda: ref.act_forward(x, "tanh"),
         torch and (lambda: torch.tanh(tc["x"]))),
        ("act_forward sigmoid", lambda: ops.act_forward(x, "sigmoid"),
         lambda: ref.act_forward(x, "sigmoid"), torch and (lambda: torch.sigmoid(tc["x"]))),
        ("act_backward gelu", lambda: ops.act_backward(g, x, y_gelu, "gelu"),
         lambda: ref.act_backward(g, x, y_gelu, "gelu"),
         torch and (lambda: torch.ops.aten.gelu_backward(tc["g"], tc["x"], approximate="tanh"))),
        ("act_backward relu", lambda: ops.act_backward(g, x, y_gelu, "relu"),
         lambda: ref.act_backward(g, x, y_gelu, "relu"),
         torch and (lambda: torch.ops.aten.threshold_backward(tc["g"], tc["x"], 0))),
        ("softmax", lambda: ops.softmax(x), lambda: ref.softmax(x),
         torch and (lambda: torch.softmax(tc["x"], -1))),
        ("softmax_backward", lambda: ops.softmax_backward(g, y_sm),
         lambda: ref.softmax_backward(g, y_sm), torch and t_sm_bwd),
        ("softmax_cross_entropy", lambda: ops.softmax_cross_entropy(x, t),
         lambda: ref.softmax_cross_entropy(x, t), torch and t_xent),
        ("adam_update", lambda: ops.adam_update(st["p"], g, st["m"], st["v"], step=3),
         lambda: ref.adam_update(st["p"], g, st["mp"], st["mv"], step=3),
         torch and (lambda: adam.step())),
        ("sgd_update momentum", lambda: ops.sgd_update(st["pvel"], g, st["vel"], momentum=0.9),
         lambda: ref.sgd_update(st["pvel"], g, st["mv"], momentum=0.9),
         torch and (lambda: sgd.step())),
    ]


def main():
    ops.set_num_threads(args.threads)
    if args.simd:
        ops.set_simd_path(args.simd)
    print(f"nnlite pointwise benchmark: float32, {args.threads} threads, SIMD {ops.simd_path()}, "
          f"OpenMP {ops.has_openmp()}, torch {torch.__version__ if torch else 'not used'}")
    rng = np.random.default_rng(0)
    head = f"{'op':<22} {'shape':>11} {_common.VS_HEAD}"
    for shape in args.shapes.split(","):
        rows, cols = map(int, shape.lower().split("x"))
        print()
        print(head)
        for name, f_nn, f_np, f_t in cases(rows, cols, rng):
            print(f"{name:<22} {shape:>11} {_common.vs_columns(f_nn, f_np, f_t, args.repeat)}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
