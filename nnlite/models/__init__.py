"""Models: :class:`Sequential` (Keras-like compile/fit/evaluate/predict) and :func:`load_model`."""
from .sequential import Sequential
from .progbar import Progbar
from ..io.model_file import load_model

__all__ = ["Sequential", "load_model", "Progbar"]
