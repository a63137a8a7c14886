"""What the examples show a user: their ``--help``, their progress lines, EarlyStopping's line
in the MNIST example, and the GPT example's ``--resume`` with flags that override the
checkpoint."""
import json
import re
import sys

import numpy as np
import pytest
from _scripts import load_script
from test_progress import Clock, FakeTTY, screen

import nnlite as nl


def test_mnist_example_says_when_early_stopping_stops(monkeypatch, capsys):
    # random labels: the validation loss rises after an epoch or two and EarlyStopping stops
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
            for n in (400, 50)]
    monkeypatch.setattr(nl.datasets, "load_mnist", lambda *a, **k: data)
    load_script("examples/mnist_mlp.py").main(["--epochs", "30", "--verbose", "2"])
    out = capsys.readouterr().out
    assert "Epoch 30/30" not in out
    assert re.search(r"\nEarlyStopping: stopped at epoch (\d+) \(val_loss did not improve for 3 "
                     r"epochs; best \d\.\d{4} at epoch \d+\)\nEarlyStopping: restored the "
                     r"weights of epoch \d+\n", out), out


# -- the GPT example -------------------------------------------------------------------------
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
        "speak.\n\n") * 20
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--block-size", "8",
        "--batch-size", "2", "--max-iters", "24", "--eval-interval", "6", "--eval-iters", "2",
        "--warmup-iters", "2", "--max-new-tokens", "0"]


def gpt():
    return load_script("examples/gpt_shakespeare.py", "example_gpt_cli")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_gpt_example_progress_counts_iterations_across_resume(tmp_path, text_file, capsys):
    run = ["--text-file", text_file, "--out-dir", str(tmp_path / "run"), "--verbose", "2"]
    gpt().main(TINY + run + ["--stop-after", "12"])
    gpt().main(["--resume"] + run + ["--max-new-tokens", "0"])
    out = capsys.readouterr().out
    assert "Epoch" not in out
    heads = [s for s in out.splitlines() if s.startswith("Iterations")]
    assert heads == [f"Iterations {a}-{a + 5} of 24" for a in (1, 7, 13, 19)]
    assert re.search(r"\nIterations 13-18 of 24\n6/6 - \d+s \d+[mu]?s/iter - loss: \d\.\d{4}\n"
                     r"step 18: train loss", out), out


def test_gpt_example_shows_progress_while_evaluating(tmp_path, text_file, monkeypatch):
    monkeypatch.setattr(nl.training.progress, "time", Clock())     # every update redraws
    monkeypatch.setattr("sys.stdout", FakeTTY())
    gpt().main(TINY + ["--text-file", text_file, "--out-dir", str(tmp_path), "--max-iters",
                       "6", "--verbose", "1"])
    out = sys.stdout.getvalue()
    assert "\revaluating 3/4 [" in out and "ETA:" in out     # live, then erased:
    rows = screen(out, 80)
    assert not any(r.startswith("evaluating") for r in rows)
    i = rows.index("Iterations 1-6 of 6")
    assert rows[i - 1].startswith("step 0: train loss") and rows[i + 2].startswith("step 6: ")
    assert re.fullmatch(r"6/6 \[=+\] - \d+s \d+[mu]?s/iter - loss: \d\.\d{4}", rows[i + 1])


