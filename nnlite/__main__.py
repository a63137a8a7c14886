"""``python -m nnlite`` prints the build configuration."""
from .config import show_config

show_config()
