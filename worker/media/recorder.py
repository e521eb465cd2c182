"""Call recording: a WAV file written as the audio arrives.

:class:`WavRecorder` takes 48 kHz mono s16 PCM (what
:func:`~worker.media.audio.frame_to_mono_pcm` gives) for the far end, and in
stereo mode also for our side, and appends it to a WAV file. Every
``flush_seconds`` of audio it writes the new samples and then rewrites the
header's sizes, so a process killed at any moment leaves a valid WAV holding
everything up to the last flush (the kernel keeps what was written even when
the process is SIGKILLed; pass ``fsync=True`` to survive a power cut too).

Time: each write may carry its media time, in seconds since the start of the
recording. A write that starts later than the previous one ended leaves a gap,
which becomes silence (lost packets); one that overlaps is trimmed. In stereo
the far end is the left channel and our side the right, aligned on that time.

Limits: ``max_seconds`` ends the recording at that length, and
``stop_on_silence_seconds`` ends it after that much continuous silence from
the far end (quieter than ``silence_threshold_dbfs``, gaps included).
``stop_reason`` says why it stopped and ``on_stop`` is called once when it
stops on its own. Files are created owner-only (0600) through ``os.open``;
missing folders are created 0700.

A recorder is used from one thread (the call's event loop). Writes are plain
``os.write`` calls of a few tens of kilobytes per flush.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import av
import numpy as np

from worker.media.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    MediaError,
    audio_segment_class,
)

logger = logging.getLogger(__name__)

HEADER_BYTES = 44
FILE_MODE = 0o600
DIR_MODE = 0o700


class RecorderError(MediaError):
    """A recording cannot be created, written or converted."""


class StopReason(StrEnum):
    CLOSED = "closed"
    """close() was called (the call ended or the flow stopped it)."""
    MAX_LENGTH = "max_length"
    SILENCE = "silence"


@dataclass(frozen=True)
class RecordingInfo:
    """A finished recording, as returned to the API's caller."""

    path: Path
    duration_seconds: float
    size_bytes: int
    stop_reason: StopReason
    format: str = "wav"
    channels: int = 1
    sample_rate: int = SAMPLE_RATE


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700; warn if it exists but is open."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RecorderError(f"cannot create recordings folder {path}: {exc}") from exc
    if not missing:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            logger.warning("recordings folder %s is mode %o; 0700 keeps it private", folder, mode)


def _wav_header(channels: int, sample_rate: int, data_bytes: int) -> bytes:
    block_align = channels * SAMPLE_WIDTH
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        SAMPLE_WIDTH * 8,
        b"data",
        data_bytes,
    )


