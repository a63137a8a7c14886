r"""PyTorch's names and layouts: export a model's weights for ``torch.nn``, import them back.

A ``.nnl`` file is safetensors, but not a PyTorch state dict: its keys are nnlite's (``1.W``),
a Linear's matrix is stored (in, out) where ``torch.nn.Linear.weight`` is (out, in), and the
optimizer state sits in the same file. A square layer loaded without the transpose would be
silently wrong. :func:`export_torch` writes what ``torch.nn`` expects instead, and
:func:`import_torch` reads it (a file, a state dict or a module), transposing where needed.

==================  =====================================  ==================================
nnlite layer        PyTorch module: keys                   values
==================  =====================================  ==================================
Linear              ``nn.Linear``: ``weight``, ``bias``    ``W.T`` (out, in), ``b``
Dense with an       ``nn.Sequential(nn.Linear, <act>)``:   as Linear
activation (or      ``0.weight``, ``0.bias``
Linear(act=...))
LayerNorm           ``nn.LayerNorm``: ``weight``, ``bias``  ``gamma``, ``beta``
Embedding           ``nn.Embedding``: ``weight``           ``W`` (V, C)
MultiHeadAttention  ``nn.MultiheadAttention``:             ``W_qkv.T`` (3C, C), ``b_qkv``,
                    ``in_proj_weight``, ``in_proj_bias``,  ``W_o.T``, ``b_o``
                    ``out_proj.weight``, ``out_proj.bias``
Conv2D,             ``nn.Conv2d``, ``nn.ConvTranspose2d``: ``W`` (same layout), ``b``
ConvTranspose2D     ``weight``, ``bias``
BatchNorm1d/2d      ``nn.BatchNorm1d/2d``: ``weight``,     ``gamma``, ``beta``, and the
                    ``bias``, ``running_mean``,            buffers ``running_mean``,
                    ``running_var`` (``num_batches_        ``running_var``
                    tracked`` is not kept: ignored on
                    import, absent on export);
                    ``activation="relu"``:
                    ``nn.Sequential(nn.BatchNorm2d,
                    nn.ReLU)``, keys under ``0.``
no parameters       ``nn.Flatten``, ``nn.ReLU``, ...: none  (the layer keeps its index)
==================  =====================================  ==================================

A :class:`~nnlite.Sequential` maps to ``torch.nn.Sequential`` of the counterpart modules
(``nn.Flatten``, ``nn.Linear``, ``nn.ReLU``, ``nn.LayerNorm``, ``nn.Embedding``,
``nn.Dropout``, ``nn.GELU(approximate="tanh")``, ...): layer ``i``'s keys are ``"{i}.weight"``
etc., a nested Sequential's ``"{i}.{j}.weight"``. A :class:`~nnlite.models.GPT` maps to
nanoGPT's ``GPT`` (``model.py``; keys ``transformer.wte.weight``, ``transformer.wpe.weight``,
``transformer.h.{i}.ln_1.weight``, ``.attn.c_attn.weight`` (3C, C), ``.attn.c_proj``,
``.ln_2``, ``.mlp.c_fc``, ``.mlp.c_proj``, ``transformer.ln_f``, ``lm_head.weight``) plus
``lm_head.bias``: nnlite's head has a bias and is not tied to ``wte`` (nanoGPT's is tied and
bias-free: build it with ``nn.Linear(C, V, bias=True)`` and untie it, or import a nanoGPT
checkpoint with ``strict=False``, which keeps the model's own zero ``lm_head.b``). The fused
QKV layout is the same in both: columns of ``W_qkv`` (rows of ``c_attn.weight``) are Q, K, V,
each split into heads ``[h * hs:(h + 1) * hs]``; only the transpose differs.

Layers with parameters but no ``torch.nn`` counterpart (``PositionalEmbedding`` outside a GPT,
``Residual``, your own) raise ``ValueError`` naming the layer and its place.
"""
import collections
import collections.abc
import os

import numpy as np

from .. import devices
from ..layers import (
    Conv2D,
    Embedding,
    LayerNorm,
    Linear,
    MultiHeadAttention,
    PositionalEmbedding,
    Residual,
)
from ..layers._checks import describe
from ..layers.base import shape_str
from ..layers.normalization import _BatchNorm
from .safetensors import CheckpointError, read_file, save_file

TorchKey = collections.namedtuple("TorchKey", "torch nnlite transpose")
TorchKey.__doc__ = """One parameter: its PyTorch key, its nnlite key (``model.params``) and
whether the PyTorch tensor is the transpose of nnlite's array."""

