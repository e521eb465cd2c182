"""RTP timestamps start at random and may wrap past 2**32 during a call."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from worker.media.audio import FRAME_SAMPLES, RtpTimestamps
from worker.media.session import CallSession, MediaConfig


def test_unwrap_counts_on_through_the_wrap_and_keeps_reordering() -> None:
    clock = RtpTimestamps()
    start = 2**32 - 2 * FRAME_SAMPLES
    raw = [start, start + FRAME_SAMPLES, 0, FRAME_SAMPLES, 0, 2 * FRAME_SAMPLES]
    assert [clock.unwrap(ts) for ts in raw] == [
        start,
        start + FRAME_SAMPLES,
        start + 2 * FRAME_SAMPLES,
        start + 3 * FRAME_SAMPLES,
        start + 2 * FRAME_SAMPLES,  # a reordered packet is a step back, not a wrap
        start + 4 * FRAME_SAMPLES,
    ]


class WrappingTrack(MediaStreamTrack):
    """Three seconds of stereo s16 audio as the Opus decoder gives it, wrapping after one."""

    kind = "audio"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.sent = 0
        self.frames = frames
        self.first = 2**32 - 50 * FRAME_SAMPLES

    async def recv(self) -> av.AudioFrame:
        if self.sent == self.frames:
            raise MediaStreamError
        samples = np.full((1, 2 * FRAME_SAMPLES), 1000 + self.sent, dtype="<i2")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = (self.first + self.sent * FRAME_SAMPLES) % 2**32
        self.sent += 1
        await asyncio.sleep(0)
        return frame


async def test_a_recording_goes_on_through_a_timestamp_wrap(tmp_path: Path) -> None:
    session = CallSession(MediaConfig(candidate_addresses=("127.0.0.1",)), call_id="wrap")
    path = tmp_path / "wrap.wav"
    session.start_recording(path)
    track = WrappingTrack(frames=150)
    try:
        await session._consume(track)
        info = session.stop_recording()
    finally:
        await session.close()
    assert info is not None
    assert session.frames_received == 150
    assert session.audio_gaps == []
    with wave.open(str(path), "rb") as wav:
        assert wav.getnframes() == 150 * FRAME_SAMPLES
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    # Every frame is where it belongs, after the wrap too.
    assert [int(audio[i * FRAME_SAMPLES]) for i in (0, 49, 50, 149)] == [1000, 1049, 1050, 1149]
