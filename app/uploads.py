"""Checking uploaded images. The decoding and hardening itself (Pillow only, bounded in bytes and pixels,
re-encoded as a metadata-free RGB PNG) is spec/decode.py's, shared with the style library
(core/library.py); this module adds what only the web needs: DecodeSlots lets a process run only so
many decodes, of so many estimated bytes, at once (ATELIER_MAX_CONCURRENT_DECODES,
ATELIER_DECODE_MEMORY_MB; docs/reliability.md has the figures), and masks.

No TensorFlow here: the web process does this before anything is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import weakref
from collections import deque
from collections.abc import AsyncIterator

from PIL import Image

# The web's modules and tests import these from here, as before they moved to spec/decode.py.
from spec.decode import (
    ACCEPTED_IMAGES,
    ACCEPTED_MEDIA_TYPES,
    ACCEPTED_NAMES,
    ALLOWED_FORMATS,
    CleanImage,
    ImageHeader,
    ImageSource,
    UploadRejected,
    clean_image,
    decode_bytes,
    fitted_size,
    inspect_image,
    stored_longest_side,
)

__all__ = [
    "ACCEPTED_IMAGES",
    "ACCEPTED_MEDIA_TYPES",
    "ACCEPTED_NAMES",
    "ALLOWED_FORMATS",
    "CleanImage",
    "DecodeSlots",
    "DecodersBusy",
    "ImageHeader",
    "ImageSource",
    "UploadRejected",
    "clean_image",
    "decode_bytes",
    "decode_slots",
    "file_too_large",
    "fitted_size",
    "inspect_image",
    "is_black",
    "megabytes",
    "stored_longest_side",
    "to_mask",
]


class DecodersBusy(Exception):
    """No decode slot became free within ATELIER_DECODE_WAIT_SECONDS."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no decode slot free after {waited:g} s")
        self.waited = waited


class DecodeSlots:
    """At most `slots` decodes at once, of at most `budget` estimated bytes together (an image
    estimated above the budget runs alone); the others wait in arrival order, up to a time limit.

        async with slots.held(decode_bytes(header, longest), timeout=20):
            clean = await run_in_threadpool(clean_image, ...)

    One instance per process; its waiting state is per event loop (tests run several loops).
    """

    def __init__(self, slots: int, budget: int) -> None:
        self.slots = slots
        self.budget = budget
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SlotState] = (
            weakref.WeakKeyDictionary()
        )

    def _state(self) -> _SlotState:
        loop = asyncio.get_running_loop()
        if loop not in self._states:
            self._states[loop] = _SlotState()
        return self._states[loop]

    @contextlib.asynccontextmanager
    async def held(self, cost: int, timeout: float) -> AsyncIterator[None]:
        """Hold a slot for a decode of cost bytes; raises DecodersBusy after timeout seconds."""
        state = self._state()
        cost = min(cost, self.budget)
        if not state.waiting and self._fits(state, cost):
            state.take(cost)
        else:
            granted = asyncio.get_running_loop().create_future()
            entry = (cost, granted)
            state.waiting.append(entry)
            try:
                await asyncio.wait_for(asyncio.shield(granted), timeout)
            except BaseException as error:
                if granted.done() and not granted.cancelled():
                    self._release(state, cost)  # granted just as the wait ended: give it back
                else:
                    granted.cancel()
                    state.waiting.remove(entry)
                    self._grant(state)  # the next in line may fit now
                if isinstance(error, TimeoutError):
                    raise DecodersBusy(timeout) from None
                raise
        try:
            yield
        finally:
            self._release(state, cost)

    def _fits(self, state: _SlotState, cost: int) -> bool:
        return state.running == 0 or (state.running < self.slots and state.used + cost <= self.budget)

    def _release(self, state: _SlotState, cost: int) -> None:
        state.running -= 1
        state.used -= cost
        self._grant(state)

    def _grant(self, state: _SlotState) -> None:
        while state.waiting and self._fits(state, state.waiting[0][0]):
            cost, granted = state.waiting.popleft()
            state.take(cost)
            granted.set_result(None)

    def in_use(self) -> tuple[int, int]:
        """(decodes running, their estimated bytes) in the current event loop."""
        state = self._state()
        return state.running, state.used


class _SlotState:
    def __init__(self) -> None:
        self.running = 0
        self.used = 0
        self.waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def take(self, cost: int) -> None:
        self.running += 1
        self.used += cost


@functools.lru_cache
def decode_slots(slots: int, budget_mb: int) -> DecodeSlots:
    """The process's DecodeSlots for these settings (ATELIER_MAX_CONCURRENT_DECODES, ..._MEMORY_MB)."""
    return DecodeSlots(slots, budget_mb * 1024 * 1024)


def to_mask(image: CleanImage, width: int, height: int) -> CleanImage:
    """An accepted upload as a style mask: greyscale PNG of ``width`` x ``height`` (resized with
    bilinear filtering, which never overshoots at a mask's edges as Lanczos would, when its size
    differs; the aspect ratio is the caller's to check)."""
    with Image.open(io.BytesIO(image.png)) as decoded:
        grey = decoded.convert("L")
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    return CleanImage(png=buffer.getvalue(), width=width, height=height)


def is_black(image: CleanImage) -> bool:
    """Whether every pixel of the (greyscale) image is black."""
    with Image.open(io.BytesIO(image.png)) as decoded:
        return decoded.convert("L").getextrema()[1] == 0


def file_too_large(max_bytes: int) -> str:
    """The 413 message of a file over the per-file limit (the upload check and app/admission.py)."""
    return f"the file is larger than the limit of {megabytes(max_bytes)}"


def megabytes(size: int) -> str:
    """A byte count for people: '50.0 MB', or '900 bytes' below a megabyte."""
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"
