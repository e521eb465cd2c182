"""The prompt track: what a call sends, paced on an absolute clock.

:class:`PlaybackTrack` is an aiortc audio track that a call session adds to
its peer connection. A flow queues prompts on it (:meth:`~PlaybackTrack.play`,
:meth:`~PlaybackTrack.say_silence`); the track sends them back to back, then
silence while idle, and :meth:`~PlaybackTrack.stop` cuts whatever is playing
(barge-in): the very next frame is silence.

Pacing: frame *i* is released at ``start + i * 20 ms`` on the track's clock,
never after a relative ``sleep(0.02)`` that would drift. If the event loop
falls behind, the late frames go out at once to catch up, so media time stays
equal to wall time. ``media_time`` is the media clock: seconds of audio
emitted so far; every :class:`Playback` records its start and stop on it.

Two variants share the queue logic (:class:`PlaybackQueue`, pure, no I/O):

* :class:`PlaybackTrack` yields ``av.AudioFrame`` (s16 mono 48 kHz, 960
  samples, pts = running sample count); aiortc encodes them to Opus per call.
* :class:`EncodedPlaybackTrack` yields ``av.Packet`` holding Opus encoded once
  per prompt by an :class:`~worker.media.opus.OpusPromptCache`; aiortc's
  sender then only packs them (as for ``MediaPlayer(decode=False)``), so no
  per-call encoder runs. Use it only where Opus is the negotiated codec.

Both are used on the event loop's thread only.

Note on names: aiortc calls ``track.stop()`` when a sender ends; on these
tracks ``stop()`` is barge-in, which also resolves every pending playback,
so that is harmless. :meth:`PlaybackTrack.end` ends the track for good.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from worker.media.audio import FRAME_SAMPLES, FRAME_SECONDS, SILENT_FRAME, TIME_BASE, pcm_to_frame
from worker.media.opus import OpusPromptCache
from worker.media.prompts import Prompt

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


class PlaybackState(StrEnum):
    QUEUED = "queued"
    PLAYING = "playing"
    FINISHED = "finished"
    """Played to its end."""
    STOPPED = "stopped"
    """Cut by stop()/skip() or the track ending, before or while playing."""


class Playback:
    """One queued prompt or pause. Await it (or ``done``) to wait for its end."""

    def __init__(self, prompt: Prompt | None, frames: int, *, loop: bool = False) -> None:
        self.prompt = prompt
        self.frames = frames
        self.loop = loop and frames > 0
        self.state = PlaybackState.QUEUED
        self.started_at: float | None = None
        """Media time of its first frame, None if it never started."""
        self.stopped_at: float | None = None
        """Media time its last frame ended, or at which a stop took effect."""
        self.frames_played = 0
        self.done = asyncio.Event()

    @property
    def name(self) -> str:
        return self.prompt.name if self.prompt is not None else "silence"

    @property
    def finished(self) -> bool:
        """True if it played to the end, False if stopped (or still going)."""
        return self.state is PlaybackState.FINISHED

    async def wait(self) -> Playback:
        await self.done.wait()
        return self

    def __await__(self) -> Generator[Any, None, Playback]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return (
            f"Playback({self.name!r}, {self.state}, frames={self.frames}, loop={self.loop}, "
            f"started_at={self.started_at}, stopped_at={self.stopped_at})"
        )

    def _end(self, state: PlaybackState, media_time: float) -> None:
        self.state = state
        self.stopped_at = media_time
        self.done.set()


class PlaybackQueue:
    """What plays next, frame by frame: a pure state machine on the media clock.

    :meth:`next_frame` is called once per 20 ms frame and says which prompt
    frame (or silence) goes out; ``media_time`` counts the frames handed out.
    """

    def __init__(self) -> None:
        self._queue: deque[Playback] = deque()
        self._current: Playback | None = None
        self._position = 0
        self.frames_emitted = 0

    @property
    def media_time(self) -> float:
        return self.frames_emitted * FRAME_SECONDS

    @property
    def current(self) -> Playback | None:
        return self._current

    @property
    def playing(self) -> bool:
        return self._current is not None or bool(self._queue)

    def add(self, playback: Playback) -> Playback:
        self._queue.append(playback)
        return playback

    def next_frame(self) -> tuple[Playback | None, int]:
        """The playback and frame index to emit now; ``(None, -1)`` for idle silence."""
        now = self.media_time
        while self._current is None and self._queue:
            candidate = self._queue.popleft()
            candidate.state = PlaybackState.PLAYING
            candidate.started_at = now
            if candidate.frames == 0:
                candidate._end(PlaybackState.FINISHED, now)
                continue
            self._current = candidate
            self._position = 0
        playback = self._current
        self.frames_emitted += 1
        if playback is None:
            return None, -1
        index = self._position
        playback.frames_played += 1
        self._position += 1
        if self._position >= playback.frames:
            if playback.loop:
                self._position = 0
            else:
                playback._end(PlaybackState.FINISHED, self.media_time)
                self._current = None
        return playback, index

    def stop(self) -> list[Playback]:
        """Cut the current playback and drop the queue; return what was stopped."""
        stopped = ([self._current] if self._current is not None else []) + list(self._queue)
        self._current = None
        self._queue.clear()
        for playback in stopped:
            playback._end(PlaybackState.STOPPED, self.media_time)
        return stopped

    def skip(self) -> Playback | None:
        """Cut only the current playback; the queue goes on at the next frame."""
        playback = self._current
        if playback is not None:
            self._current = None
            playback._end(PlaybackState.STOPPED, self.media_time)
        return playback


@dataclass(frozen=True)
class FrameInfo:
    """Passed to ``on_frame`` for each frame a track emits."""

    index: int
    media_time: float
    """Media time at the start of this frame."""
    playback: Playback | None
    """What the frame came from; None for idle silence."""
    lateness: float
    """Seconds the frame went out after its due time (0 if on time)."""
    pcm: bytes = SILENT_FRAME
    """The 20 ms of mono s16 48 kHz audio the frame carries (shared, do not mutate);
    on the encoded track, the PCM the packet was encoded from."""


def _pcm_of(playback: Playback | None, position: int) -> bytes:
    if playback is None or playback.prompt is None:
        return SILENT_FRAME
    frames = playback.prompt.frames
    return frames[position] if position < len(frames) else SILENT_FRAME


class PlaybackTrack(MediaStreamTrack):
    """An audio track that plays queued prompts, paced on an absolute clock."""

    kind = "audio"

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_frame: Callable[[FrameInfo], None] | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._sleep = sleep
        self.on_frame = on_frame
        self.queue = PlaybackQueue()
        self._epoch: float | None = None
        self.max_lateness = 0.0
        """Worst delay of a frame behind its due time, in seconds."""
        self.late_frames = 0
        """Frames that went out more than one frame period late."""

    # -- control, for flows --------------------------------------------------

    def play(self, prompt: Prompt, *, loop: bool = False) -> Playback:
        """Queue ``prompt`` after whatever is playing; ``loop`` repeats it until stopped."""
        self._check_live("play")
        return self.queue.add(Playback(prompt, self._frames_of(prompt), loop=loop))

    def say_silence(self, seconds: float) -> Playback:
        """Queue a pause of ``seconds`` (rounded up to whole 20 ms frames)."""
        self._check_live("queue silence")
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"a pause needs a length >= 0 seconds, got {seconds}")
        return self.queue.add(Playback(None, math.ceil(round(seconds / FRAME_SECONDS, 6))))

    def stop(self) -> None:
        """Barge-in: cut what is playing and drop the queue; the next frame is silence."""
        stopped = self.queue.stop()
        if stopped:
            logger.debug("playback stopped at %.3f s: %s", self.media_time, stopped)

    def skip(self) -> None:
        """Cut only what is playing now; queued playbacks continue."""
        self.queue.skip()

    def end(self) -> None:
        """End the track: pending playbacks are stopped and ``recv`` raises from now on."""
        self.queue.stop()
        super().stop()

    @property
    def playing(self) -> bool:
        """True while a prompt or pause is playing or queued."""
        return self.queue.playing

    @property
    def current(self) -> Playback | None:
        return self.queue.current

    @property
    def media_time(self) -> float:
        """Seconds of media emitted so far."""
        return self.queue.media_time

    @property
    def frames_emitted(self) -> int:
        return self.queue.frames_emitted

    # -- aiortc side ------------------------------------------------------------

    async def recv(self) -> Any:
        """The next 20 ms frame, released at its due time on the clock."""
        lateness = await self._wait_turn()
        index = self.queue.frames_emitted
        pts = index * FRAME_SAMPLES
        playback, position = self.queue.next_frame()
        if self.on_frame is not None:
            pcm = _pcm_of(playback, position)
            self.on_frame(FrameInfo(index, index * FRAME_SECONDS, playback, lateness, pcm))
        return self._make(playback, position, pts)

    def _make(self, playback: Playback | None, position: int, pts: int) -> Any:
        return pcm_to_frame(_pcm_of(playback, position), pts)

    def _frames_of(self, prompt: Prompt) -> int:
        return prompt.frame_count

    async def _wait_turn(self) -> float:
        if self.readyState != "live":
            raise MediaStreamError
        if self._epoch is None:
            self._epoch = self._clock()
            return 0.0
        due = self._epoch + self.queue.frames_emitted * FRAME_SECONDS
        delay = due - self._clock()
        if delay > 0:
            await self._sleep(delay)
            if self.readyState != "live":
                raise MediaStreamError
            return 0.0
        lateness = -delay
        self.max_lateness = max(self.max_lateness, lateness)
        if lateness > FRAME_SECONDS:
            self.late_frames += 1
        return lateness

    def _check_live(self, action: str) -> None:
        if self.readyState != "live":
            raise MediaStreamError(f"cannot {action} on playback track {self.id}: it has ended")


class EncodedPlaybackTrack(PlaybackTrack):
    """A :class:`PlaybackTrack` that yields Opus packets encoded once per prompt.

    aiortc's sender packs ``av.Packet`` objects from ``recv()`` without
    encoding them. Packets come from ``cache`` (shared by all calls); a
    prompt not yet in the cache is encoded when first played.
    """

    def __init__(
        self,
        cache: OpusPromptCache,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_frame: Callable[[FrameInfo], None] | None = None,
    ) -> None:
        super().__init__(clock=clock, sleep=sleep, on_frame=on_frame)
        self.cache = cache

    def _frames_of(self, prompt: Prompt) -> int:
        return len(self.cache.packets(prompt))

    def _make(self, playback: Playback | None, position: int, pts: int) -> Any:
        if playback is None or playback.prompt is None:
            data = self.cache.silence_packet
        else:
            data = self.cache.packets(playback.prompt)[position]
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet
