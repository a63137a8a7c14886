"""Pointwise / dropout / softmax / loss / optimizer kernels: nnlite vs its numpy twin vs PyTorch.

    python benchmarks/bench_pointwise.py                    # float32, 1 and 2 threads
    python benchmarks/bench_pointwise.py --threads 2 --simd avx2
    python benchmarks/bench_pointwise.py --shapes 64x256 --quick

The 'numpy' rows are nnlite's own numpy twins (nnlite/ops/reference.py). Timing and table:
see benchmarks/_common.py (each library in its own block with a pause before it, median /
IQR / best, one child interpreter per thread count). These kernels are memory-bound, so the
table has no GFLOP/s or % of peak columns (the peak probe's line is printed all the same).
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


args = _common.parse(parser(), budget=0.3, repeat=7, quick={"shapes": "8x16"})
if _common.run_parent(args):
    sys.exit(0)

import numpy as np  # a child from here on: its thread variables are set

RUN = _common.start_child(args)
from nnlite import ops
from nnlite.ops import reference as ref

torch = RUN.torch

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
        ("dropout 0.2", lambda: ops.dropout(x, 0.2, 7), lambda: ref.dropout(x, 0.2, 7),
         torch and (lambda: F.dropout(tc["x"], 0.2, training=True))),
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
    RUN.note(f"pointwise kernels, float32, shapes {args.shapes}; 'numpy' = nnlite's numpy twin")
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        rows, cols = map(int, shape.lower().split("x"))
        for name, f_nn, f_np, f_t in cases(rows, cols, rng):
            RUN.time(f"{name} {shape}", {"nnlite": f_nn, "numpy": f_np, "torch": f_t})
    RUN.finish()


if __name__ == "__main__":
    main()
