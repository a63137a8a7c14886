"""A Keras-style progress bar, pure Python::

    Epoch 1/5
    844/844 [==============================] - 3s 4ms/step - loss: 0.2551 - accuracy: 0.9262

On a terminal the line is redrawn in place (``\\r``) at most ``1/interval`` times a second,
with an ETA while running. Off a terminal (CI logs, pipes, files) only the final line of each
epoch is printed, so a log never fills with thousands of lines.
"""
import sys
import time


def _is_tty(f):
    try:
        return f.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def format_time(seconds):
    """``'42s'``, ``'1:02'`` or ``'1:02:03'``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    if s >= 60:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s}s"


def format_per_step(seconds, unit="step"):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def format_logs(logs):
    parts = []
    for k, v in (logs or {}).items():
        v = float(v)
        parts.append(f"{k}: {v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{k}: {v:.4e}")
    return "".join(" - " + p for p in parts)


class Progbar:
    """Progress of ``target`` steps.

    Parameters
    ----------
    target : int
        Number of steps in the epoch.
    verbose : int
        1: a live bar on a terminal (final line only elsewhere); 2: the final line only.
    interval : float
        Minimum seconds between redraws on a terminal.
    file : file-like, optional
        Defaults to ``sys.stdout`` at the time of writing.
    """

    def __init__(self, target, verbose=1, interval=0.1, file=None, width=30, unit="step"):
        self.target, self.verbose, self.interval = int(target), verbose, interval
        self.width, self.unit, self._file = width, unit, file
        self.dynamic = verbose == 1 and _is_tty(self.file)
        self._start = self._last = time.monotonic()
        self._last_len = 0

    @property
    def file(self):
        return self._file or sys.stdout

    def update(self, current, logs=None, finalize=False):
        """Report ``current`` steps done with running means ``logs``; ``finalize`` ends the line."""
        if not self.verbose:
            return
        now = time.monotonic()
        if not finalize and (not self.dynamic or now - self._last < self.interval):
            return
        self._last = now
        line = self._line(current, logs, finalize, now - self._start)
        if self.dynamic:
            pad = max(0, self._last_len - len(line))   # erase leftovers of a longer line
            self._last_len = len(line)
            self.file.write("\r" + line + " " * pad + ("\n" if finalize else ""))
        else:
            self.file.write(line + "\n")
        self.file.flush()

    def _line(self, current, logs, finalize, elapsed):
        n = len(str(self.target))
        head = f"{current:>{n}}/{self.target}"
        if self.verbose == 1:
            done = int(self.width * current / max(self.target, 1))
            bar = "=" * max(done - 1, 0) + (">" if current < self.target else "=") if done else ""
            head += " [" + bar + "." * (self.width - len(bar)) + "]"
        per_step = elapsed / max(current, 1)
        if finalize:
            timing = f" - {format_time(elapsed)} {format_per_step(per_step, self.unit)}"
        else:
            timing = f" - ETA: {format_time(per_step * (self.target - current))}"
        return head + timing + format_logs(logs)
