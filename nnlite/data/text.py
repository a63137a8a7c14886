"""Character-level text: a tokenizer, a train/validation split and a random-window sampler.

>>> text = nnlite.datasets.load_tiny_shakespeare()
>>> tok = CharTokenizer.from_text(text)               # 65 characters
>>> train, val = train_val_split(tok.encode(text))    # first 90 % / last 10 %
>>> sampler = RandomWindowSampler(train, block_size=64, batch_size=32, seed=0)
>>> x, y = sampler.get_batch()                        # int64 (32, 64); y is x shifted by one
"""
import numpy as np

from .. import random as _random
from .._args import check_fraction, check_int, check_seed

# Code points via UTF-32: one uint32 per character, no Python loop over the text.
# "surrogatepass" lets lone surrogates (which Python strings may hold) through unchanged.
_UTF32 = "utf-32-le"


def _code_points(text):
    return np.frombuffer(text.encode(_UTF32, "surrogatepass"), dtype=np.uint32)


class CharTokenizer:
    """Maps each character of a fixed vocabulary to an id (its index in ``chars``).

    ``CharTokenizer.from_text(text)`` uses the sorted distinct characters of ``text``;
    ``CharTokenizer(chars)`` takes them as given (a string of distinct characters). ``encode``
    and ``decode`` work on whole strings / id arrays with numpy lookups (fast on megabytes of
    text). ``get_config()`` is ``{"chars": ...}``, JSON-able, to be saved with a model and
    given back to ``from_config``.
    """

    def __init__(self, chars):
        if not isinstance(chars, str):
            if isinstance(chars, (bytes, bytearray)):
                raise TypeError("CharTokenizer: chars must be a str (or a sequence of "
                                f"characters), got {type(chars).__name__}")
            chars = list(chars)
            for c in chars:
                if not isinstance(c, str) or len(c) != 1:
                    raise TypeError(f"CharTokenizer: chars must be single characters, got {c!r}")
            chars = "".join(chars)
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty")
        if len(set(chars)) != len(chars):
            seen, dups = set(), []
            for c in chars:
                if c in seen and c not in dups:
                    dups.append(c)
                seen.add(c)
            raise ValueError(f"CharTokenizer: duplicate characters in the vocabulary: "
                             f"{''.join(dups)!r}")
        self.chars = chars
        self._points = _code_points(chars)                   # id -> code point
        # code point -> id, -1 for characters not in the vocabulary
        self._table = np.full(int(self._points.max()) + 1, -1, dtype=np.int64)
        self._table[self._points] = np.arange(len(chars), dtype=np.int64)

    @classmethod
    def from_text(cls, text):
        """A tokenizer whose vocabulary is the sorted distinct characters of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.from_text: text must be a str, got "
                            f"{type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer.from_text: the text is empty, no vocabulary")
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self):
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """The ids of the characters of ``text``: an int64 array of shape (len(text),).
        A character outside the vocabulary raises ``ValueError`` naming it and its position."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: expected a str, got {type(text).__name__}")
        points = _code_points(text)
        ids = np.full(points.shape, -1, dtype=np.int64)
        inside = points < len(self._table)
        ids[inside] = self._table[points[inside]]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            pos = int(bad[0])
            raise ValueError(f"CharTokenizer: character {text[pos]!r} at position {pos} is not in "
                             f"the vocabulary ({self.vocab_size} characters)")
        return ids

    def decode(self, ids):
        """The string of the ids ``ids`` (an int or a 1-D sequence/array of ints)."""
        arr = np.asarray(ids)
        if arr.ndim > 1:
            raise ValueError(f"CharTokenizer.decode: expected a 1-D sequence of ids, got shape "
                             f"{arr.shape}")
        arr = arr.reshape(-1)
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"CharTokenizer.decode: ids must be integers, got dtype {arr.dtype}")
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            pos = int(bad[0])
            raise ValueError(f"CharTokenizer: id {int(arr[pos])} at position {pos} is out of "
                             f"range for a vocabulary of {self.vocab_size} characters (valid ids "
                             f"0..{self.vocab_size - 1})")
        return self._points[arr].tobytes().decode(_UTF32, "surrogatepass")

    def get_config(self):
        return {"chars": self.chars}

    @classmethod
    def from_config(cls, config):
        return cls(config["chars"])

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __hash__(self):
        return hash(self.chars)

    def __repr__(self):
        shown = self.chars if len(self.chars) <= 40 else self.chars[:37] + "..."
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={shown!r})"


