"""Models: :class:`Sequential` (Keras-like compile/fit/evaluate/predict), :class:`GPT` (a
transformer language model built as a Sequential) and :func:`load_model`."""
from .sequential import Sequential
from .gpt import GPT
from .progbar import Progbar
from ..io.model_file import load_model

__all__ = ["Sequential", "GPT", "load_model", "Progbar"]
