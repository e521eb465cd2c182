"""Measuring probes shared by both processes of the media benchmark.

- :class:`LagProbe`: event-loop lag, from a task that asks to wake every 10 ms
  and records how late it woke;
- :class:`CpuClock`: process CPU seconds (all threads: the loop, aiortc's
  decoder threads, the executor that runs per-call Opus encoders) and the
  event-loop thread's own CPU seconds;
- :func:`rss_bytes`: resident memory from ``/proc/self/status``;
- :class:`SendPacing`: per call, when each RTP packet was handed to the DTLS
  transport, against a 20 ms schedule (how late, how many packets);
- :class:`ReceiveCounter`: frames received and frames missing from the RTP
  timestamps (lost or dropped packets), modulo 2**32.

Every counter has a window: ``start()`` zeroes what the window reports,
``stop()`` freezes it; what happens before (set-up, warm-up) is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FRAME = 0.02
"""Seconds per 20 ms frame."""
FRAME_SAMPLES = 960
PROBE_PERIOD = 0.01
"""Seconds between event-loop lag samples."""


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS``), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


class LagProbe:
    """Samples event-loop lag every :data:`PROBE_PERIOD` while running; keeps the window's."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._recording = False
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        self._task = asyncio.ensure_future(self._probe())

    def start(self) -> None:
        self.samples = []
        self._recording = True

    def stop(self) -> None:
        self._recording = False

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(PROBE_PERIOD)
            if self._recording:
                self.samples.append(max(0.0, loop.time() - before - PROBE_PERIOD))

    def summary(self) -> dict[str, float]:
        return {
            "lag_p50_ms": percentile(self.samples, 0.50) * 1000,
            "lag_p99_ms": percentile(self.samples, 0.99) * 1000,
            "lag_max_ms": max(self.samples, default=math.nan) * 1000,
        }


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    process: float
    """User + system CPU seconds of the whole process (every thread)."""
    loop_thread: float
    """CPU seconds of the thread that took the sample (the event loop's)."""
    machine: float
    """CPU seconds of the whole machine (every process)."""
    wall: float


class CpuClock:
    """Process and loop-thread CPU over a window; call both ends on the loop thread."""

    def __init__(self) -> None:
        self.begin: CpuSample | None = None
        self.end: CpuSample | None = None

    @staticmethod
    def sample() -> CpuSample:
        times = os.times()
        return CpuSample(
            times.user + times.system,
            time.thread_time(),
            machine_busy_seconds(),
            time.monotonic(),
        )

    def start(self) -> None:
        self.begin = self.sample()

    def stop(self) -> None:
        self.end = self.sample()

    def summary(self, calls: int) -> dict[str, float]:
        assert self.begin is not None and self.end is not None
        wall = self.end.wall - self.begin.wall
        process = self.end.process - self.begin.process
        loop = self.end.loop_thread - self.begin.loop_thread
        return {
            "window_s": wall,
            "cpu_s": process,
            "cpu_per_call_s": process / (calls * wall) if calls else math.nan,
            "busy": process / wall,
            "loop_busy": loop / wall,
            "machine_busy": (self.end.machine - self.begin.machine) / wall,
        }


class SendPacing:
    """When one call's RTP packets went out, against the 20 ms schedule.

    The schedule's origin is the least-delayed packet seen so far
    (``min(sent_k - k * 20 ms)``), so a slow start does not count as late
    forever, and lateness is measured from it: ``sent_k - k * 20 ms - origin``.
    """

    def __init__(self) -> None:
        self.count = 0
        self._origin = math.inf
        self._recording = False
        self.window_packets = 0
        self.late = 0
        """Packets sent more than 20 ms behind the schedule, within the window."""
        self.worst = 0.0

    def sent(self, now: float) -> None:
        origin = now - self.count * FRAME
        self.count += 1
        if origin < self._origin:
            self._origin = origin
        if self._recording:
            self.window_packets += 1
            lateness = origin - self._origin
            if lateness > FRAME:
                self.late += 1
            if lateness > self.worst:
                self.worst = lateness

    def start(self) -> None:
        self.window_packets, self.late, self.worst = 0, 0, 0.0
        self._recording = True

    def stop(self) -> None:
        self._recording = False


def hook_rtp_sends(transport: Any, pacing: SendPacing) -> None:
    """Call ``pacing.sent`` for each RTP (not RTCP) packet given to ``transport._send_rtp``.

    The hook returns aiortc's own coroutine, so it adds one plain call per
    packet and no extra await.
    """
    original: Callable[[bytes], Any] = transport._send_rtp
    clock = time.monotonic

    def send_rtp(data: bytes) -> Any:
        if not 192 <= data[1] <= 208:  # RTCP packet types 192-208 (aiortc.rtp.is_rtcp)
            pacing.sent(clock())
        return original(data)

    transport._send_rtp = send_rtp


class GcProbe:
    """Time spent in the cyclic garbage collector, per generation, within the window."""

    def __init__(self) -> None:
        self._began = 0.0
        self._recording = False
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def start(self) -> None:
        self.pauses = {0: [], 1: [], 2: []}
        self._recording = True

    def stop(self) -> None:
        self._recording = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._recording:
            self.pauses[info["generation"]].append(time.perf_counter() - self._began)

    def summary(self, window: float) -> dict[str, float]:
        every = [pause for pauses in self.pauses.values() for pause in pauses]
        return {
            "gc_share": sum(every) / window,
            "gc_max_ms": max(every, default=0.0) * 1000,
            "gc_gen2_per_s": len(self.pauses[2]) / window,
            "gc_gen2_mean_ms": 1000 * sum(self.pauses[2]) / max(1, len(self.pauses[2])),
        }


class ReceiveCounter:
    """Decoded frames received and the samples missing between them (RTP time, mod 2**32)."""

    def __init__(self) -> None:
        self._expected: int | None = None
        self.frames = 0
        self.missing_samples = 0
        self._base = (0, 0)

    def frame(self, pts: int, samples: int) -> None:
        if self._expected is not None:
            step = (pts - self._expected) % (1 << 32)
            if 0 < step < (1 << 31):
                self.missing_samples += step
        self._expected = (pts + samples) % (1 << 32)
        self.frames += 1

    def start(self) -> None:
        self._base = (self.frames, self.missing_samples)

    def window(self) -> tuple[int, int]:
        """(frames received, 20 ms frames missing) since :meth:`start`."""
        missing = self.missing_samples - self._base[1]
        return self.frames - self._base[0], math.ceil(missing / FRAME_SAMPLES)
