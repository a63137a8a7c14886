"""Models: :class:`Sequential` (a stack of layers with Keras-like compile/fit/evaluate/predict,
from :mod:`nnlite.training`), :class:`GPT` (a transformer language model built as a Sequential)
and :func:`load_model`."""
from .sequential import Sequential
from .gpt import GPT, GPTConfig
from ..training.progress import Progbar
from ..io.model_file import load_model

__all__ = ["Sequential", "GPT", "GPTConfig", "load_model", "Progbar"]
