"""The style target cache: each style image's statistics at each side, kept across runs, bounded in bytes.

A style's targets (its Gram matrix per style layer, or its mean and second moment per layer for
mean_cov and masks) depend only on the style image, the side it is scaled to and the network, not on
the content: a worker that has seen a painting need not run it through VGG19 again. stylize() asks
``StyleLookup.get`` for one style image at one rung; on a miss it computes them (one forward pass, or
one tiled set of passes) and keeps a host copy, least recently used dropped first once the entries'
bytes exceed ``max_bytes``.

The key is everything the values depend on: the pixels' hash (after colors="histogram" matching:
the image the network sees), the side, what is computed (Gram matrices; Gram sums by tiles of a
budget; moments), the style and network layers, the weights' own hash, precision, Gram dtype,
pooling and XLA. Masks are not in it: a mask weights the output image's positions, never the style
image's statistics, so masked runs share entries with unmasked ones (docs/engine.md).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import keras
import numpy as np
import tensorflow as tf

from spec.errors import OptionsError
from worker.engine.model import FeatureExtractor

_T = TypeVar("_T")
Key = tuple[Any, ...]


class StyleTargetCache:
    """A byte-bounded LRU of style statistics (dicts of arrays, or of tuples of arrays), thread-safe.

    ``hits`` and ``misses`` count lookups since it was made; an entry larger than ``max_bytes`` is
    computed and used but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise OptionsError(f"the style target cache's bound must be 0 or more bytes, not {max_bytes}")
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The bytes its entries hold now (at most ``max_bytes``)."""
        return self._bytes

    def fetch(self, key: Key, compute: Callable[[], _T]) -> tuple[_T, bool]:
        """(the value under ``key``, True) when kept, else (``compute()``, False), kept from then on."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return _as_tensors(found[0]), True
            self.misses += 1
        value = compute()  # outside the lock: a pass takes seconds, other threads' hits need not wait
        host = _to_host(value)
        size = _nbytes(host)
        with self._lock:
            if size <= self.max_bytes and key not in self._entries:
                self._entries[key] = (host, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._bytes -= dropped
        return value, False


@dataclass
class StyleLookup:
    """One run's view of the cache: its style images' hashes, its network's identity, its own counts.

    ``cache`` None: every lookup computes (a run without a cache, as the command line makes).
    """

    cache: StyleTargetCache | None
    extractor: FeatureExtractor
    styles: Sequence[np.ndarray]  # the style images as the run uses them (uint8, before any resizing)
    network: Key = ()  # what the network contributes to a key (made in __post_init__)
    hits: int = 0
    misses: int = 0
    _digests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cache is not None:
            self._digests = [image_digest(style) for style in self.styles]
            self.network = network_identity(self.extractor)

    def get(self, index: int, side: int, what: Key, compute: Callable[[], _T]) -> _T:
        """Style image ``index``'s statistics ``what`` (e.g. ("gram", style layers)) at ``side``."""
        if self.cache is None:
            self.misses += 1
            return compute()
        value, hit = self.cache.fetch((self._digests[index], side, what, self.network), compute)
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        return value


def image_digest(image: np.ndarray) -> str:
    """A hash of an image's pixels, shape and dtype."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(repr((image.shape, str(image.dtype))).encode())
    digest.update(np.ascontiguousarray(image).view(np.uint8).data)
    return digest.hexdigest()


# The weights' hash per extractor, computed once (tens of MB of kernels: about 0.1 s).
_FINGERPRINTS: weakref.WeakKeyDictionary[FeatureExtractor, str] = weakref.WeakKeyDictionary()


def network_identity(extractor: FeatureExtractor) -> Key:
    """What a style's statistics depend on in the network: its weights (their hash, as stored, so
    the precision's rounding too), layers, precision, pooling and XLA. The Gram dtype follows from
    the precision and the loss (objective.moment_dtype) but is named by the caller's ``what``."""
    fingerprint = _FINGERPRINTS.get(extractor)
    if fingerprint is None:
        digest = hashlib.blake2b(digest_size=20)
        for layer in extractor.model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                digest.update(layer.name.encode())
                for value in layer.get_weights():
                    digest.update(np.ascontiguousarray(value).view(np.uint8).data)  # bfloat16 too
        fingerprint = _FINGERPRINTS.setdefault(extractor, digest.hexdigest())
    return (fingerprint, extractor.layers, extractor.precision, extractor.pooling, extractor.jit_compile)


def _to_host(value: Any) -> Any:
    """``value`` (a dict of tensors, or of tuples of them, some None) as NumPy arrays: kept off a
    GPU's memory."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {name: _to_host(item) for name, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_host(item) for item in value)
    return np.array(value)


def _as_tensors(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {name: _as_tensors(item) for name, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_as_tensors(item) for item in value)
    return tf.constant(value)


def _nbytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, dict):
        return sum(_nbytes(item) for item in value.values())
    if isinstance(value, tuple):
        return sum(_nbytes(item) for item in value)
    return int(value.nbytes)