ImportResult = collections.namedtuple("ImportResult", "missing_keys unexpected_keys")
ImportResult.__doc__ = """What :func:`import_torch` left out (``strict=False``): PyTorch keys
the model has but the source lacked, and keys of the source the model does not have."""


def _linear(prefix, nn_prefix, layer, names=("W", "b")):
    W, b = names
    out = [TorchKey(prefix + "weight", nn_prefix + W, True)]
    if b in layer.params:
        out.append(TorchKey(prefix + "bias", nn_prefix + b, False))
    return out


def _block(prefix, nn_prefix):
    """nanoGPT's ``Block`` (``ln_1``, ``attn.c_attn``, ``attn.c_proj``, ``ln_2``,
    ``mlp.c_fc``, ``mlp.c_proj``) against nnlite's (``ln_1``, ``attn.qkv``, ``attn.proj``,
    ``ln_2``, ``mlp.fc``, ``mlp.proj``)."""
    p, n = prefix, nn_prefix
    return [TorchKey(p + "ln_1.weight", n + "ln_1.gamma", False),
            TorchKey(p + "ln_1.bias", n + "ln_1.beta", False),
            TorchKey(p + "attn.c_attn.weight", n + "attn.qkv.W", True),
            TorchKey(p + "attn.c_attn.bias", n + "attn.qkv.b", False),
            TorchKey(p + "attn.c_proj.weight", n + "attn.proj.W", True),
            TorchKey(p + "attn.c_proj.bias", n + "attn.proj.b", False),
            TorchKey(p + "ln_2.weight", n + "ln_2.gamma", False),
            TorchKey(p + "ln_2.bias", n + "ln_2.beta", False),
            *_mlp(p + "mlp.", n + "mlp.")]


def _mlp(prefix, nn_prefix):
    """nanoGPT's ``MLP`` (``c_fc``, ``c_proj``) against nnlite's (``fc``, ``proj``)."""
    return [TorchKey(prefix + "c_fc.weight", nn_prefix + "fc.W", True),
            TorchKey(prefix + "c_fc.bias", nn_prefix + "fc.b", False),
            TorchKey(prefix + "c_proj.weight", nn_prefix + "proj.W", True),
            TorchKey(prefix + "c_proj.bias", nn_prefix + "proj.b", False)]


