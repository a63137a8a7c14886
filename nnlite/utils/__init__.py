"""Small utilities that stand apart from the layers and the training (numpy and the standard
library only).

* ``images.py``: :func:`save_image_grid` (a grid of images as an 8-bit PNG, no matplotlib)
  and :func:`write_png` (one array as a PNG).
"""
from .images import save_image_grid, write_png

__all__ = ["save_image_grid", "write_png"]
