"""The prompt track: absolute pacing on an injected clock, queueing, barge-in, loop, Opus path."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from tests.media.audio_match import best_alignment
from worker.media import ice
from worker.media.audio import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENT_FRAME,
    TIME_BASE,
    frame_to_mono_pcm,
)
from worker.media.opus import OpusPromptCache
from worker.media.playback import (
    EncodedPlaybackTrack,
    FrameInfo,
    PlaybackState,
    PlaybackTrack,
)
from worker.media.prompts import Prompt


class FakeClock:
    """A clock that moves only when the track sleeps; ``oversleep`` models a busy loop."""

    def __init__(self, oversleep: Callable[[int], float] = lambda i: 0.0) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.oversleep = oversleep
        self.during_sleep: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay + self.oversleep(len(self.sleeps))
        if self.during_sleep is not None:
            hook, self.during_sleep = self.during_sleep, None
            hook()


def numbered_prompt(name: str, frames: int, base: int) -> Prompt:
    """Each frame filled with its own value, so the output says which frame it was."""
    return Prompt(
        name=name,
        frames=tuple(
            np.full(FRAME_SAMPLES, base + i, dtype="<i2").tobytes() for i in range(frames)
        ),
        duration=frames * 0.02,
    )


def tag(frame: av.AudioFrame) -> int:
    """The value a numbered frame was filled with (0 for silence)."""
    return int(np.frombuffer(frame_to_mono_pcm(frame), dtype="<i2")[0])


async def pull(track: PlaybackTrack, count: int) -> list[av.AudioFrame]:
    frames = []
    for _ in range(count):
        frame = await track.recv()
        assert isinstance(frame, av.AudioFrame)
        frames.append(frame)
    return frames


async def test_frames_have_the_zero_surprise_format_and_running_pts() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    assert track.kind == "audio"
    frames = await pull(track, 5)
    for index, frame in enumerate(frames):
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.sample_rate == SAMPLE_RATE
        assert frame.samples == FRAME_SAMPLES
        assert frame.pts == index * FRAME_SAMPLES
        assert frame.time_base == fractions.Fraction(1, SAMPLE_RATE)
        assert frame_to_mono_pcm(frame) == SILENT_FRAME  # idle: silence
    assert track.media_time == pytest.approx(0.1)


async def test_pacing_is_absolute_and_does_not_drift() -> None:
    # every sleep overshoots by 0-4 ms, as on a busy loop; relative sleeps would drift 200 ms
    rng = np.random.default_rng(1)
    jitter = rng.uniform(0, 0.004, 200)
    clock = FakeClock(oversleep=lambda i: float(jitter[i - 1]))
    start = clock.now
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    released = []
    for _ in range(100):
        await track.recv()
        released.append(clock.now)
    for index, at in enumerate(released):
        due = start + index * 0.02
        assert due - 1e-9 <= at <= due + 0.004 + 1e-9, (index, at - due)
    # each sleep aimed at the absolute due time, not a fixed 20 ms
    assert not all(abs(s - 0.02) < 1e-9 for s in clock.sleeps)


async def test_a_stalled_loop_catches_up_without_stretching() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    await pull(track, 10)
    clock.now += 0.1  # the loop was blocked for 100 ms
    sleeps_before = len(clock.sleeps)
    await pull(track, 10)
    # five frames were overdue: they went out at once; then back on schedule
    assert len(clock.sleeps) - sleeps_before == 5
    assert track.late_frames >= 1
    assert track.max_lateness == pytest.approx(0.1 - 0.02 + 0.02, abs=0.021)
    assert clock.now == pytest.approx(1000.0 + 19 * 0.02)


async def test_prompt_plays_then_silence_and_done_carries_media_times() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    await pull(track, 3)
    playback = track.play(numbered_prompt("p", 4, 100))
    assert track.playing and playback.state is PlaybackState.QUEUED
    frames = await pull(track, 6)
    assert [tag(f) for f in frames] == [100, 101, 102, 103, 0, 0]
    assert playback.done.is_set() and playback.finished
    assert playback.started_at == pytest.approx(0.06)
    assert playback.stopped_at == pytest.approx(0.14)
    assert not track.playing
    assert await playback is playback  # awaiting a finished playback returns at once


async def test_queue_plays_in_order_with_pauses() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    first = track.play(numbered_prompt("a", 2, 10))
    pause = track.say_silence(0.06)
    second = track.play(numbered_prompt("b", 2, 20))
    frames = await pull(track, 8)
    assert [tag(f) for f in frames] == [10, 11, 0, 0, 0, 20, 21, 0]
    assert (first.started_at, first.stopped_at) == (0.0, pytest.approx(0.04))
    assert (pause.started_at, pause.stopped_at) == (pytest.approx(0.04), pytest.approx(0.1))
    assert second.started_at == pytest.approx(0.1)
    assert all(p.finished for p in (first, pause, second))
    assert pause.name == "silence"


async def test_stop_is_immediate_and_flushes_the_queue() -> None:
    clock = FakeClock()
    seen: list[FrameInfo] = []
    track = PlaybackTrack(clock=clock, sleep=clock.sleep, on_frame=seen.append)
    current = track.play(numbered_prompt("long", 100, 1000))
    queued = track.play(numbered_prompt("next", 5, 2000))
    frames = await pull(track, 7)
    track.stop()
    after = await pull(track, 3)
    assert [tag(f) for f in frames] == list(range(1000, 1007))
    assert [tag(f) for f in after] == [0, 0, 0]  # the very next frame is silent
    assert current.state is PlaybackState.STOPPED and not current.finished
    assert current.started_at == 0.0 and current.stopped_at == pytest.approx(0.14)
    assert current.frames_played == 7
    assert queued.done.is_set() and queued.started_at is None
    assert not track.playing
    # on_frame says which frames were audible, on the media clock
    audible = [info.media_time for info in seen if info.playback is not None]
    assert max(audible) == pytest.approx(0.12)
    assert [info.index for info in seen] == list(range(10))
    # and what each frame carried, for a stereo recording of our side
    assert [int(np.frombuffer(info.pcm, dtype="<i2")[0]) for info in seen] == [
        *range(1000, 1007),
        0,
        0,
        0,
    ]


async def test_stop_during_the_wait_silences_the_frame_being_waited_for() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    playback = track.play(numbered_prompt("p", 50, 500))
    await pull(track, 4)
    clock.during_sleep = track.stop  # barge-in arrives while recv() waits for frame 4
    frame = (await pull(track, 1))[0]
    assert tag(frame) == 0
    assert playback.stopped_at == pytest.approx(0.08)


async def test_loop_repeats_until_stopped_and_skip_moves_on() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    hold = track.play(numbered_prompt("hold", 3, 30), loop=True)
    after = track.play(numbered_prompt("after", 2, 40))
    frames = await pull(track, 8)
    assert [tag(f) for f in frames] == [30, 31, 32, 30, 31, 32, 30, 31]
    assert not hold.done.is_set()
    track.skip()
    frames = await pull(track, 3)
    assert [tag(f) for f in frames] == [40, 41, 0]
    assert hold.state is PlaybackState.STOPPED and after.finished


async def test_waiting_on_a_playback_from_another_task() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    playback = track.play(numbered_prompt("p", 3, 1))
    waiter = asyncio.ensure_future(playback.wait())
    await pull(track, 2)
    assert not waiter.done()
    await pull(track, 1)
    assert await asyncio.wait_for(waiter, timeout=5) is playback


async def test_end_stops_everything_and_recv_raises() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    playback = track.play(numbered_prompt("p", 10, 1))
    await pull(track, 2)
    track.end()
    assert playback.state is PlaybackState.STOPPED
    assert track.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()
    with pytest.raises(MediaStreamError, match="has ended"):
        track.play(numbered_prompt("q", 1, 1))


async def test_zero_length_items_do_not_stall_the_queue() -> None:
    clock = FakeClock()
    track = PlaybackTrack(clock=clock, sleep=clock.sleep)
    empty = track.play(Prompt("empty", (), 0.0), loop=True)
    nothing = track.say_silence(0)
    real = track.play(numbered_prompt("r", 1, 7))
    assert [tag(f) for f in await pull(track, 2)] == [7, 0]
    assert empty.finished and nothing.finished and real.finished
    with pytest.raises(ValueError, match="length >= 0"):
        track.say_silence(-1)


async def test_real_clock_pacing_never_runs_ahead() -> None:
    track = PlaybackTrack()
    start = time.monotonic()
    released = []
    for _ in range(25):
        await track.recv()
        released.append(time.monotonic() - start)
    for index, at in enumerate(released):
        assert at >= index * 0.02 - 0.002, (index, at)  # never before its due time
    assert released[-1] < 5.0  # and it did not stall (generous on a loaded machine)


# -- the encoded-once path ------------------------------------------------------


def sweep_prompt(seconds: float = 1.0) -> Prompt:
    t = np.arange(round(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    pcm = (np.sin(2 * np.pi * (300 * t + 1000 * t * t)) * 12000).astype("<i2").tobytes()
    return Prompt.from_pcm("sweep", pcm)


def decode_packets(packets: list[bytes]) -> np.ndarray:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.format = "s16"
    decoder.layout = "stereo"  # as aiortc's receiver does
    decoder.sample_rate = SAMPLE_RATE
    out = bytearray()
    for index, data in enumerate(packets):
        packet = av.Packet(data)
        packet.pts = index * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        for frame in decoder.decode(packet):
            assert isinstance(frame, av.AudioFrame)
            out += frame_to_mono_pcm(frame)
    return np.frombuffer(bytes(out), dtype="<i2")


def correlation_at_best_lag(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> float:
    return best_alignment(reference, decoded, max_lag)[1]


def test_opus_cache_encodes_each_prompt_once() -> None:
    cache = OpusPromptCache()
    prompt = sweep_prompt()
    packets = cache.packets(prompt)
    assert cache.packets(prompt) is packets and len(cache) == 1
    assert len(packets) == prompt.frame_count + 1  # encoder lookahead
    decoded = decode_packets(list(packets))
    reference = np.frombuffer(prompt.pcm, dtype="<i2")
    assert correlation_at_best_lag(reference, decoded, 700) > 0.95
    silent = decode_packets([cache.silence_packet] * 5)
    assert np.max(np.abs(silent)) < 50


async def test_encoded_track_yields_packets_and_stops_at_once() -> None:
    cache = OpusPromptCache()
    prompt = sweep_prompt()
    clock = FakeClock()
    track = EncodedPlaybackTrack(cache, clock=clock, sleep=clock.sleep)
    playback = track.play(prompt)
    packets = []
    for index in range(30):
        packet = await track.recv()
        assert isinstance(packet, av.Packet)
        assert packet.pts == index * FRAME_SAMPLES and packet.time_base == TIME_BASE
        packets.append(bytes(packet))
    assert packets == list(cache.packets(prompt)[:30])
    assert track.current is playback and playback.frames == prompt.frame_count + 1
    track.stop()
    assert bytes(await track.recv()) == cache.silence_packet
    assert playback.stopped_at == pytest.approx(0.6)


async def test_aiortc_sends_the_cached_packets_over_loopback() -> None:
    """A real RTCPeerConnection pair on 127.0.0.1: the far end hears the prompt."""
    cache = OpusPromptCache()
    prompt = sweep_prompt(1.5)
    cache.preload([prompt])
    track = EncodedPlaybackTrack(cache)
    no_stun = ice.rtc_configuration([])  # the default asks a public STUN server: 5 s stall
    sender_pc = RTCPeerConnection(no_stun)
    receiver_pc = RTCPeerConnection(no_stun)
    received: asyncio.Queue[av.AudioFrame] = asyncio.Queue()
    consumers: list[asyncio.Task[None]] = []

    async def consume(remote: object) -> None:
        while True:
            try:
                frame = await remote.recv()  # type: ignore[attr-defined]
            except MediaStreamError:
                return
            await received.put(frame)

    @receiver_pc.on("track")
    def on_track(remote: object) -> None:
        consumers.append(asyncio.ensure_future(consume(remote)))

    try:
        with ice.pinned_addresses(["127.0.0.1"]):
            sender_pc.addTrack(track)
            await sender_pc.setLocalDescription(await sender_pc.createOffer())
            await receiver_pc.setRemoteDescription(sender_pc.localDescription)
            await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
            await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        for line in sender_pc.localDescription.sdp.splitlines():
            if line.startswith("a=candidate"):
                assert " 127.0.0.1 " in line, line
        # wait until the far end hears sound, then play the prompt once
        first = await asyncio.wait_for(received.get(), timeout=20)
        assert isinstance(first, av.AudioFrame)
        playback = track.play(prompt)
        await asyncio.wait_for(playback.wait(), timeout=20)
        track.say_silence(0.3)
        heard = bytearray()
        deadline = track.media_time + 0.3
        while track.media_time < deadline or not received.empty():
            heard += frame_to_mono_pcm(await asyncio.wait_for(received.get(), timeout=20))
    finally:
        await asyncio.gather(sender_pc.close(), receiver_pc.close())
        for task in consumers:
            task.cancel()
    decoded = np.frombuffer(bytes(heard), dtype="<i2")
    reference = np.frombuffer(prompt.pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(decoded) > 3000)
    assert len(loud) > 0, "the far end heard nothing"
    start = max(0, int(loud[0]) - 2 * FRAME_BYTES)
    score = correlation_at_best_lag(reference, decoded[start:], 4 * FRAME_SAMPLES)
    assert score > 0.9, score
