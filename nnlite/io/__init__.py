"""Reading and writing tensors and models: safetensors files, no pickle anywhere.

``save_file``/``load_file`` handle plain dicts of arrays (compatible with the official
safetensors format); ``save_model``/``load_model`` handle whole ``.nnl`` model files;
``atomic_write`` is how both write (temporary file, fsync, rename), for any other file. Every
malformed file raises :class:`CheckpointError` (a ``ValueError``) naming the file.
``export_torch``/``import_torch`` write and read a model's weights with PyTorch's names and
layouts (:mod:`nnlite.io.torch_format`).
"""
from .model_file import load_model, save_model
from .safetensors import (
    CheckpointError,
    atomic_write,
    load_file,
    load_metadata,
    save_file,
)
from .torch_format import export_torch, import_torch, torch_keys, torch_state_dict

__all__ = ["CheckpointError", "atomic_write", "export_torch", "import_torch", "load_file",
           "load_metadata", "load_model", "save_file", "save_model", "torch_keys",
           "torch_state_dict"]
