"""Training speed on a busy machine: nnlite vs PyTorch (CPU), alone and beside competitors.

Users train next to an editor, a browser and other jobs. This measures how much a training
job slows down when it is not alone, against the slowdown a fair share of the cores gives:

    scenario    competitors                          fair slowdown (T threads, C cores)
    alone       none                                 1
    busy1       1 process spinning on one core       max(1, (T + 1) / C)
    busy3       3 such processes                     max(1, (T + 3) / C)
    twin        a second copy of the same training   max(1, 2T / C)

(each runnable thread gets an equal share of the cores: T of T + k threads). Workloads, each
a fixed number of training steps in a fresh process, timed after a warm-up:

    mnist   the MNIST MLP 784-256-128-10, Adam, batch 64 (random data of MNIST's shape)
    gpt     the baby char-GPT (4 layers, 4 heads, 128 channels, block 64, batch 16), AdamW

    python benchmarks/bench_contention.py --threads 2            # torch: pip install torch==2.13.0

Start it on an otherwise quiet machine: the other load is what it adds itself.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import _common

SCENARIOS = ("alone", "busy1", "busy3", "twin")
# a busy process; it ends by itself when the benchmark does (killed or not)
SPIN = ("import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
        "    for _ in range(1000000): pass")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="threads of each training job")
    p.add_argument("--workloads", default="mnist,gpt", help="comma-separated: mnist, gpt")
    p.add_argument("--frameworks", default="nnlite,torch", help="comma-separated: nnlite, torch")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated subset of " + ", ".join(SCENARIOS))
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median shown)")
    p.add_argument("--mnist-steps", type=int, default=300, help="training steps per MNIST run")
    p.add_argument("--gpt-steps", type=int, default=20, help="training steps per GPT run")
    p.add_argument("--run-timeout", type=float, default=120,
                   help="seconds after which one run is stopped and counted as that long")
    p.add_argument("--json", default=None, help="also write the results to this file")
    _common.add_twins_arg(p)
    # internal: run one workload in this process and print its time
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--framework", help=argparse.SUPPRESS)
    return p.parse_args()


# ----------------------------------------------------------------------------- the child


def mnist_step(framework, threads):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    if framework == "torch":
        torch = _common.import_torch(threads, optional=False)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt), yt).backward()
            opt.step()
        return step
    import nnlite as nl
    nl.ops.set_num_threads(threads)
    nl.random.seed(0)
    model = nl.Sequential([nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 128), nl.ReLU(),
                           nl.Linear(128, 10)])
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
    return lambda: model.train_step(x, y)


def gpt_step(framework, threads):
    import numpy as np
    vocab, block, batch, n_layer, n_head, n_embd = 65, 64, 16, 4, 4, 128
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab, (batch, block))
    y = rng.integers(0, vocab, (batch, block))
    if framework == "torch":
        torch = _common.import_torch(threads, optional=False)
        F = torch.nn.functional
        torch.manual_seed(0)
        model = _common.torch_gpt(torch, vocab, block, n_layer, n_head, n_embd)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99),
                                weight_decay=0.1)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            logits = model(xt)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), yt.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return step
    import nnlite as nl
    nl.ops.set_num_threads(threads)
    nl.random.seed(0)
    model = nl.models.GPT(vocab, block, n_layer, n_head, n_embd)
    model.compile(nl.optim.AdamW(lr=1e-3, beta2=0.99, weight_decay=0.1, clipnorm=1.0,
                                 decay_filter="matrices"), "cross_entropy")
    return lambda: model.train_step(x, y)


def child(args):
    step = {"mnist": mnist_step, "gpt": gpt_step}[args.workload](args.framework, args.threads)
    steps = args.mnist_steps if args.workload == "mnist" else args.gpt_steps
    for _ in range(max(3, steps // 10)):           # warm-up: caches, pools, allocations
        step()
    while True:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
        if not args.loop:
            return


# ----------------------------------------------------------------------------- the driver


def child_cmd(args, workload, framework, loop=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--workload", workload,
           "--framework", framework, "--threads", str(args.threads),
           "--mnist-steps", str(args.mnist_steps), "--gpt-steps", str(args.gpt_steps)]
    return cmd + (["--loop"] if loop else [])


def child_env(threads):
    env = dict(os.environ, **{k: str(threads) for k in _common.THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_common.REPO, env.get("PYTHONPATH")) if p)
    return env


def start_competitors(args, scenario, workload, framework):
    """The processes that keep the machine busy during one scenario."""
    if scenario == "alone":
        return []
    if scenario == "twin":        # the same training, round after round, until killed
        proc = subprocess.Popen(child_cmd(args, workload, framework, loop=True),
                                env=child_env(args.threads), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()    # its first timed round: it is past start-up and warm-up
        return [proc]
    k = {"busy1": 1, "busy3": 3}[scenario]
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(k)]
    time.sleep(0.3)
    return procs


def run_once(args, workload, framework):
    """Seconds of one timed run; a run stopped at --run-timeout counts as that long (a lower
    bound: the table marks it with >)."""
    try:
        out = subprocess.run(child_cmd(args, workload, framework), env=child_env(args.threads),
                             capture_output=True, text=True, check=False,
                             timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        return args.run_timeout
    if out.returncode:
        raise RuntimeError(f"{framework} {workload} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def fair_slowdown(scenario, threads, cores):
    others = {"alone": 0, "busy1": 1, "busy3": 3, "twin": threads}[scenario]
    return max(1.0, (threads + others) / cores) if others else 1.0


def main(args):
    # the children import the same nnlite: refuse here when it has no compiled kernels
    _common.repo_nnlite(only_if_missing=True, allow_twins=args.allow_twins)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workloads = args.workloads.split(",")
    frameworks = args.frameworks.split(",")
    scenarios = args.scenarios.split(",")
    if "alone" not in scenarios:
        scenarios.insert(0, "alone")
    print(f"{cores} cores, {args.threads} threads per job, median of {args.repeats}; "
          f"MNIST: {args.mnist_steps} steps, GPT: {args.gpt_steps} steps per run")
    results = {}
    for workload in workloads:
        for framework in frameworks:
            if framework == "torch" and _common.import_torch(1) is None:
                print("torch not installed (pip install torch==2.13.0): skipped")
                continue
            for scenario in scenarios:
                procs = start_competitors(args, scenario, workload, framework)
                try:
                    times = [run_once(args, workload, framework) for _ in range(args.repeats)]
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
                st = _common.Stats.of(times)    # the benchmarks' one summary of samples
                results[(workload, framework, scenario)] = st.median
                print(f"  {workload:5s} {framework:6s} {scenario:5s} {st.median:8.3f} s  "
                      f"(min-max {st.best:.3f}-{st.worst:.3f}; runs: "
                      f"{', '.join(f'{t:.3f}' for t in times)})", flush=True)
    print()
    print(f"{'workload':8s} {'framework':9s} {'scenario':8s} {'seconds':>8s} {'slowdown':>9s} "
          f"{'fair':>6s} {'/fair':>6s}")
    rows = []
    for (workload, framework, scenario), t in results.items():
        alone = results[(workload, framework, "alone")]
        slow, fair = t / alone, fair_slowdown(scenario, args.threads, cores)
        rows.append(dict(workload=workload, framework=framework, scenario=scenario, seconds=t,
                         slowdown=slow, fair=fair, over_fair=slow / fair))
        mark = ">" if t >= args.run_timeout else " "
        print(f"{workload:8s} {framework:9s} {scenario:8s} {mark}{t:7.3f} {slow:8.2f}x "
              f"{fair:5.2f}x {slow / fair:5.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cores": cores, "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.child:
        child(ARGS)
    else:
        main(ARGS)
