"""Reading and writing tensors and models: safetensors files, no pickle anywhere.

``save_file``/``load_file`` handle plain dicts of arrays (compatible with the official
safetensors format); ``save_model``/``load_model`` handle whole ``.nnl`` model files.
"""
from .safetensors import CheckpointError, load_file, load_metadata, save_file
from .model_file import load_model, save_model

__all__ = ["CheckpointError", "save_file", "load_file", "load_metadata",
           "save_model", "load_model"]
