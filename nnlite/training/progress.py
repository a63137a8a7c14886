"""A Keras-style progress bar, pure Python::

    Epoch 1/5
    844/844 [==============================] - 3s 4ms/step - loss: 0.2551 - accuracy: 0.9262

On a terminal the line is redrawn in place (``\\r``) at most ``1/interval`` times a second,
with an ETA while running, and fitted to the terminal's width (``shutil.get_terminal_size``,
so ``COLUMNS`` too): a line that wrapped would leave a stale copy per redraw, since ``\\r``
only returns to the start of the last screen row. The bar narrows first; then a running
line drops its last fields and a final line is broken between them, so no value is lost. Off a
terminal (CI logs, pipes, files) only the final line of each epoch is printed, in full, so a
log never fills with thousands of lines.
"""
import shutil
import sys
import time

MIN_BAR = 10        # narrower than this, a bar says little: it is left out


def _is_tty(f):
    try:
        return f.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def _columns(f):
    """Width of the terminal ``f`` writes to, or None: no limit (a notebook, which rewraps
    ``\\r`` lines itself; a file)."""
    try:
        if not f.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def format_time(seconds):
    """``'42s'``, ``'1:02'`` or ``'1:02:03'``."""
    s = round(seconds)
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


def wrap_fields(line, limit, indent):
    """``line`` as rows of at most ``limit`` characters, broken before a `` - `` field; each
    continuation row starts with ``indent`` spaces. A single field wider than that is cut."""
    head, *fields = line.split(" - ")
    rows = [head]
    for field in fields:
        if len(rows[-1]) + 3 + len(field) <= limit:
            rows[-1] += " - " + field
        else:
            rows.append(" " * indent + "- " + field)
    return [row[:limit] for row in rows]


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
    width : int
        Width of the bar itself, ``[===...]``, at most (a narrow terminal gets a narrower one).
    unit : str
        What a step is, for the timing: ``4ms/step``, ``120ms/iter``.
    label : str, optional
        Put before the count: ``evaluating 120/400 [===>...``.
    """

    def __init__(self, target, verbose=1, interval=0.1, file=None, width=30, unit="step",
                 label=None):
        self.target, self.verbose, self.interval = int(target), verbose, interval
        self.width, self.unit, self._file = width, unit, file
        self.label = f"{label} " if label else ""
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
        # one column spare: a line filling the last one makes some terminals wrap at once
        columns = _columns(self.file) if self.dynamic else None
        limit = None if columns is None else max(columns - 1, 1)
        line = self._line(current, logs, finalize, now - self._start, limit)
        if self.dynamic:
            indent = len(self.label) + len(str(self.target)) * 2 + 2   # under the first " - "
            rows = [line] if limit is None else wrap_fields(line, limit, indent)
            if not finalize:        # a running line: its first row, whole fields only
                rows = rows[:1]
            pad = max(0, self._last_len - len(rows[0]))   # erase leftovers of a longer line
            self._last_len = len(rows[0])
            self.file.write("\r" + rows[0] + " " * pad + "".join("\n" + r for r in rows[1:])
                            + ("\n" if finalize else ""))
        else:
            self.file.write(line + "\n")
        self.file.flush()

    def clear(self):
        """Erase a running line from the terminal (a bar that should leave nothing behind);
        nothing to do off a terminal."""
        if self.dynamic and self._last_len:
            self.file.write("\r" + " " * self._last_len + "\r")
            self.file.flush()
            self._last_len = 0

    def _line(self, current, logs, finalize, elapsed, limit=None):
        n = len(str(self.target))
        head = f"{self.label}{current:>{n}}/{self.target}"
        per_step = elapsed / max(current, 1)
        if finalize:
            timing = f" - {format_time(elapsed)} {format_per_step(per_step, self.unit)}"
        else:
            timing = f" - ETA: {format_time(per_step * (self.target - current))}"
        tail = timing + format_logs(logs)
        if self.verbose == 1:
            width = self.width
            if limit is not None:   # the bar gives way to the numbers, down to MIN_BAR
                width = min(width, limit - len(head) - len(" []") - len(tail))
                if not finalize:    # a running line keeps its bar: the logs are cut instead
                    width = max(width, MIN_BAR)
            if width >= MIN_BAR:
                done = int(width * current / max(self.target, 1))
                bar = "=" * max(done - 1, 0) + (">" if current < self.target else "=") \
                    if done else ""
                head += " [" + bar + "." * (width - len(bar)) + "]"
        return head + tail
