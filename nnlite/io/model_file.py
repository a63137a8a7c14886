"""Whole-model files (``.nnl``): architecture + weights (+ optimizer state) in one safetensors file.

* tensors: the weights, keyed as ``model.params`` (a Sequential ``"<layer index>.<param
  name>"``, a GPT by module path, ``"h.0.attn.qkv.W"``), and the optimizer state under
  ``"optimizer.<...>"``;
* ``__metadata__`` (str -> str): ``format``/``format_version``, ``nnlite_version``,
  ``architecture`` (JSON: layer class names and configs), ``compile`` (JSON: loss, optimizer,
  metrics), ``optimizer_state`` (JSON skeleton of ``optimizer.state_dict()`` whose arrays point
  at tensors), and ``sha256``: a digest of every tensor (name, dtype, shape, bytes) and of the
  other metadata, checked on load so a tampered or damaged file is refused.

Nothing is unpickled or executed: layers are rebuilt from ``Layer.registry`` by class name,
inside :func:`nnlite.init.skip_init` (no weights drawn: the file sets every one), and filled
with ``model.set_weights``, where a model class can accept older keys (``GPT.upgrade_keys``).
"""
import hashlib
import json
import warnings

import numpy as np

from .. import init as _init
from .safetensors import CheckpointError, read_file, save_file

FORMAT = "nnlite.model"
FORMAT_VERSION = 1


def checksum(tensors, metadata):
    """SHA-256 (hex) over the tensors (sorted by name) and the metadata other than ``sha256``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data if a.nbytes else b"")
    for k in sorted(metadata):
        if k != "sha256":
            h.update(f"{k}\0{metadata[k]}\0".encode())
    return h.hexdigest()


# -- optimizer state: nested dicts/lists of arrays and scalars <-> JSON + tensors -------------
def _encode(obj, prefix, tensors):
    if isinstance(obj, np.ndarray):
        key = f"optimizer.{prefix}" if prefix else "optimizer"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        items = [(k, _encode(v, f"{prefix}.{k}" if prefix else str(k), tensors))
                 for k, v in obj.items()]
        if all(isinstance(k, str) for k, _ in items):
            return {"__dict__": dict(items)}
        return {"__items__": [[k, v] for k, v in items]}   # e.g. int keys (param index)
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{prefix}.{i}" if prefix else str(i), tensors)
                for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"optimizer state entry {prefix!r} of type {type(obj).__name__} "
                    f"cannot be saved")


def _decode(obj, tensors):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj["__dict__"].items()}
    return obj


def _describe(obj, given):
    """{'class_name', 'config', 'name'} for a loss/optimizer; config None if not JSON-able."""
    cfg = None
    if hasattr(obj, "get_config"):
        try:
            cfg = obj.get_config()
            json.dumps(cfg)
        except (TypeError, ValueError):
            cfg = None
    return {"class_name": type(obj).__name__, "config": cfg,
            "name": given if isinstance(given, str) else None}


def _rebuild(module, registry, desc):
    """An object from ``_describe``'s output, or None (with a warning) if it cannot be made."""
    if desc is None:
        return None
    cls = registry.get(desc["class_name"]) or getattr(module, desc["class_name"], None)
    errors = []
    if isinstance(cls, type):
        try:
            cfg = desc["config"] or {}
            return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)
        except Exception as e:          # noqa: BLE001  (fall back to the name below)
            errors.append(f"{type(e).__name__}: {e}")
    for name in (desc.get("name"), desc["class_name"]):
        if name:
            try:
                return module.get(name)
            except Exception as e:      # noqa: BLE001
                errors.append(f"{type(e).__name__}: {e}")
    warnings.warn(f"could not rebuild {module.__name__} {desc['class_name']!r} "
                  f"({'; '.join(errors) or 'unknown class'}); the model is loaded uncompiled")
    return None


# -- save / load ---------------------------------------------------------------------------
def save_model(model, path, include_optimizer=True):
    """Save a :class:`~nnlite.Sequential` (architecture, weights, compile settings and, when
    ``include_optimizer``, the optimizer state) to one ``.nnl`` file, atomically."""
    from .. import __version__
    tensors = dict(model.params)
    meta = {
        "format": FORMAT, "format_version": str(FORMAT_VERSION), "nnlite_version": __version__,
        "architecture": json.dumps({"class_name": type(model).__name__,
                                    "config": model.get_config()}),
    }
    if getattr(model, "loss", None) is not None:
        comp = {"loss": _describe(model.loss, model._compile_args.get("loss")),
                "optimizer": _describe(model.optimizer, model._compile_args.get("optimizer")),
                "metrics": list(model.metrics_names)}
        meta["compile"] = json.dumps(comp)
        if include_optimizer and hasattr(model.optimizer, "state_dict"):
            try:
                skeleton = _encode(model.optimizer.state_dict(), "", tensors)
                meta["optimizer_state"] = json.dumps(skeleton)
            except TypeError as e:
                for k in [k for k in tensors if k.startswith("optimizer")]:
                    del tensors[k]
                warnings.warn(f"optimizer state not saved: {e}")
    meta["sha256"] = checksum(tensors, meta)
    save_file(tensors, path, metadata=meta)


def load_model(path, compile=True):
    """Rebuild a model saved by :func:`save_model` (weights, and compile state when the loss and
    optimizer are known names or registered classes).

    Raises
    ------
    CheckpointError
        If the file is not an nnlite model, is truncated, or fails its checksum.
    """
    from .. import losses, optim
    from ..layers.base import Layer
    tensors, meta = read_file(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nnlite model file (no '{FORMAT}' metadata); "
                              f"nl.io.load_file reads its raw tensors")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by nnlite {meta.get('nnlite_version')} in "
                              f"format version {meta['format_version']}; this nnlite reads up "
                              f"to {FORMAT_VERSION}: upgrade nnlite")
    want, got = meta.get("sha256"), checksum(tensors, meta)
    if want != got:
        raise CheckpointError(f"model file {path} is corrupt: checksum mismatch "
                              f"(stored {want}, computed {got})")

    arch = json.loads(meta["architecture"])
    cls = Layer.registry.get(arch["class_name"])
    if cls is None:
        raise CheckpointError(f"{path}: unknown model class {arch['class_name']!r}")
    try:
        with _init.skip_init():             # zeros, nothing drawn: set_weights fills them
            model = cls.from_config(arch["config"])
        model.set_weights({k: v for k, v in tensors.items() if not k.startswith("optimizer")})
    except (ValueError, TypeError) as e:    # say which file; keep the layer's own words
        raise CheckpointError(f"{path}: cannot rebuild the model: {e}") from e

    if compile and "compile" in meta:
        comp = json.loads(meta["compile"])
        loss = _rebuild(losses, getattr(losses, "Loss", object).__dict__.get("registry", {}),
                        comp["loss"])
        opt = _rebuild(optim, getattr(optim, "Optimizer", object).__dict__.get("registry", {}),
                       comp["optimizer"])
        if loss is not None and opt is not None:
            model.compile(optimizer=opt, loss=loss, metrics=comp["metrics"] or None)
            if "optimizer_state" in meta and hasattr(opt, "load_state_dict"):
                try:
                    opt.load_state_dict(_decode(json.loads(meta["optimizer_state"]), tensors))
                except Exception as e:  # noqa: BLE001  (weights are fine; say what was lost)
                    warnings.warn(f"{path}: optimizer state not restored "
                                  f"({type(e).__name__}: {e}); training restarts it")
    return model