def _keys(layer, prefix, nn_prefix):
    """The :class:`TorchKey` list of ``layer``, its PyTorch keys under ``prefix`` and its
    nnlite keys under ``nn_prefix`` (which errors give as its place)."""
    from ..models import GPT, Sequential
    from ..models.gpt_blocks import MLP, Block
    if isinstance(layer, GPT):
        t, n = prefix + "transformer.", nn_prefix
        out = [TorchKey(t + "wte.weight", n + "wte.W", False),
               TorchKey(t + "wpe.weight", n + "wpe.P", False)]
        for i in range(len(layer.h)):
            out += _block(f"{t}h.{i}.", f"{n}h.{i}.")
        return out + [TorchKey(t + "ln_f.weight", n + "ln_f.gamma", False),
                      TorchKey(t + "ln_f.bias", n + "ln_f.beta", False),
                      *_linear(prefix + "lm_head.", n + "lm_head.", layer.lm_head)]
    if isinstance(layer, Sequential):
        if type(layer)._arrays is not Sequential._arrays:
            raise ValueError(f"{type(layer).__name__}{_at(nn_prefix)} keys its parameters its "
                             f"own way; its PyTorch names are not known (Sequential's and "
                             f"GPT's are)")
        out = []
        for i, sub in enumerate(layer.layers):
            out += _keys(sub, f"{prefix}{i}.", f"{nn_prefix}{i}.")
        return out
    if isinstance(layer, Block):
        return _block(prefix, nn_prefix)
    if isinstance(layer, MLP):
        return _mlp(prefix, nn_prefix)
    if isinstance(layer, Linear):
        if getattr(layer, "built", True) is False:
            raise ValueError(f"{describe(layer)}{_at(nn_prefix)} is not built yet (its input "
                             f"size is found at the first call): call model.build(input_shape) "
                             f"first")
        if getattr(layer, "activation", None) or layer.act:   # Dense(units, activation=...),
            # Linear(act=...): no single torch module: nn.Sequential(nn.Linear, <activation>)
            return _linear(prefix + "0.", nn_prefix, layer)
        return _linear(prefix, nn_prefix, layer)
    if isinstance(layer, LayerNorm):
        return [TorchKey(prefix + "weight", nn_prefix + "gamma", False),
                TorchKey(prefix + "bias", nn_prefix + "beta", False)]
    if isinstance(layer, Embedding):
        return [TorchKey(prefix + "weight", nn_prefix + "W", False)]
    if isinstance(layer, Conv2D):                  # ConvTranspose2D too: PyTorch's layouts
        return [TorchKey(prefix + "weight", nn_prefix + "W", False),
                *([TorchKey(prefix + "bias", nn_prefix + "b", False)] if layer.bias else [])]
    if isinstance(layer, _BatchNorm):
        if layer.activation:                # BatchNorm2d(..., activation="relu"): no single
            prefix += "0."                  # torch module: nn.Sequential(nn.BatchNorm2d, nn.ReLU)
        return [TorchKey(prefix + k, nn_prefix + n, False) for k, n in
                (("weight", "gamma"), ("bias", "beta"), ("running_mean", "running_mean"),
                 ("running_var", "running_var"))]
    if isinstance(layer, MultiHeadAttention):
        return [TorchKey(prefix + "in_proj_weight", nn_prefix + "W_qkv", True),
                TorchKey(prefix + "in_proj_bias", nn_prefix + "b_qkv", False),
                *_linear(prefix + "out_proj.", nn_prefix, layer, ("W_o", "b_o"))]
    if not layer.params:
        return []                           # Flatten, activations, Dropout, ...: no state
    why = {PositionalEmbedding: "torch.nn has no module that adds a position table (inside a "
                                "GPT it is nanoGPT's transformer.wpe, an nn.Embedding)",
           Residual: "torch.nn has no residual module (write the block as a GPT, or as your "
                     "own module)"}.get(type(layer), "no torch.nn module is known to match it")
    raise ValueError(f"{describe(layer)}{_at(nn_prefix)} has no PyTorch counterpart: {why}")


def _at(nn_prefix):
    """`` at layer '1.3'``: a layer's place, its parameters' key prefix."""
    return f" at layer {nn_prefix[:-1]!r}" if nn_prefix else ""


def torch_keys(model):
    """The map between ``model``'s parameters and PyTorch's state dict, in forward order.

    Parameters
    ----------
    model : Sequential, GPT or Layer

    Returns
    -------
    list of TorchKey
        ``(torch, nnlite, transpose)``: the PyTorch key, the key in ``model.params`` and
        whether PyTorch's tensor is the transpose of nnlite's array.

    Raises
    ------
    ValueError
        A layer with parameters and no PyTorch counterpart, named with its place.
    """
    keys = _keys(model, "", "")
    params = {**model.params, **model.buffers}
    lost = [k.nnlite for k in keys if k.nnlite not in params]
    left = sorted(set(params) - {k.nnlite for k in keys})
    if lost or left:                        # a layer whose params differ from its class's
        raise ValueError(f"torch_keys: the PyTorch map and {type(model).__name__}.params "
                         f"disagree: mapped but absent {lost or 'none'}, present but unmapped "
                         f"{left or 'none'}")
    return keys


def torch_state_dict(model):
    """``model``'s weights with PyTorch's keys and layouts, as numpy arrays (copies,
    C-contiguous): ``torch.nn.Module.load_state_dict({k: torch.from_numpy(v) ...})`` takes
    them (host copies of a model on a GPU). Needs no torch. See :func:`torch_keys` and the
    module docstring for the names."""
    params = {k: devices.to_host(v) for k, v in {**model.params, **model.buffers}.items()}
    return {k.torch: np.ascontiguousarray(params[k.nnlite].T if k.transpose
                                          else params[k.nnlite]).copy()
            for k in torch_keys(model)}


def export_torch(model, path):
    """Write ``model``'s weights as a PyTorch state dict in a safetensors file (no torch
    needed): ``safetensors.torch.load_file(path)`` gives the dict ``module.load_state_dict``
    takes. Only the weights: no optimizer state, no architecture (metadata ``{"format":
    "pt"}``, as ``safetensors.torch.save_file`` writes). Atomic, as every nnlite write."""
    save_file(torch_state_dict(model), path, metadata={"format": "pt"})


