"""``python -m nnlite`` prints the build configuration."""
import os
import sys

from .config import show_config

try:
    show_config()
    sys.stdout.flush()      # inside the try: a closed pipe shows up here, not at exit
except BrokenPipeError:
    # The reader went away (`python -m nnlite | head`): stop quietly, as cat or ls would.
    # stdout is pointed at /dev/null so the interpreter's final flush of what is still
    # buffered cannot raise again (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
