"""Whole-model files (``.nnl``): architecture + weights (+ optimizer state) in one safetensors file.

* tensors: the weights, keyed as ``model.params`` (a Sequential ``"<layer index>.<param
  name>"``, a GPT by module path, ``"h.0.attn.qkv.W"``), and the optimizer state under
  ``"optimizer.<...>"``;
* ``__metadata__`` (str -> str): ``format``/``format_version``, ``nnlite_version``,
  ``architecture`` (JSON: layer class names and configs), ``compile`` (JSON: loss, optimizer,
  metrics), ``optimizer_state`` (JSON skeleton of ``optimizer.state_dict()`` whose arrays point
  at tensors), ``training`` (JSON ``{"epoch": epochs done, "seed": the run's seed}`` once the
  model was fit: what ``fit(initial_epoch=model.epoch)`` needs to continue the run), and
  ``sha256``: a digest of every tensor (name, dtype, shape, bytes) and of the other metadata,
  checked on load so a tampered or damaged file is refused.

Nothing is unpickled or executed: layers are rebuilt from ``Layer.registry`` by class name,
inside :func:`nnlite.init.skip_init` (no weights drawn: the file sets every one), and filled
with ``model.load_state_dict``, where a model class can accept older keys
(``GPT.upgrade_keys``).

Loading trusts nothing in the file: every malformed part raises :class:`CheckpointError` (a
``ValueError``) naming the file and the part, and the parameter shapes the architecture asks
for are worked out from its config (:func:`param_shapes`, no arrays) and compared with the
tensors in the file *before* anything is allocated, so a 1 kB file cannot ask for 60 GiB.
A loss, optimizer, schedule or metric that cannot be rebuilt as saved is an error too (never
a silent default): ``custom_objects={"WarmConst": WarmConst}`` supplies user classes and
functions by name, ``compile=False`` loads the weights alone.
"""
import collections
import hashlib
import json
import os
import warnings

import numpy as np

from .. import devices
from .. import init as _init
from .._args import is_int
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
    if devices.device_of(obj) != "cpu":         # state on a GPU: a file holds host arrays
        obj = devices.to_host(obj)
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


def _describe(obj, given, kind):
    """{'class_name', 'config', 'name'} for a loss/optimizer; config None (with a warning: the
    file will not rebuild it) if ``get_config()`` fails or is not JSON-able."""
    cfg = None
    if hasattr(obj, "get_config"):
        try:
            cfg = obj.get_config()
            json.dumps(cfg)
        except Exception as e:          # noqa: BLE001  (any user get_config may fail)
            warnings.warn(f"save_model: the {kind} {type(obj).__name__}'s settings cannot be saved "
                          f"({type(e).__name__}: {e}); load_model will not recompile it "
                          f"(load with compile=False and compile yourself)", stacklevel=3)
            cfg = None
    return {"class_name": type(obj).__name__, "config": cfg,
            "name": given if isinstance(given, str) else None}


# -- save ------------------------------------------------------------------------------------
def _unbuilt(layer):
    """The first layer under ``layer`` (itself included) still waiting for its input size."""
    subs = getattr(layer, "sublayers", list)()
    if not subs:
        return None if getattr(layer, "built", True) else layer
    return next((u for u in map(_unbuilt, subs) if u is not None), None)


def check_built(model, what):
    """A ValueError naming the layer if ``model`` has one that is not built yet: its
    parameters do not exist, there is nothing to save."""
    layer = _unbuilt(model)
    if layer is not None:
        from ..layers._checks import describe
        raise ValueError(f"{what}: {describe(layer)} is not built yet (its input size is "
                         f"inferred at the first call), so it has no weights to save; call "
                         f"model.build(input_shape), e.g. model.build((784,)), or fit/predict "
                         f"once first")


