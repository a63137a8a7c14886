"""``model.summary()``: Keras' table of layers, output shapes and parameter counts.

    Model: "sequential"
    _________________________________________________________________
     Layer (type)                 Output Shape              Param #
    =================================================================
     linear (Linear)              (None, 16)                    112
     ----------------------------------------------------------------
     relu (ReLU)                  (None, 16)                      0
     ...
    Total params: 163 (652.00 B)

Works on any model with ``layers``, ``input_shape``, ``params`` and ``num_params()``; the
totals come from ``model.params`` (so a model that names its parameters its own way, like
GPT, counts them once), the rows from each layer.
"""
import re

from ..layers.base import shape_str
from ..layers.flatten import Flatten
from ..layers.normalization import _BatchNorm


def snake_case(obj):
    """``LeakyReLU`` -> ``leaky_relu``, ``MultiHeadAttention`` -> ``multi_head_attention``,
    ``GPT`` -> ``gpt``: the name Keras gives an unnamed layer or model of ``obj``'s class."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type(obj).__name__).lower()


def auto_names(layers):
    """Display names: the layer's own, else snake_case of its class, numbered like Keras."""
    names, counts = [], {}
    for layer in layers:
        if layer.name:
            names.append(layer.name)
            continue
        base = snake_case(layer)
        n = counts.get(base, 0)
        counts[base] = n + 1
        names.append(base if n == 0 else f"{base}_{n}")
    return names


def format_bytes(n):
    """``'652.00 B'``, ``'1.23 MB'``: binary units, as Keras."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024


def print_summary(model, print_fn=print):
    """Print ``model``'s table, one line per ``print_fn`` call.

    Output shapes need the input shape: ``model.input_shape``, else the first layer's
    ``in_features``; a layer whose output shape cannot be known shows ``?`` (and so do the
    layers after it, up to one with ``in_features``). A ``Flatten`` of unknown input shows
    ``(None, in_features)`` of the layer after it: whatever it flattens, that is its output.
    """
    shape = None if model.input_shape is None else (None, *model.input_shape)
    rows = []
    layers = model.layers
    for i, (name, layer) in enumerate(zip(auto_names(layers), layers)):
        after = layers[i + 1] if i + 1 < len(layers) else None
        if shape is None and getattr(layer, "in_features", None):
            shape = (None, layer.in_features)
        if shape is not None:
            try:
                shape = tuple(layer.output_shape(shape))
            except Exception:   # noqa: BLE001  (unknowable here: show '?')
                shape = None
        elif isinstance(layer, Flatten) and getattr(after, "in_features", None):
            shape = (None, after.in_features)
        kind = type(layer).__name__
        if isinstance(layer, _BatchNorm) and layer.activation:   # the fused ReLU: no row of its own
            kind += f"+{layer.activation}"
        rows.append((f"{name} ({kind})",
                     shape_str(shape) if shape is not None else "?",
                     f"{layer.num_params():,}"))
    head = ("Layer (type)", "Output Shape", "Param #")
    w = [max(max(len(r[i]) for r in [head, *rows]) + 3, least)
         for i, least in enumerate((29, 26, 10))]   # Keras' 65 columns, wider if needed
    total = sum(w)
    line = lambda r: f" {r[0]:<{w[0]}}{r[1]:<{w[1]}}{r[2]:>{w[2] - 3}}"
    nbytes = sum(p.nbytes for p in model.params.values())
    count = model.num_params()
    print_fn(f'Model: "{model.name or snake_case(model)}"')
    print_fn("_" * total)
    print_fn(line(head))
    print_fn("=" * total)
    for i, r in enumerate(rows):
        print_fn(line(r))
        if i < len(rows) - 1:
            print_fn(" " + "-" * (total - 1))
    print_fn("=" * total)
    buffers = getattr(model, "buffers", {}).values()       # BatchNorm's running statistics
    fixed, fixed_bytes = sum(b.size for b in buffers), sum(b.nbytes for b in buffers)
    print_fn(f"Total params: {count + fixed:,} ({format_bytes(nbytes + fixed_bytes)})")
    print_fn(f"Trainable params: {count:,} ({format_bytes(nbytes)})")
    print_fn(f"Non-trainable params: {fixed:,} ({format_bytes(fixed_bytes)})")
    print_fn("_" * total)