def _to_numpy(name, v):
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach") and hasattr(v, "cpu"):      # a torch.Tensor, without importing torch
        t = v.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
            t = t.float()                               # no numpy dtype for these
        return t.numpy()
    try:
        return np.asarray(v)
    except Exception as e:
        raise TypeError(f"import_torch: {name!r} is a {type(v).__name__}, not an array or "
                        f"tensor") from e


def _source(source):
    if isinstance(source, (str, os.PathLike)):
        return read_file(source)[0]
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()                    # a torch.nn.Module
    if not isinstance(source, collections.abc.Mapping):
        raise TypeError(f"import_torch: expected a safetensors path, a state dict or a "
                        f"torch.nn.Module, got {type(source).__name__}")
    return {k: _to_numpy(k, v) for k, v in source.items()}


def _mismatch(model, missing, unexpected, keys):
    nn = {k.torch: k.nnlite for k in keys}
    shown = [f"{k!r} (nnlite {nn[k]!r})" for k in missing]
    msg = (f"import_torch: the keys do not match {type(model).__name__}'s PyTorch names: "
           f"missing {', '.join(shown) or 'none'}; unexpected {unexpected or 'none'}")
    params = model.params
    if unexpected and sum(k in params for k in unexpected) > len(unexpected) // 2:
        msg += ("; these are nnlite's own keys (a .nnl or save_weights file): read it with "
                "nl.load_model or model.load_weights")
    elif missing == ["lm_head.bias"] or unexpected and all(
            k.endswith(".attn.bias") for k in unexpected):
        msg += ("; a nanoGPT checkpoint (bias-free lm_head, or causal-mask buffers) loads "
                "with strict=False")
    else:
        msg += "; strict=False loads the keys that match and reports the others"
    return msg


def import_torch(model, source, strict=True):
    """Copy weights with PyTorch's keys and layouts into ``model``, in place.

    Parameters
    ----------
    model : Sequential, GPT or Layer
        Built with the same shapes as the source.
    source : str or os.PathLike, Mapping or torch.nn.Module
        A safetensors file (as :func:`export_torch` or ``safetensors.torch.save_file``
        write), a state dict of torch tensors or numpy arrays, or a module (its
        ``state_dict()``). A ``.pt`` file: ``import_torch(model, torch.load(path,
        weights_only=True))``.
    strict : bool, default True
        False: keys missing from the source keep the model's values and extra keys are
        ignored (both reported in the result), as ``torch.nn.Module.load_state_dict``.

    Returns
    -------
    ImportResult
        ``(missing_keys, unexpected_keys)``, both empty when strict.

    Raises
    ------
    ValueError
        Missing or unexpected keys (when strict), or a shape that differs: the message names
        the key and both shapes. Nothing is written unless every tensor fits.
    CheckpointError
        A malformed file.
    """
    keys = torch_keys(model)
    tensors = {k: v for k, v in _source(source).items()     # BatchNorm's step counter: unused
               if not k.endswith("num_batches_tracked")}
    names = {k.torch for k in keys}
    missing = [k.torch for k in keys if k.torch not in tensors]
    unexpected = [k for k in tensors if k not in names]
    if strict and (missing or unexpected):
        raise ValueError(_mismatch(model, missing, unexpected, keys))
    params, todo = {**model.params, **model.buffers}, []
    for k in keys:
        if k.torch not in tensors:
            continue
        dst, src = params[k.nnlite], tensors[k.torch]
        want = dst.shape[::-1] if k.transpose else dst.shape
        if src.shape != want:
            how = " transposed" if k.transpose else ""
            raise ValueError(f"import_torch: {k.torch!r} has shape {shape_str(src.shape)}, the "
                             f"model needs {shape_str(want)} (nnlite {k.nnlite!r} "
                             f"{shape_str(dst.shape)}{how})")
        if src.dtype.kind not in "fiu":
            raise TypeError(f"import_torch: {k.torch!r} has dtype {src.dtype}, not a number")
        todo.append((dst, src.T if k.transpose else src))
    for dst, src in todo:                   # every shape checked: now write
        if devices.device_of(dst) == "cpu":
            np.copyto(dst, src, casting="unsafe")
        else:                               # a model on a GPU: cast here, copy over
            dst[...] = devices.to_device(np.asarray(src, dtype=dst.dtype), devices.device_of(dst))
    return ImportResult(missing, unexpected)


__all__ = [
    "CheckpointError",
    "ImportResult",
    "TorchKey",
    "export_torch",
    "import_torch",
    "torch_keys",
    "torch_state_dict",
]
