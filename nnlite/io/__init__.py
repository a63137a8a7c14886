"""Reading and writing tensors and models: safetensors files, no pickle anywhere.

``save_file``/``load_file`` handle plain dicts of arrays (compatible with the official
safetensors format); ``save_model``/``load_model`` handle whole ``.nnl`` model files;
``atomic_write`` is how both write (temporary file, fsync, rename), for any other file. Every
malformed file raises :class:`CheckpointError` (a ``ValueError``) naming the file.
"""
from .safetensors import CheckpointError, atomic_write, load_file, load_metadata, save_file
from .model_file import load_model, save_model

__all__ = ["CheckpointError", "save_file", "load_file", "load_metadata",
           "save_model", "load_model", "atomic_write"]