def save_model(model, path, include_optimizer=True):
    """Save a :class:`~nnlite.Sequential` (architecture, weights, compile settings and, when
    ``include_optimizer``, the optimizer state) to one ``.nnl`` file, atomically. A model on
    a GPU writes host copies: the file is the same wherever the model runs.

    Raises ``ValueError`` for a model not built yet (a ``Dense(units)`` before its first
    call)."""
    from .. import __version__
    check_built(model, "save")
    # buffers: BatchNorm's running statistics; host copies of a model's arrays on a GPU
    tensors = {k: devices.to_host(v) for k, v in {**model.params, **model.buffers}.items()}
    meta = {
        "format": FORMAT, "format_version": str(FORMAT_VERSION), "nnlite_version": __version__,
        "architecture": json.dumps({"class_name": type(model).__name__,
                                    "config": model.get_config()}),
    }
    if getattr(model, "loss", None) is not None:
        comp = {"loss": _describe(model.loss, model._compile_args.get("loss"), "loss"),
                "optimizer": _describe(model.optimizer, model._compile_args.get("optimizer"),
                                       "optimizer"),
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
    if getattr(model, "fit_seed", None) is not None:
        meta["training"] = json.dumps({"epoch": int(model.epoch), "seed": int(model.fit_seed)})
    meta["sha256"] = checksum(tensors, meta)
    save_file(tensors, path, metadata=meta)


# -- reading the file's parts: each malformed one is a _Bad, which load_model names --------
class _Bad(Exception):
    """A malformed or unusable part of the file; ``load_model`` adds the path."""


MAX_DEPTH = 64          # nesting of layers in an architecture (a real one: a handful)


def _short(obj, n=80):
    r = repr(obj)
    return r if len(r) <= n else r[:n] + "..."


def _json(meta, key):
    if key not in meta:
        raise _Bad(f"no {key!r} metadata (not a complete nnlite model file)")
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as e:
        raise _Bad(f"{key!r} metadata is not valid JSON ({type(e).__name__}: "
                   f"{_short(str(e), 200)})") from None


def _spec(spec, where):
    """``(class_name, config)`` of a ``{"class_name": ..., "config": {...}}`` entry."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or \
            not isinstance(spec.get("config", {}), dict):
        raise _Bad(f"{where} must be {{'class_name': str, 'config': {{...}}}}, got "
                   f"{_short(spec)}")
    return spec["class_name"], spec.get("config", {})


def _dim(cfg, key, where):
    v = cfg.get(key)
    if not is_int(v) or v < 1:
        raise _Bad(f"{where}: {key} must be a positive int, got {_short(v)}")
    return int(v)


def _layer_norm(C):
    return [(C,), (C,)]


def _attention(C):
    return [(C, 3 * C), (3 * C,), (C, C), (C,)]


def _mlp(C):
    return [(C, 4 * C), (4 * C,), (4 * C, C), (C,)]


def _block(C):
    return _layer_norm(C) + _attention(C) + _layer_norm(C) + _mlp(C)


def _gpt(c, w):
    V, T, L, C = (_dim(c, k, w) for k in ("vocab_size", "block_size", "n_layer", "n_embd"))
    blocks = collections.Counter({s: k * L for s, k in collections.Counter(_block(C)).items()})
    return blocks + collections.Counter([(V, C), (T, C), *_layer_norm(C), (C, V), (V,)])


def _conv(c, w, rows_key, cols_key):
    """Conv2D's (O, C/G, KH, KW) weight, ConvTranspose2D's (C, O/G, KH, KW), and the bias."""
    groups = _dim(c, "groups", w) if "groups" in c else 1
    k = c.get("kernel_size")
    if not (isinstance(k, list) and len(k) == 2 and all(is_int(v) and v >= 1 for v in k)):
        raise _Bad(f"{w}: kernel_size must be a pair of positive ints, got {_short(k)}")
    first, second = _dim(c, rows_key, w), _dim(c, cols_key, w)
    if first % groups or second % groups:
        raise _Bad(f"{w}: channels {first} and {second} are not multiples of groups {groups}")
    shapes = [(first, second // groups, *map(int, k))]
    if c.get("bias", True):
        shapes.append((_dim(c, "out_channels", w),))
    return shapes


# the built-in layers with parameters (and buffers): their shapes from their config, no
# arrays made
SHAPE_RULES = {
    "Linear": lambda c, w: [(_dim(c, "in_features", w), _dim(c, "out_features", w))]
    + ([(_dim(c, "out_features", w),)] if c.get("bias", True) else []),
    "Dense": lambda c, w: [(_dim(c, "input_dim", w), _dim(c, "units", w))]
    + ([(_dim(c, "units", w),)] if c.get("use_bias", True) else []),
    "Embedding": lambda c, w: [(_dim(c, "num_embeddings", w), _dim(c, "embedding_dim", w))],
    "PositionalEmbedding": lambda c, w: [(_dim(c, "block_size", w), _dim(c, "dim", w))],
    "LayerNorm": lambda c, w: _layer_norm(_dim(c, "dim", w)),
    "MultiHeadAttention": lambda c, w: _attention(_dim(c, "dim", w)),
    "MLP": lambda c, w: _mlp(_dim(c, "n_embd", w)),
    "Block": lambda c, w: _block(_dim(c, "n_embd", w)),
    "GPT": _gpt,
    "Conv2D": lambda c, w: _conv(c, w, "out_channels", "in_channels"),
    "ConvTranspose2D": lambda c, w: _conv(c, w, "in_channels", "out_channels"),
    "BatchNorm1d": lambda c, w: [(_dim(c, "num_features", w),)] * 4,   # γ, β + 2 buffers
    "BatchNorm2d": lambda c, w: [(_dim(c, "num_features", w),)] * 4,
}


def param_shapes(spec, where="architecture", depth=0):
    """The shapes of the parameters ``{"class_name": ..., "config": ...}`` would make (a
    ``Counter`` shape -> how many), without making them: :data:`SHAPE_RULES` for the built-in
    layers, recursion into ``Sequential`` and ``Residual``; any other layer class (a user's)
    is built alone inside :func:`nnlite.init.skip_init` and asked.

    Raises ``_Bad`` (``load_model`` turns it into :class:`CheckpointError`) naming the entry.
    """
    from ..layers.base import Layer, known_layers
    name, cfg = _spec(spec, where)
    if depth > MAX_DEPTH:
        raise _Bad(f"{where}: layers nested more than {MAX_DEPTH} deep")
    cls = Layer.registry.get(name)
    if cls is None:
        raise _Bad(f"{where}: unknown layer class {name!r}; known layers: "
                   f"{known_layers()}. A custom layer must be defined (its module imported) "
                   f"before loading")
    rule = SHAPE_RULES.get(name)
    if rule is not None and cls.__module__.startswith("nnlite."):
        return collections.Counter(rule(cfg, f"{where} ({name})"))
    if cls.__module__.startswith("nnlite.") and name == "Sequential":
        layers = cfg.get("layers", [])
        if not isinstance(layers, list):
            raise _Bad(f"{where} (Sequential): layers must be a list, got {_short(layers)}")
        return sum((param_shapes(sub, f"{where}.layers[{i}]", depth + 1)
                    for i, sub in enumerate(layers)), collections.Counter())
    if cls.__module__.startswith("nnlite.") and name == "Residual":
        return param_shapes(cfg.get("inner"), f"{where}.inner", depth + 1)
    with _init.skip_init():                 # a user's layer: build it alone and ask
        layer = cls.from_config(cfg)
    return collections.Counter(tuple(p.shape) for p in {**layer.params, **layer.buffers}.values())


def _fmt_shapes(counter, n=4):
    items = sorted(counter.items(), key=lambda kv: -int(np.prod(kv[0], dtype=object)))
    out = [f"{'x'.join(map(str, s)) or 'scalar'}" + (f" ({k}x)" if k > 1 else "")
           for s, k in items[:n]]
    return ", ".join(out) + (f", ... {len(items) - n} more" if len(items) > n else "")


def _check_shapes(spec, weights):
    """The architecture's parameter shapes must be exactly the file's weight tensors' (as a
    multiset: names may be old ones, see ``GPT.upgrade_keys``), so building it allocates no
    more than the file holds."""
    want = param_shapes(spec)
    have = collections.Counter(tuple(a.shape) for a in weights.values())
    if want == have:
        return
    def size(c):
        return sum(int(np.prod(s, dtype=object)) * k for s, k in c.items())
    msg = (f"the architecture does not match the tensors: it needs {size(want):,} parameters "
           f"in {sum(want.values())} tensors, the file holds {size(have):,} in "
           f"{sum(have.values())}")
    if want - have:
        msg += f"; shapes the file lacks: {_fmt_shapes(want - have)}"
    if have - want:
        msg += f"; tensors the architecture has no place for: {_fmt_shapes(have - want)}"
    raise _Bad(msg)


def _need(d, key, where):
    if not isinstance(d, dict) or key not in d:
        raise _Bad(f"{where} has no {key!r}: got {_short(d)}")
    return d[key]


def _lookup(name, registry, custom):
    obj = custom.get(name)
    return obj if obj is not None else registry.get(name)


def _hint(name):
    return (f"pass what the file names: nl.load_model(path, custom_objects={{{name!r}: "
            f"{name}}}), or nl.load_model(path, compile=False) for the weights alone, then "
            f"compile yourself")


def _rebuild(kind, registry, desc, custom):
    """The loss or optimizer ``desc`` (from :func:`_describe`) describes, exactly as saved;
    ``_Bad`` saying what could not be rebuilt and how to supply it otherwise."""
    from ..optim import schedules
    name = _need(desc, "class_name", f"compile {kind}")
    if not isinstance(name, str):
        raise _Bad(f"compile {kind}: class_name must be a str, got {_short(name)}")
    cfg = desc.get("config")
    cls = _lookup(name, registry, custom)
    if not isinstance(cls, type):
        raise _Bad(f"cannot rebuild the {kind}: unknown class {name!r}; {_hint(name)}")
    if cfg is None:
        raise _Bad(f"cannot rebuild the {kind} {name}: its settings were not saved (its "
                   f"get_config() was not JSON-able); load with compile=False and compile "
                   f"yourself")
    if not isinstance(cfg, dict):
        raise _Bad(f"compile {kind} {name}: config must be a dict, got {_short(cfg)}")
    cfg = dict(cfg)
    lr = cfg.get("lr")
    if kind == "optimizer" and isinstance(lr, dict):    # a schedule: rebuilt here, by name
        s_name = _need(lr, "class_name", f"optimizer {name}'s lr")
        s_cls = _lookup(s_name, schedules.Schedule.registry, custom) \
            if isinstance(s_name, str) else None
        if not isinstance(s_cls, type):
            raise _Bad(f"cannot rebuild the optimizer {name}: unknown learning-rate schedule "
                       f"{_short(s_name)}; {_hint(str(s_name))}")
        s_cfg = lr.get("config", {})
        try:
            cfg["lr"] = s_cls.from_config(s_cfg) if hasattr(s_cls, "from_config") \
                else s_cls(**s_cfg)
        except Exception as e:          # noqa: BLE001
            raise _Bad(f"cannot rebuild the optimizer {name}'s schedule {s_name} from its "
                       f"saved settings {_short(s_cfg, 200)}: {type(e).__name__}: {e}") from None
    try:
        return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)
    except Exception as e:              # noqa: BLE001  (a user class may raise anything)
        raise _Bad(f"cannot rebuild the {kind} {name} from its saved settings "
                   f"{_short(desc.get('config'), 200)}: {type(e).__name__}: {e}") from None


def _rebuild_metrics(names, loss, custom):
    """``[(name, fn), ...]`` for the saved metric names: built-in names, else functions from
    ``custom_objects``."""
    from ..training import metrics as _metrics
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _Bad(f"compile metrics must be a list of names, got {_short(names)}")
    out = []
    for n in names:
        fn = custom.get(n)
        if fn is None:
            try:
                fn = _metrics.get(n, loss)[1]
            except ValueError:
                raise _Bad(f"cannot rebuild the metric {n!r}: not a built-in metric (a "
                           f"function); {_hint(n)}") from None
        elif not callable(fn):
            raise _Bad(f"custom_objects[{n!r}] must be a function f(y_pred, y_true), got "
                       f"{_short(fn)}")
        out.append((n, fn))
    return out


def _decode(obj, tensors, depth=0):
    if depth > MAX_DEPTH:
        raise _Bad(f"optimizer_state nested more than {MAX_DEPTH} deep")
    if isinstance(obj, list):
        return [_decode(v, tensors, depth + 1) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if not isinstance(key, str) or not key.startswith("optimizer") or key not in tensors:
                raise _Bad(f"optimizer_state names a tensor {_short(key)} the file does not hold")
            return tensors[key]
        if "__items__" in obj:
            items = obj["__items__"]
            if not isinstance(items, list) or not all(
                    isinstance(kv, list) and len(kv) == 2 for kv in items):
                raise _Bad(f"optimizer_state: __items__ must be [key, value] pairs, got "
                           f"{_short(items)}")
            return {k if not isinstance(k, (list, dict)) else str(k): _decode(v, tensors,
                                                                              depth + 1)
                    for k, v in items}
        d = obj.get("__dict__")
        if not isinstance(d, dict):
            raise _Bad(f"optimizer_state: unexpected entry {_short(obj)}")
        return {k: _decode(v, tensors, depth + 1) for k, v in d.items()}
    return obj


# -- load ------------------------------------------------------------------------------------
def load_model(path, compile=True, custom_objects=None):
    """Rebuild a model saved by :func:`save_model`: architecture, weights and, with
    ``compile``, the loss, optimizer (with its schedule and state) and metrics, exactly as
    saved; ``model.epoch`` and ``model.fit_seed`` say where its training run stood, so
    ``model.fit(..., initial_epoch=model.epoch)`` continues it as if never interrupted.

    Parameters
    ----------
    path : str or os.PathLike
    compile : bool, default True
        False loads the architecture and weights alone (``model.loss`` is None).
    custom_objects : dict, optional
        Classes and functions the file names that nnlite does not know, by the name they were
        saved under: a ``Schedule``, ``Loss`` or ``Optimizer`` subclass, a metric function
        (``{"WarmConst": WarmConst, "my_metric": my_metric}``), as Keras'. Layer classes
        register themselves when defined: import their module first.

    Raises
    ------
    CheckpointError
        (a ``ValueError``) naming the file and what is wrong: not a regular file (a FIFO,
        directory or device is refused rather than waited on), not an nnlite model, truncated,
        a failed checksum, malformed metadata, an architecture whose parameter shapes differ
        from the file's tensors (checked before anything is allocated), or, with
        ``compile``, a loss, optimizer, schedule or metric that cannot be rebuilt as saved.
    """
    from ..layers.base import Layer
    path = os.fspath(path)
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"load_model: custom_objects must be a dict name -> class or "
                        f"function, got {type(custom_objects).__name__}")
    custom = dict(custom_objects or {})
    tensors, meta = read_file(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nnlite model file (no '{FORMAT}' metadata); "
                              f"nl.io.load_file reads its raw tensors")
    version = meta.get("format_version", "0")
    if not version.isdigit():
        raise CheckpointError(f"{path}: format_version {_short(version)} is not a number")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by nnlite {meta.get('nnlite_version')} in "
                              f"format version {version}; this nnlite reads up "
                              f"to {FORMAT_VERSION}: upgrade nnlite")
    want, got = meta.get("sha256"), checksum(tensors, meta)
    if want is None:
        raise CheckpointError(f"model file {path} has no checksum (no 'sha256' metadata): "
                              f"not written by nnlite's save_model, or its metadata was "
                              f"rewritten; nl.io.load_file reads its raw tensors")
    if want != got:
        raise CheckpointError(f"model file {path} is corrupt: checksum mismatch "
                              f"(stored {want}, computed {got})")
    try:
        model = _build(meta, tensors, Layer)
        if "training" in meta:
            model.epoch, model.fit_seed = _training(meta)
        if compile and "compile" in meta:
            _compile(model, meta, tensors, custom)
    except _Bad as e:
        raise CheckpointError(f"{path}: {e}") from None
    return model


def _build(meta, tensors, Layer):
    arch = _json(meta, "architecture")
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer")}
    name, config = _spec(arch, "architecture")
    try:
        _check_shapes(arch, weights)        # before any array is made
        with _init.skip_init():             # zeros, nothing drawn: load_state_dict fills them
            model = Layer.registry[name].from_config(config)
        model.load_state_dict(weights)
    except _Bad:
        raise
    except TypeError as e:                  # an argument this nnlite's layers do not take
        raise _Bad(f"cannot rebuild the model: {type(e).__name__}: {e}; {_versions(meta)}") \
            from e
    except Exception as e:                  # say which file; keep the words
        raise _Bad(f"cannot rebuild the model: {type(e).__name__}: {e}") from e
    return model


def _versions(meta):
    """Which nnlite wrote the file and which reads it, and what that suggests."""
    from .. import __version__
    wrote = meta.get("nnlite_version", "an unknown version")
    if wrote == __version__:
        return (f"the file was written by this nnlite version ({wrote}): its architecture was "
                f"edited, or a custom layer's constructor changed since")
    return (f"the file was written by nnlite {wrote}, this is nnlite {__version__}: load it "
            f"with nnlite {wrote}, or upgrade nnlite")


def _training(meta):
    """``(epoch, seed)`` from the ``training`` metadata: two ints >= 0."""
    t = _json(meta, "training")
    if not isinstance(t, dict) or set(t) != {"epoch", "seed"}:
        raise _Bad(f"'training' metadata must be {{'epoch': int, 'seed': int}}, got {_short(t)}")
    for k in ("epoch", "seed"):
        if not is_int(t[k]) or t[k] < 0:
            raise _Bad(f"'training' metadata: {k} must be an int >= 0, got {_short(t[k])}")
    return int(t["epoch"]), int(t["seed"])


def _compile(model, meta, tensors, custom):
    from .. import losses, optim
    comp = _json(meta, "compile")
    loss = _rebuild("loss", losses.Loss.registry, _need(comp, "loss", "compile"), custom)
    opt = _rebuild("optimizer", optim.Optimizer.registry, _need(comp, "optimizer", "compile"),
                   custom)
    metrics = _rebuild_metrics(_need(comp, "metrics", "compile") or [], loss, custom)
    try:
        model.compile(optimizer=opt, loss=loss, metrics=[fn for _, fn in metrics] or None)
    except Exception as e:                  # noqa: BLE001
        raise _Bad(f"cannot compile the model as saved: {type(e).__name__}: {e}") from None
    model._metrics = [(n, fn) for (n, _), (_, fn) in zip(metrics, model._metrics)]
    model.metrics_names = [n for n, _ in metrics]       # the saved names, as in the logs
    if "optimizer_state" in meta and hasattr(opt, "load_state_dict"):
        state = _decode(_json(meta, "optimizer_state"), tensors)
        try:
            opt.load_state_dict(state)
        except Exception as e:              # noqa: BLE001
            raise _Bad(f"optimizer_state does not fit the {type(opt).__name__} "
                       f"({type(e).__name__}: {e}); nl.load_model(path, compile=False) loads "
                       f"the weights alone") from None
        _check_state(opt, list(model.params.values()))


def _check_state(opt, params):
    """The restored per-parameter state must match the parameters (the next step would fail
    otherwise, far from the file)."""
    state = getattr(opt, "state", None)
    if getattr(opt, "iterations", 0) < 0:
        raise _Bad(f"optimizer_state: iterations {opt.iterations} < 0")
    if not isinstance(state, list) or not state:
        return
    if len(state) != len(params):
        raise _Bad(f"optimizer_state holds state for {len(state)} parameters, the model has "
                   f"{len(params)}")
    for i, (st, p) in enumerate(zip(state, params)):
        for k, a in st.items():
            if np.shape(a) != p.shape:
                raise _Bad(f"optimizer_state: parameter {i}'s {k!r} has shape "
                           f"{np.shape(a)}, the parameter {p.shape}")