class _Channel:
    """Pending samples of one channel, from the committed position on."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def end(self, base: int) -> int:
        return base + len(self.pending) // SAMPLE_WIDTH


class WavRecorder:
    """Write what a call hears to a WAV file as it goes; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        channels: int = 1,
        sample_rate: int = SAMPLE_RATE,
        max_seconds: float | None = None,
        stop_on_silence_seconds: float | None = None,
        silence_threshold_dbfs: float = -50.0,
        flush_seconds: float = 0.5,
        max_skew_seconds: float = 1.0,
        fsync: bool = False,
        on_stop: Callable[[StopReason], None] | None = None,
    ) -> None:
        self._closed = True  # until the file is open
        if channels not in (1, 2):
            raise RecorderError(f"a recording has 1 or 2 channels, not {channels}")
        if sample_rate not in (8000, 16000, 24000, 48000):
            raise RecorderError(f"sample rate {sample_rate} not one of 8000, 16000, 24000, 48000")
        self.path = Path(path)
        self.channels = channels
        self.sample_rate = sample_rate
        self.max_samples = None if max_seconds is None else round(max_seconds * SAMPLE_RATE)
        self.silence_limit = (
            None
            if stop_on_silence_seconds is None
            else round(stop_on_silence_seconds * SAMPLE_RATE)
        )
        # mean square of s16 samples at the threshold
        self._silence_power = (10 ** (silence_threshold_dbfs / 10.0)) * 32768.0 * 32768.0
        self._flush_samples = max(FRAME_SAMPLES, round(flush_seconds * SAMPLE_RATE))
        self._max_skew = round(max_skew_seconds * SAMPLE_RATE)
        self._fsync = fsync
        self.on_stop = on_stop
        self._far = _Channel()
        self._near = _Channel()
        self._base = 0  # 48 kHz samples per channel committed to the file
        self._data_bytes = 0
        self._silent_run = 0
        self._stop_reason: StopReason | None = None
        self._resampler: av.AudioResampler | None = None
        if sample_rate != SAMPLE_RATE:
            layout = "mono" if channels == 1 else "stereo"
            self._resampler = av.AudioResampler(format="s16", layout=layout, rate=sample_rate)
        self._fd = self._open()
        self._closed = False

    # -- state ---------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once the recording stopped (a limit was hit, or it was closed)."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop_reason

    @property
    def duration(self) -> float:
        """Seconds recorded so far, including audio not flushed yet."""
        return max(self._far.end(self._base), self._near.end(self._base)) / SAMPLE_RATE

    @property
    def flushed_seconds(self) -> float:
        """Seconds already in the file (what survives a crash now)."""
        return self._data_bytes / (self.channels * SAMPLE_WIDTH * self.sample_rate)

    # -- writing -------------------------------------------------------------

    def write(self, pcm: bytes, media_time: float | None = None) -> bool:
        """Add far-end audio (mono s16 48 kHz); False once the recording has stopped."""
        return self._write(self._far, pcm, media_time, far=True)

    def write_near(self, pcm: bytes, media_time: float | None = None) -> bool:
        """Add our side's audio (stereo recordings only: the right channel)."""
        if self.channels != 2:
            raise RecorderError(f"{self.path}: write_near needs a stereo recorder (channels=2)")
        return self._write(self._near, pcm, media_time, far=False)

    def flush(self) -> None:
        """Write everything aligned so far and update the header."""
        if not self._closed:
            self._commit(final=False)

    def close(self) -> RecordingInfo:
        """Flush everything, finish the file and say what was recorded. Safe to call twice."""
        if not self._closed:
            if self._stop_reason is None:
                self._stop_reason = StopReason.CLOSED
            self._finish()
        assert self._stop_reason is not None
        return RecordingInfo(
            path=self.path,
            duration_seconds=self.flushed_seconds,
            size_bytes=HEADER_BYTES + self._data_bytes,
            stop_reason=self._stop_reason,
            channels=self.channels,
            sample_rate=self.sample_rate,
        )

    def _write(self, channel: _Channel, pcm: bytes, media_time: float | None, far: bool) -> bool:
        if self._stop_reason is not None:
            return False
        if len(pcm) % SAMPLE_WIDTH:
            raise RecorderError(f"{self.path}: PCM of {len(pcm)} bytes is not whole s16 samples")
        end = channel.end(self._base)
        start = end if media_time is None else round(media_time * SAMPLE_RATE)
        if start > end:
            self._pad(channel, start - end, far)
            if self._stop_reason is not None:
                return False
        elif start < end:
            pcm = pcm[(end - start) * SAMPLE_WIDTH :]
        if not pcm:
            return True
        if self.max_samples is not None:
            room = self.max_samples - channel.end(self._base)
            if len(pcm) // SAMPLE_WIDTH >= room:
                self._append(channel, pcm[: room * SAMPLE_WIDTH], far)
                self._stop(StopReason.MAX_LENGTH)
                return False
        self._append(channel, pcm, far)
        return self._stop_reason is None

    def _pad(self, channel: _Channel, samples: int, far: bool) -> None:
        """Silence for a gap, a second at a time so a long gap never sits in memory."""
        chunk = SAMPLE_RATE
        while samples > 0 and self._stop_reason is None:
            step = min(samples, chunk)
            if self.max_samples is not None:
                room = self.max_samples - channel.end(self._base)
                if step >= room:
                    self._append(channel, bytes(room * SAMPLE_WIDTH), far)
                    self._stop(StopReason.MAX_LENGTH)
                    return
            self._append(channel, bytes(step * SAMPLE_WIDTH), far)
            samples -= step

    def _append(self, channel: _Channel, pcm: bytes, far: bool) -> None:
        channel.pending += pcm
        if far and self.silence_limit is not None:
            self._track_silence(pcm)
            if self._stop_reason is not None:
                return
        if self._committable() >= self._flush_samples:
            self._commit(final=False)

    def _track_silence(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        powers = [float(p) for p in np.mean((samples[:whole] ** 2).reshape(-1, FRAME_SAMPLES), 1)]
        if whole < len(samples):
            powers.append(float(np.mean(samples[whole:] ** 2)))
        sizes = [FRAME_SAMPLES] * (whole // FRAME_SAMPLES) + (
            [len(samples) - whole] if whole < len(samples) else []
        )
        assert self.silence_limit is not None
        for power, size in zip(powers, sizes, strict=True):
            if power < self._silence_power:
                self._silent_run += size
                if self._silent_run >= self.silence_limit:
                    self._stop(StopReason.SILENCE)
                    return
            else:
                self._silent_run = 0

    def _stop(self, reason: StopReason) -> None:
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        logger.info("recording %s stopped: %s after %.2f s", self.path, reason, self.duration)
        self._finish()
        if self.on_stop is not None:
            self.on_stop(reason)

    # -- file ------------------------------------------------------------------

    def _committable(self) -> int:
        far_end = self._far.end(self._base)
        if self.channels == 1:
            return far_end - self._base
        near_end = self._near.end(self._base)
        aligned = min(far_end, near_end)
        ahead = max(far_end, near_end)
        return max(aligned, ahead - self._max_skew) - self._base

    def _commit(self, *, final: bool) -> None:
        count = self._committable()
        if final:
            count = max(self._far.end(self._base), self._near.end(self._base)) - self._base
        if count <= 0 and not final:
            return
        if count > 0:
            block = self._take(count)
            self._write_data(self._convert(block, final=False))
        if final and self._resampler is not None:
            self._write_data(self._convert(None, final=True))
        self._write_sizes()

    def _take(self, count: int) -> bytes:
        """Remove ``count`` samples per channel from the pending buffers, interleaved."""
        nbytes = count * SAMPLE_WIDTH
        far = self._take_channel(self._far, nbytes)
        self._base += count
        if self.channels == 1:
            return far
        near = self._take_channel(self._near, nbytes)
        out = np.empty(count * 2, dtype="<i2")
        out[0::2] = np.frombuffer(far, dtype="<i2")
        out[1::2] = np.frombuffer(near, dtype="<i2")
        return out.tobytes()

    @staticmethod
    def _take_channel(channel: _Channel, nbytes: int) -> bytes:
        data = bytes(channel.pending[:nbytes])
        del channel.pending[:nbytes]
        if len(data) < nbytes:
            data += bytes(nbytes - len(data))
        return data

    def _convert(self, block: bytes | None, *, final: bool) -> bytes:
        if self._resampler is None:
            return block or b""
        frame: av.AudioFrame | None = None
        if block is not None:
            layout = "mono" if self.channels == 1 else "stereo"
            samples = len(block) // (SAMPLE_WIDTH * self.channels)
            frame = av.AudioFrame(format="s16", layout=layout, samples=samples)
            frame.planes[0].update(block)
            frame.sample_rate = SAMPLE_RATE
        out = bytearray()
        for converted in self._resampler.resample(frame):
            size = converted.samples * SAMPLE_WIDTH * self.channels
            out += bytes(converted.planes[0])[:size]
        return bytes(out)

    def _open(self) -> int:
        ensure_private_dir(self.path.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
            self._pwrite_all(fd, _wav_header(self.channels, self.sample_rate, 0), 0)
        except OSError as exc:
            raise RecorderError(f"cannot create recording {self.path}: {exc}") from exc
        return fd

    def _write_data(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._pwrite_all(self._fd, data, HEADER_BYTES + self._data_bytes)
        except OSError as exc:
            raise RecorderError(f"cannot write recording {self.path}: {exc}") from exc
        self._data_bytes += len(data)

    def _write_sizes(self) -> None:
        try:
            os.pwrite(self._fd, struct.pack("<I", 36 + self._data_bytes), 4)
            os.pwrite(self._fd, struct.pack("<I", self._data_bytes), 40)
            if self._fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise RecorderError(f"cannot update recording header {self.path}: {exc}") from exc

    @staticmethod
    def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._commit(final=True)
        finally:
            os.close(self._fd)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            logger.warning("recording %s was never closed; closing it now", self.path)
            with contextlib.suppress(MediaError):
                self.close()


def convert(
    info: RecordingInfo, fmt: str = "mp3", *, bitrate: str | None = None, keep_wav: bool = False
) -> RecordingInfo:
    """Convert a finished WAV recording to ``mp3`` or ``ogg`` (Vorbis) with ffmpeg.

    The new file sits next to the WAV, is created 0600 before any audio goes
    into it, and the WAV is removed unless ``keep_wav``. Blocking (it runs
    ffmpeg): call it from a thread, not the event loop.
    """
    AudioSegment = audio_segment_class()
    codecs = {"mp3": ("libmp3lame", "64k"), "ogg": ("libvorbis", None)}
    if fmt not in codecs:
        raise RecorderError(f"cannot convert {info.path} to {fmt!r}: choose mp3 or ogg")
    codec, default_bitrate = codecs[fmt]
    target = info.path.with_suffix(f".{fmt}")
    try:
        segment = AudioSegment.from_wav(info.path)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb+") as out:
            segment.export(out, format=fmt, codec=codec, bitrate=bitrate or default_bitrate)
    except Exception as exc:  # pydub raises bare Exceptions and CouldntEncodeError
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecorderError(f"cannot convert {info.path} to {fmt}: {message}") from exc
    if not keep_wav:
        info.path.unlink(missing_ok=True)
    duration = len(segment) / 1000.0
    if math.isclose(duration, info.duration_seconds, abs_tol=0.002):
        duration = info.duration_seconds
    return RecordingInfo(
        path=target,
        duration_seconds=duration,
        size_bytes=target.stat().st_size,
        stop_reason=info.stop_reason,
        format=fmt,
        channels=info.channels,
        sample_rate=info.sample_rate,
    )
