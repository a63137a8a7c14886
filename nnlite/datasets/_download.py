"""Downloading a file from a list of mirrors: streamed to a temp file, MD5-checked, then
moved into place with ``os.replace`` (so a half-written or corrupt file never has the final
name)."""
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request

from ._errors import DataFileError

# the URL opener; tests replace it (called as _urlopen(url, timeout=...), must return an object
# usable as a context manager with .read(n); .headers with Content-Length is optional)
_urlopen = urllib.request.urlopen
TIMEOUT = 30
CHUNK = 1 << 16


def _progress(msg, end=""):
    print(msg, end=end, file=sys.stderr, flush=True)


def fetch(url, dest, md5, size=None, quiet=False):
    """Download ``url`` to ``dest`` (a path) and check its MD5; raise on any failure and leave
    nothing behind."""
    dest = os.fspath(dest)
    folder = os.path.dirname(dest) or "."
    os.makedirs(folder, exist_ok=True)
    midline = False
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(dest) + ".",
                               suffix=".part")
    if not quiet:
        _progress(f"Downloading {url}", end="\n")
    try:
        h = hashlib.md5()
        done = 0
        with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=TIMEOUT) as resp:
            headers = getattr(resp, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            total = int(length) if length and str(length).isdigit() else size
            shown = -1
            while block := resp.read(CHUNK):
                out.write(block)
                h.update(block)
                done += len(block)
                if not quiet and total:
                    pct = min(100, 100 * done // total)
                    if pct >= shown + 5 or pct == 100:
                        shown = pct
                        _progress(f"\r  {pct:3d}%  {done / 1e6:.1f} / {total / 1e6:.1f} MB")
                        midline = True
        got = h.hexdigest()
        if got != md5:
            raise DataFileError(f"{url}: MD5 checksum mismatch (expected {md5}, got {got}, "
                                f"{done} bytes); download discarded")
        os.replace(tmp, dest)
        if not quiet:
            _progress(f"\r  done  {done / 1e6:.1f} MB, MD5 ok -> {dest}", end="\n")
    except BaseException as e:
        if not quiet:
            _progress(f"{chr(10) if midline else ''}  failed: {type(e).__name__}: {e}", end="\n")
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fetch_from_mirrors(mirrors, filename, dest, md5, size=None, quiet=False):
    """Try ``mirror + filename`` for each mirror until one succeeds. Returns the list of
    ``(url, error)`` failures; empty means ``dest`` now holds the verified file."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            fetch(url, dest, md5, size=size, quiet=quiet)
            return []
        except KeyboardInterrupt:
            raise
        except Exception as e:  # network errors, HTTP errors, checksum mismatch, disk errors
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTPError holds the open response
            failures.append((url, e))
    return failures