def train_val_split(ids, train_fraction=0.9):
    """``(train, val)``: the first ``int(train_fraction * len(ids))`` items and the rest (no
    shuffling: the validation text is a contiguous tail, as in nanoGPT). Arrays are split
    into views; a str gives two strs."""
    train_fraction = check_fraction("train_val_split", "train_fraction", train_fraction)
    if not isinstance(ids, str):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"train_val_split: expected a 1-D sequence, got shape {ids.shape}")
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


class RandomWindowSampler:
    """Random training windows from one long token sequence (a language-model batch source).

    ``get_batch()`` returns ``(x, y)``, int64 arrays of shape ``(batch_size, block_size)``:
    each row of ``x`` is ``ids[i : i + block_size]`` for an offset ``i`` drawn uniformly from
    ``0 .. len(ids) - block_size - 1``, and ``y`` is the same window shifted by one
    (``ids[i + 1 : i + block_size + 1]``, the next-token targets). The windows are gathered
    with one fancy index. The sampler is an infinite iterator of such batches
    (``for x, y in sampler: ...``), so bound the loop yourself (``itertools.islice``).

    ``seed``: an int (the same seed gives the same batches) or None (seeded from
    ``nnlite.random``, so ``nnlite.random.seed`` makes it repeatable). ``state_dict()`` is the
    generator's state (JSON-able); ``load_state_dict`` restores it, so a resumed run draws
    exactly the batches the interrupted one would have.
    """

    def __init__(self, ids, block_size, batch_size, seed=None):
        self.block_size = check_int("RandomWindowSampler", "block_size", block_size, low=1)
        self.batch_size = check_int("RandomWindowSampler", "batch_size", batch_size, low=1)
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"RandomWindowSampler: ids must be 1-D, got shape {arr.shape}")
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"RandomWindowSampler: ids must be integers, got dtype {arr.dtype}")
        if len(arr) < self.block_size + 1:
            raise ValueError(f"RandomWindowSampler: the sequence has {len(arr)} tokens, too short "
                             f"for block_size={self.block_size} (needs at least block_size + 1 "
                             f"= {self.block_size + 1})")
        self.ids = arr.astype(np.int64, copy=False)
        if check_seed("RandomWindowSampler", seed) is None:
            seed = int(_random.get_rng().integers(2**63))
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._offsets = np.arange(self.block_size + 1)
        self.batches_drawn = 0

    def get_batch(self):
        """One batch ``(x, y)`` of int64 arrays, shape ``(batch_size, block_size)``."""
        starts = self._rng.integers(0, len(self.ids) - self.block_size, size=self.batch_size)
        windows = self.ids[starts[:, None] + self._offsets]  # (batch, block + 1)
        self.batches_drawn += 1
        return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])

    def __iter__(self):
        return self

    def __next__(self):
        return self.get_batch()

    def state_dict(self):
        """The sampler's position: ``{"bit_generator": <numpy bit-generator state>,
        "batches_drawn": n}`` (plain dicts, ints and strs: JSON-able)."""
        return {"bit_generator": _plain(self._rng.bit_generator.state),
                "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state):
        """Restore a ``state_dict()``: the next batches are those the saved sampler would draw."""
        try:
            bg = state["bit_generator"]
            name = bg["bit_generator"]
        except (KeyError, TypeError):
            raise ValueError("RandomWindowSampler.load_state_dict: expected a dict from "
                             "state_dict() with a 'bit_generator' entry") from None
        want = type(self._rng.bit_generator).__name__
        if name != want:
            raise ValueError(f"RandomWindowSampler.load_state_dict: state is for bit generator "
                             f"{name!r}, this sampler uses {want!r}")
        try:        # numbers out of range (an OverflowError from int() or numpy) included
            batches = int(state.get("batches_drawn", 0))
            self._rng.bit_generator.state = _plain(bg)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"RandomWindowSampler.load_state_dict: invalid state "
                             f"({type(e).__name__}: {e})") from None
        self.batches_drawn = batches

    def __repr__(self):
        return (f"RandomWindowSampler({len(self.ids)} tokens, block_size={self.block_size}, "
                f"batch_size={self.batch_size}, seed={self.seed!r})")


def _plain(obj):
    """A deep copy with numpy scalars turned into Python ints (JSON-able)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
