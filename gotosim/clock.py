"""The simulator's clock: one injectable source of time for tokens, timers and timestamps.

:class:`SystemClock` is real time. :class:`ManualClock` only moves when a test
calls :meth:`ManualClock.advance`; coroutines sleeping on it wake when the
clock passes their deadline. ``advance`` may be called from any thread (tests
drive a server running on another thread's event loop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch, and a sleep measured on the same clock."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real wall-clock time."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if seconds <= 0:
                future.set_result(None)
            else:
                self._sleepers.append((self._now + seconds, loop, future))
        try:
            await future
        finally:
            with self._lock:
                self._sleepers = [s for s in self._sleepers if s[2] is not future]

    def pending(self) -> int:
        """How many coroutines are sleeping on this clock."""
        with self._lock:
            return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
            due = [s for s in self._sleepers if s[0] <= self._now]
            self._sleepers = [s for s in self._sleepers if s[0] > self._now]
        for _, loop, future in due:
            loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def iso_offset(epoch: float) -> str:
    """ISO-8601 with an explicit offset, as in notification envelopes."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def iso_zulu(epoch: float) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, as in call resources."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")
