"""The media loop: one asyncio event loop on a dedicated thread per worker node.

Every live call of a node runs on this loop; aiortc objects never leave it.
Celery task bodies run on pool threads: they hand a coroutine to the loop
with :meth:`MediaLoop.submit` and wait for the hand-off, not for the call.

The loop is created when the worker process starts (never before a fork).
It also measures its own lag (how late a periodic wake-up fires), which is a
node's second capacity signal after the count of live calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LAG_INTERVAL = 0.1
LAG_WINDOW = 50


class MediaLoopError(RuntimeError):
    """The media loop is not running or a hand-off to it failed."""


class MediaLoop:
    """An asyncio loop running forever on its own daemon thread."""

    def __init__(self, name: str = "media-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._lag_task: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise MediaLoopError(f"{self.name} is not started")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def start(self) -> MediaLoop:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise MediaLoopError(f"{self.name} did not start within 10 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._lag_task = loop.create_task(self._measure_lag())
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _measure_lag(self) -> None:
        while True:
            expected = time.monotonic() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self._lags.append(max(0.0, time.monotonic() - expected))

    def reset_lag(self) -> None:
        """Forget the lag measured so far (start-up work is not a sign of load)."""
        self._lags.clear()

    def lag_ms(self, percentile: float = 0.9) -> float:
        """Lag of the last few seconds at ``percentile``, in milliseconds (0 before any sample).

        The default, the 90th percentile of the last 5 s, reads a sustained
        lag, not one hiccup: it is the node's admission signal.
        """
        if not self._lags:
            return 0.0
        ordered = sorted(self._lags)
        index = min(len(ordered) - 1, round(percentile * (len(ordered) - 1)))
        return ordered[index] * 1000.0

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop from any other thread."""
        if not self.running:
            coro.close()
            raise MediaLoopError(f"cannot hand work to {self.name}: it is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait up to ``timeout`` seconds for its result."""
        future = self.submit(coro)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise MediaLoopError(
                f"{self.name}: hand-off did not finish within {timeout} s"
            ) from None

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.warning("%s did not stop within %.0f s", self.name, timeout)
        self._thread = None
        self._loop = None
        self._ready.clear()
