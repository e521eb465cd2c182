from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.helpers import wait_until
from worker.node.loop import MediaLoop, MediaLoopError


def test_runs_coroutines_on_its_own_thread_and_stops() -> None:
    loop = MediaLoop("test-loop").start()
    try:

        async def where() -> str:
            return threading.current_thread().name

        assert loop.run(where(), timeout=5) == "test-loop"
    finally:
        loop.stop()
    assert not loop.running
    with pytest.raises(MediaLoopError, match="not running"):
        loop.submit(asyncio.sleep(0))


def test_a_hand_off_that_takes_too_long_is_an_error() -> None:
    loop = MediaLoop("slow").start()
    try:
        with pytest.raises(MediaLoopError, match=r"did not finish within 0\.2 s"):
            loop.run(asyncio.sleep(5), timeout=0.2)
    finally:
        loop.stop()


def test_lag_reads_a_blocked_loop_and_resets() -> None:
    loop = MediaLoop("lagging").start()
    try:

        async def block() -> None:
            time.sleep(0.3)  # blocking the loop is the behaviour under test

        wait_until(lambda: len(loop._lags) >= 12, timeout=10, what="lag samples")
        loop.run(block(), timeout=5)
        wait_until(lambda: loop.lag_ms(1.0) >= 150, timeout=5, what="the blocked loop's lag")
        # One hiccup is not a sustained lag: the admission percentile stays low.
        assert loop.lag_ms() < 150
        loop.reset_lag()
        assert loop.lag_ms(1.0) < 150
    finally:
        loop.stop()