def test_gpt_example_resume_flags_override_the_checkpoint(tmp_path, text_file, capsys):
    ex, out_dir = gpt(), str(tmp_path / "run")
    run = ["--resume", "--text-file", text_file, "--out-dir", out_dir, "--max-new-tokens", "0"]
    ex.main(TINY + ["--text-file", text_file, "--out-dir", out_dir, "--max-iters", "12",
                    "--verbose", "0"])
    capsys.readouterr()
    r = ex.main(run + ["--max-iters", "18", "--lr", "0.002", "--eval-iters", "2"])
    assert r["iterations"] == 18 and [e["iter"] for e in r["evals"]] == [0, 6, 12, 18]
    assert ("resuming " + out_dir + " at iteration 12 (settings from the checkpoint; from the "
            "command line: lr 0.001 -> 0.002, max_iters 12 -> 18)") in capsys.readouterr().out
    state = json.loads((tmp_path / "run" / "ckpt.json").read_text())
    assert state["args"]["max_iters"] == 18 and state["args"]["lr"] == 0.002
    schedule = nl.load_model(tmp_path / "run" / state["model_file"]).optimizer.lr
    assert (schedule.total_steps, schedule.lr) == (18, 0.002)        # the schedule follows

    ex.main(run)                              # finished: nothing to do, and it says so
    assert "nothing to train: the run is at iteration 18 of --max-iters 18 (give more to " \
           "continue)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"--max-iters 12: the run in .* is at iteration 18 "
                                         r"already; give more to train further"):
        ex.main(run + ["--max-iters", "12"])
    for flag, value, what in [("--n-layer", "2", "model was built with n_layer 1"),
                              ("--dropout", "0.5", "model was built with dropout 0.0"),
                              ("--seed", "5", "random streams continue .* seed 1337")]:
        with pytest.raises(ValueError, match=f"{flag} {value} cannot apply to a resumed run: "
                                             f"the .*{what}"):
            ex.main(run + [flag, value])


# -- --help ----------------------------------------------------------------------------------
def help_entries(text):
    """``{option: description}`` from an argparse ``--help``: an option's line starts with two
    spaces and a dash, its description follows after 2+ spaces and/or on deeper lines."""
    entries, current = {}, None
    for line in text.splitlines():
        m = re.match(r"  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if m:
            names = re.findall(r"(?:^|, )(--?[\w-]+)", m[1])
            # "-h, --help": --help; "--augment, --no-augment": --augment
            current = next(n for n in names if n.startswith("--"))
            entries[current] = m[2] or ""
        elif current and line.startswith("    ") and line.strip():
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


EXAMPLES = ["gan", "gpt_shakespeare", "mnist_cnn", "mnist_mlp", "perceptron", "regression", "vae",
            "wine"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_help_describes_every_flag_with_its_default_once(name, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as e:
        load_script(f"examples/{name}.py").main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    entries = help_entries(text)
    usage = text.split("\n\n")[0]
    assert set(re.findall(r"\[(--[\w-]+)", usage)) | {"--help"} == set(entries), entries
    for flag, description in entries.items():
        assert description, f"{name} {flag}: no description"
        assert len(re.findall(r"default", description, re.IGNORECASE)) <= 1, (flag, description)
    assert "(default: None)" not in text and "(default: False)" not in text


def test_gpt_example_quick_estimates_leave_the_last_one_alone(tmp_path, text_file, capsys):
    """Evaluations before the last use the first --quick-eval-iters of their batches; the
    samplers advance as for full ones, so the last estimate (the run's result) is the same
    whatever the quick size, and so is merging batches into larger forward passes. The run
    ends with where its time went."""
    runs = {}
    for name, extra in (("full", ["--quick-eval-iters", "4"]), ("quick", []),
                        ("merged", ["--quick-eval-iters", "1", "--eval-batch-size", "4"])):
        runs[name] = gpt().main(TINY + ["--eval-iters", "4", "--text-file", text_file,
                                        "--out-dir", str(tmp_path / name), "--verbose", "1"]
                                  + extra)
    full, quick, merged = (runs[k]["evals"] for k in ("full", "quick", "merged"))
    assert full[-1] == quick[-1]                        # the same windows, the same bits
    assert merged[-1]["iter"] == 24
    assert merged[-1]["val_loss"] == pytest.approx(full[-1]["val_loss"], rel=1e-6)
    assert full[1]["val_loss"] != quick[1]["val_loss"]  # interim: 1 of 4 batches
    assert quick[1] == merged[1]
    out = capsys.readouterr().out
    assert re.search(r"24 iterations in [\d.]+s \([\d.]+ ms/iter\): train [\d.]+s, evaluation "
                     r"[\d.]+s \(\d+ %\), checkpoints [\d.]+s", out), out
    with pytest.raises(ValueError, match="--eval-batch-size 3 must be a positive multiple of "
                                         "--batch-size 2"):
        gpt().main(TINY + ["--text-file", text_file, "--out-dir", str(tmp_path / "bad"),
                           "--eval-batch-size", "3"])
