"""What a user reads while training: the progress bar on a terminal of any width, evaluate's
timing, EarlyStopping's line, the summary's names and shapes, ``python -m nnlite`` in a pipe."""
import functools
import io
import re
import subprocess
import sys
import time

import pytest

import _child as child
import _training
import nnlite as nl
from _training import Score
from nnlite.training.progress import Progbar

blobs = functools.partial(_training.blobs, n=240, d=6)   # 6 features: compiled()'s input


def compiled(d=6, k=3, hidden=16, seed=0):
    nl.random.seed(seed)
    m = nl.Sequential([nl.Linear(d, hidden), nl.ReLU(), nl.Linear(hidden, k)])
    m.compile(optimizer=nl.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    return m


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def screen(text, columns):
    """The rows a terminal ``columns`` wide shows after ``text``: ``\\r`` returns to the start
    of the cursor's row, ``\\n`` goes to the next, a character past the last column wraps."""
    rows, row, col = [[]], 0, 0
    for ch in text:
        if ch in "\r\n":
            col = 0
            row += ch == "\n"
        else:
            if col == columns:
                row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
            rows[row][col:col + 1] = [ch]   # (col never runs past the row's end: in order)
            col += 1
        while len(rows) <= row:
            rows.append([])
    return ["".join(r).rstrip() for r in rows[:row + (col > 0)]]


class Clock:
    """A stand-in for ``time`` in the progress module: each reading is a second later, so
    every update redraws."""

    def __init__(self):
        self.t = 0.0

    def monotonic(self):
        self.t += 1.0
        return self.t


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_progress_bar_fits_a_narrow_terminal(columns, monkeypatch):
    """No stale rows: a redraw that wrapped would leave one per refresh."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(nl.training.progress, "time", Clock())
    monkeypatch.setattr("sys.stdout", FakeTTY())
    x, y = blobs(n=200)
    compiled().fit(x, y, epochs=4, batch_size=4, validation_split=0.1)  # 45 redraws an epoch
    out = sys.stdout.getvalue()
    rows = screen(out, columns)
    assert all(len(r) < columns for r in rows), rows
    # each epoch: its header and its final line (broken between fields where too wide)
    finals = [r for r in rows if re.match(r"45/45 ", r)]
    assert len(finals) == 4 and rows[0] == "Epoch 1/4" and rows.count("Epoch 4/4") == 1
    wrapped = rows[1:rows.index("Epoch 2/4")]
    assert len(rows) == 4 * (1 + len(wrapped)), rows
    final = " ".join(s.strip() for s in wrapped)        # every value is there, in order
    assert re.fullmatch(r"45/45( \[=+\])? - \d+s \d+s/step - loss: \d\.\d{4} - accuracy: "
                        r"\d\.\d{4} - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}", final), final
    if columns == 80:       # the running line keeps a bar; the final one fits on 2 rows
        assert len(wrapped) == 2 and "[" in out.split("\r")[-2]


def test_progbar_final_line_is_broken_between_fields(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr(nl.training.progress, "time", Clock())
    f = FakeTTY()
    logs = {"loss": 0.2551, "accuracy": 0.9262, "val_loss": 0.1, "val_accuracy": 0.97}
    Progbar(844, file=f).update(844, logs, finalize=True)
    assert screen(f.getvalue(), 60) == [
        "844/844 - 1s 1ms/step - loss: 0.2551 - accuracy: 0.9262",
        "        - val_loss: 0.1000 - val_accuracy: 0.9700"]


def test_progbar_clear_leaves_nothing():
    f = FakeTTY()
    bar = Progbar(10, file=f, interval=0)
    bar.update(3, {"loss": 1.0})
    bar.clear()
    print("step 10: done", file=f)
    assert screen(f.getvalue(), 80) == ["step 10: done"]
    off = io.StringIO()                                     # off a terminal: nothing at all
    bar = Progbar(10, file=off, interval=0)
    bar.update(3)
    bar.clear()
    assert off.getvalue() == ""


class Slow(nl.layers.Layer):
    """Identity that takes ``seconds`` per forward: an evaluation with a known duration."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x, training=True):
        time.sleep(self.seconds)
        return x

    def backward(self, grad_out):
        return grad_out

    def output_shape(self, input_shape):
        return input_shape


def _seconds(text):
    value, unit = re.fullmatch(r"(\d+)(s|ms|us)", text).groups()
    return int(value) * {"s": 1, "ms": 1e-3, "us": 1e-6}[unit]


@pytest.mark.parametrize("verbose", [1, 2])
def test_evaluate_verbose_times_the_evaluation(verbose, capsys):
    x, y = blobs(n=40)
    m = compiled()
    m.layers.insert(0, Slow(0.03))
    m.evaluate(x, y, batch_size=4, verbose=verbose)            # 10 batches, >= 0.3 s
    line = capsys.readouterr().out.strip()
    total, per_step = re.fullmatch(r"10/10(?: \[=+\])? - (\w+) (\w+)/step - loss: \S+ - "
                                   r"accuracy: \S+", line).groups()
    assert 0.03 <= _seconds(per_step) < 0.3 and _seconds(total) in (0, 1)
    assert per_step.endswith("ms") and ("[" in line) == (verbose == 1)


def test_evaluate_live_bar_on_a_terminal(monkeypatch):
    monkeypatch.setattr(nl.training.progress, "time", Clock())
    monkeypatch.setattr("sys.stdout", FakeTTY())
    x, y = blobs(n=40)
    compiled().evaluate(x, y, batch_size=4, verbose=1)
    out = sys.stdout.getvalue()
    assert out.count("\r") == 11 and "ETA:" in out and screen(out, 80)[0].startswith("10/10 [")


def test_early_stopping_says_when_and_why_it_stopped(capsys):
    x, y = blobs(n=32)
    es = nl.callbacks.EarlyStopping(monitor="score", patience=2, restore_best_weights=True,
                                    verbose=1)
    scores = Score([3.0, 0.0712, 2.0, 2.5, 9, 9])
    compiled().fit(x, y, epochs=6, verbose=0, callbacks=[scores, es])
    assert capsys.readouterr().out.splitlines() == [
        ("EarlyStopping: stopped at epoch 4 (score did not improve for 2 epochs; best 0.0712 "
         "at epoch 2)"),
        "EarlyStopping: restored the weights of epoch 2"]
    es.verbose = 0
    compiled().fit(x, y, epochs=6, verbose=0, callbacks=[Score([3.0, 1.0, 2.0, 2.5, 9, 9]), es])
    assert capsys.readouterr().out == ""


def test_python_m_nnlite_into_a_closed_pipe_is_quiet():
    """``python -m nnlite | head``: the reader may go before the output is written."""
    p = child.popen("-m", "nnlite", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                        # as head does after its lines
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1 and err == "", err
    out = child.python("-m", "nnlite", check=False, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("nnlite ") and out.stderr == ""


def test_summary_names_the_model_by_its_class_and_knows_a_flatten_before_a_linear():
    lines = []
    nl.models.GPT(20, 8, n_layer=1, n_head=2, n_embd=8).summary(print_fn=lines.append)
    assert lines[0] == 'Model: "gpt"'

    class MyNet(nl.Sequential):
        pass
    lines = []
    MyNet([nl.Linear(3, 2)]).summary(print_fn=lines.append)
    nl.Sequential([nl.Linear(3, 2)], name="mine").summary(print_fn=lines.append)
    assert [s for s in lines if s.startswith("Model")] == ['Model: "my_net"', 'Model: "mine"']

    # the README's model, no input_shape: the Flatten's output is what the Linear takes
    lines = []
    nl.Sequential([nl.Flatten(), nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 10)]).summary(
        print_fn=lines.append)
    assert any(re.fullmatch(r" flatten \(Flatten\)\s+\(None, 784\)\s+0", s) for s in lines)
    assert not any("?" in s for s in lines)


