"""The pixels one worker process may hold decoded at once, shared by every stage that
decodes an image (wound photos, document scans, rendered PDF pages).

A few small uploads can decode to huge images (a 116 KB PNG is 40 megapixels); each stage
checks its own limit per image, and this budget bounds what the process holds of all of
them together: further images wait their turn instead of exhausting the worker's memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from vigia.exceptions import Permanent

#: Two images at the largest size any stage accepts (40 megapixels): at the 1–4 bytes a
#: decoded pixel costs while a stage works on it, about 80–320 MB.
DEFAULT_PIXELS = 80_000_000


class OverBudget(Permanent):
    """One image larger than the whole budget: it could never be decoded here."""


class Hold:
    """Pixels taken from a budget, given back once by `release` (again is harmless)."""

    def __init__(self, budget: DecodeBudget, pixels: int) -> None:
        self._budget = budget
        self.pixels = pixels
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._budget._give_back(self.pixels)


class DecodeBudget:
    """Pixels this process may hold decoded at once; `take` waits until they are free."""

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self._held = 0
        #: The most ever held at once (what a test or a benchmark reads).
        self.peak = 0
        self._changed = threading.Condition()

    def take(self, pixels: int, what: str = "the image") -> Hold:
        if pixels > self.pixels:
            raise OverBudget(
                f"{what} decodes to {pixels / 1e6:.0f} megapixels, over this worker's budget of {self.pixels / 1e6:.0f}"
            )
        with self._changed:
            self._changed.wait_for(lambda: self._held + pixels <= self.pixels)
            self._held += pixels
            self.peak = max(self.peak, self._held)
        return Hold(self, pixels)

    @contextlib.contextmanager
    def hold(self, pixels: int, what: str = "the image") -> Iterator[None]:
        taken = self.take(pixels, what)
        try:
            yield
        finally:
            taken.release()

    @property
    def held(self) -> int:
        with self._changed:
            return self._held

    def _give_back(self, pixels: int) -> None:
        with self._changed:
            self._held -= pixels
            self._changed.notify_all()


#: The budget of this process, shared by all its stages and threads.
DECODE_BUDGET = DecodeBudget(DEFAULT_PIXELS)
