"""Downloading a file from a list of https mirrors: streamed to a temporary file beside the
destination, never more than the file's known size, MD5-checked, then moved into place with
``os.replace`` (so a half-written, oversized or corrupt file never has the final name).

The caller says what failed, once: a mirror that fails is replaced on the same status line by
the next one, and the returned ``(url, error)`` list goes into the caller's one notice.
"""
import hashlib
import math
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from ._errors import DataFileError

# the URL opener; tests replace it (called as _urlopen(url, timeout=...), must return an object
# usable as a context manager with .read(n); .headers with Content-Length and .geturl() are
# optional)
_urlopen = urllib.request.urlopen
TIMEOUT_ENV = "NNLITE_DOWNLOAD_TIMEOUT"
# seconds to connect, and to wait for each block: short, so that a proxy or mirror that never
# answers costs seconds before the next mirror (or the fallback), not minutes
DEFAULT_TIMEOUT = 10
CHUNK = 1 << 16


def network_timeout():
    """The network timeout in seconds: ``$NNLITE_DOWNLOAD_TIMEOUT`` or ``DEFAULT_TIMEOUT``."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise ValueError(f"${TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return seconds


def _size(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class _Status:
    """One status line on stderr: on a terminal, rewritten in place as it changes (the
    progress bar); elsewhere (a log file), only its last state, once. Silent when ``quiet``."""

    def __init__(self, quiet):
        self.quiet, self.live = quiet, not quiet and sys.stderr.isatty()
        self.text, self.width = "", 0

    def show(self, text):
        self.text = text
        if self.live:
            print("\r" + text.ljust(self.width), end="", file=sys.stderr, flush=True)
            self.width = len(text)

    def end(self):
        if self.text and not self.quiet:
            print("" if self.live else self.text, file=sys.stderr, flush=True)
        self.text, self.width = "", 0


def _require_https(url, redirected=False):
    # the MD5 is checked anyway, but plain http would let anyone on the way stall or feed the
    # download; a redirect from https to http is refused alike
    if urllib.parse.urlsplit(url).scheme != "https":
        what = f"redirected to {url}" if redirected else "not an https URL"
        raise DataFileError(f"{what}; data is only downloaded over https")


def _bar(done, total, width=24):
    filled = width * done // total if total else width
    pct = 100 * done // total if total else 100
    return f"[{'#' * filled}{'-' * (width - filled)}] {pct:3d}%  {_size(done)} / {_size(total)}"


def fetch(url, dest, md5, size, timeout=DEFAULT_TIMEOUT, status=None):
    """Download ``url`` to ``dest`` (a path), which must be ``size`` bytes with MD5 ``md5``.

    Raises on any failure (``DataFileError`` for a plain-http URL or redirect and for a
    wrong, oversized or truncated download, ``OSError`` for the network) and leaves nothing
    behind; the messages do not repeat ``url``, which ``fetch_from_mirrors`` pairs them with.
    No more than ``size + 1`` bytes are read, whatever the server sends.
    """
    _require_https(url)
    status = status or _Status(quiet=True)
    dest = os.fspath(dest)
    host = urllib.parse.urlsplit(url).hostname
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".",
                               prefix="." + os.path.basename(dest) + ".", suffix=".part")
    try:
        status.show(f"  {host}: connecting (timeout {timeout:g} s) ...")
        h, done, shown = hashlib.md5(), 0, -1
        with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=timeout) as resp:
            _require_https(getattr(resp, "geturl", lambda: url)(), redirected=True)
            headers = getattr(resp, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            if length is not None and length.strip() != str(size):
                raise DataFileError(f"the server announces {length} bytes, expected "
                                    f"{size}; download refused")
            while block := resp.read(min(CHUNK, size + 1 - done)):
                done += len(block)
                if done > size:
                    raise DataFileError(f"more than the expected {size} bytes; "
                                        "download discarded")
                out.write(block)
                h.update(block)
                if 50 * done // max(size, 1) > shown:             # at most 50 redraws
                    shown = 50 * done // max(size, 1)
                    status.show(f"  {host} {_bar(done, size)}")
        if done < size:
            raise DataFileError(f"only {done} of {size} bytes received; download "
                                "discarded")
        got = h.hexdigest()
        if got != md5:
            raise DataFileError(f"MD5 checksum mismatch (expected {md5}, got {got}, "
                                f"{done} bytes); download discarded")
        os.replace(tmp, dest)
        status.show(f"  {host} {_bar(done, size)}, MD5 ok")
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fetch_from_mirrors(mirrors, filename, dest, md5, size, quiet=False):
    """Try ``mirror + filename`` for each mirror until one succeeds, showing progress on
    stderr unless ``quiet``. Returns the list of ``(url, error)`` failures; empty means
    ``dest`` now holds the verified file."""
    seconds = network_timeout()         # a bad $NNLITE_DOWNLOAD_TIMEOUT is the user's to fix
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    status = _Status(quiet)
    if not quiet:
        print(f"Downloading {filename} ({_size(size)}) into {os.path.dirname(dest)}",
              file=sys.stderr, flush=True)
    failures = []
    try:
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                fetch(url, dest, md5, size, seconds, status)
                return []
            except Exception as e:  # noqa: BLE001  network, HTTP, wrong download, disk: next mirror
                if isinstance(e, urllib.error.HTTPError):
                    e.close()           # it holds the open response
                failures.append((url, e))
        status.show(f"  failed: none of the {len(mirrors)} mirrors could provide it")
        return failures
    finally:
        status.end()
