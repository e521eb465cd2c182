"""The one audio format callworker's media code speaks, and conversions into it.

Everything inside ``worker.media`` moves audio as 48 kHz, mono, signed 16-bit
little-endian PCM (``bytes``), cut into 20 ms frames of 960 samples. That is
what aiortc's Opus encoder takes without surprises, and what the recorder and
the DTMF detector read. This module holds the constants, the conversions
between that PCM and PyAV frames, and the base of the media exception tree::

    MediaError                      (worker.media.audio)
     +-- PromptError                (worker.media.prompts)
     +-- RecorderError              (worker.media.recorder)
     +-- SynthError                 (worker.media.synth)
     +-- DtmfError                  (worker.media.dtmf)
"""

from __future__ import annotations

import fractions
import math
import warnings
from typing import Any

import av
import numpy as np

SAMPLE_RATE = 48000
"""Samples per second of all PCM inside worker.media."""
FRAME_SAMPLES = 960
"""Samples in one 20 ms frame."""
FRAME_SECONDS = 0.02
"""Length of one frame in seconds."""
SAMPLE_WIDTH = 2
"""Bytes per sample (s16)."""
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
"""Bytes in one mono frame."""
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
"""Time base of the frames made here: pts counts samples."""


class MediaError(Exception):
    """Base of every error raised by worker.media."""


def silence(samples: int) -> bytes:
    """``samples`` samples of digital silence as mono s16 PCM."""
    if samples < 0:
        raise ValueError(f"cannot make {samples} samples of silence: need a count >= 0")
    return bytes(samples * SAMPLE_WIDTH)


SILENT_FRAME = silence(FRAME_SAMPLES)
"""One 20 ms frame of silence; shared, never mutated."""


def seconds_to_samples(seconds: float) -> int:
    """The nearest whole number of 48 kHz samples in ``seconds``."""
    return round(seconds * SAMPLE_RATE)


def pcm_to_frame(pcm: bytes, pts: int) -> av.AudioFrame:
    """Wrap mono s16 48 kHz PCM in an ``av.AudioFrame`` (time base 1/48000).

    ``pts`` is the running sample count of the stream the frame belongs to.
    The PCM is copied once into the frame's buffer.
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM of {len(pcm)} bytes is not whole s16 samples")
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // SAMPLE_WIDTH)
    frame.planes[0].update(pcm)
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class MonoConverter:
    """Turn a stream of decoded frames of any shape into mono s16 48 kHz PCM.

    The common case, what aiortc's Opus decoder produces (packed s16 stereo at
    48 kHz, or mono), is a numpy downmix with no resampler. Any other format,
    layout or rate goes through one ``av.AudioResampler`` kept for the whole
    stream, so its filter state carries from frame to frame.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None

    def convert(self, frame: av.AudioFrame) -> bytes:
        fast = _fast_mono(frame)
        if fast is not None:
            return fast
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        out = bytearray()
        for converted in self._resampler.resample(frame):
            out += _plane_bytes(converted, converted.samples * SAMPLE_WIDTH)
        return bytes(out)


def frame_to_mono_pcm(frame: av.AudioFrame) -> bytes:
    """Mono s16 48 kHz PCM from one decoded frame.

    Packed s16 stereo (what Opus decodes to) is averaged into mono; mono s16 is
    returned as is. Other formats, layouts or rates are resampled with a
    resampler made for this frame alone; for a stream of such frames use
    :class:`MonoConverter`, which keeps the resampler's state between frames.
    """
    return MonoConverter().convert(frame)


def _plane_bytes(frame: av.AudioFrame, size: int) -> bytes:
    return bytes(frame.planes[0])[:size]


def _fast_mono(frame: av.AudioFrame) -> bytes | None:
    if frame.sample_rate != SAMPLE_RATE or frame.format.name != "s16":
        return None
    channels = frame.layout.nb_channels
    if channels == 1:
        return _plane_bytes(frame, frame.samples * SAMPLE_WIDTH)
    if channels == 2:
        stereo = np.frombuffer(
            _plane_bytes(frame, frame.samples * 2 * SAMPLE_WIDTH), dtype="<i2"
        ).reshape(-1, 2)
        mono = (stereo[:, 0].astype(np.int32) + stereo[:, 1]) >> 1
        return bytes(mono.astype("<i2").tobytes())
    return None


def pcm_to_array(pcm: bytes) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    """A read-only int16 view of mono s16 PCM (no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def rms_dbfs(pcm: bytes) -> float:
    """Loudness of mono s16 PCM in dB relative to full scale; ``-inf`` for silence."""
    if not pcm:
        return -math.inf
    samples = pcm_to_array(pcm).astype(np.float64)
    mean_square = float(np.mean(samples * samples))
    if mean_square <= 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_square / (32768.0 * 32768.0))


def split_frames(pcm: bytes) -> tuple[bytes, ...]:
    """Cut mono PCM into 960-sample frames, padding the last one with silence."""
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + bytes(FRAME_BYTES - len(frames[-1]))
    return tuple(frames)


def audio_segment_class() -> Any:
    """pydub's ``AudioSegment``, imported on first use.

    pydub imports ``audioop``, which Python 3.11-3.12 flag as deprecated (3.13
    removed it; the ``audioop-lts`` backport restores it); that warning is
    silenced here, once, instead of in every test run and log.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
        from pydub import AudioSegment
    return AudioSegment


class RtpTimestamps:
    """Unwrap 32-bit RTP timestamps into a running count that never wraps.

    A stream starts at a random timestamp, so it can pass 2**32 within a
    call. A step of more than 2**31 backwards is a wrap forwards; a small
    step back (a reordered packet) stays a step back.
    """

    _MOD = 1 << 32
    _HALF = 1 << 31

    def __init__(self) -> None:
        self._last: int | None = None
        self._value = 0

    def unwrap(self, timestamp: int) -> int:
        if self._last is None:
            self._value = timestamp
        else:
            step = (timestamp - self._last) % self._MOD
            if step >= self._HALF:
                step -= self._MOD
            self._value += step
        self._last = timestamp
        return self._value
