"""DTMF: key presses from RFC 4733 telephone-events or from tones in the audio.

Both detectors give the same :class:`DigitEvent`, once per key press, stamped
with the media time at which the press began (as near as each can tell).

* :class:`Rfc4733Decoder` parses telephone-event payloads taken out of the RTP
  stream (before aiortc's jitter buffer, which would hand them to the audio
  decoder and kill it). A press is one event: the packets that carry it share
  an SSRC and an RTP timestamp, so those are the deduplication key. The digit
  is emitted on the **first** packet of an event, start or end, which gives
  barge-in the earliest signal and survives lost end packets; the end packets
  (sent three times) are then swallowed. Chromium, with telephone-event/8000
  negotiated next to Opus, sends only the three end packets, stamped on the
  48 kHz audio clock; that works the same way, but its duration field is not
  trustworthy, nor is any duration at emission time (it is what the first
  packet said). Long presses that overflow the 16-bit duration continue under
  a new timestamp (RFC 4733 2.5.1.3); those continuation segments are not
  counted as new presses.
* :class:`InbandDetector` finds the tones in decoded 48 kHz audio: 20 ms
  windows every 10 ms, projected onto the eight DTMF frequencies at once with
  numpy; a window holds a digit when its two tones carry most of its energy,
  are loud enough, within the allowed twist, and dominate the other tones of
  their group. Two consecutive windows confirm a digit (a 40 ms tone is
  enough); it is emitted once and re-armed only after the tone stops.

:func:`encode_rfc4733` and :func:`dtmf_tone` make the same signals, for a far
end that sends them.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from worker.media.audio import SAMPLE_RATE, MediaError

DIGITS = "0123456789*#ABCD"
"""RFC 4733 event codes 0-15, in order."""
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")

Source = Literal["rfc4733", "inband"]


class DtmfError(MediaError, ValueError):
    """A digit or a payload that is not DTMF."""


@dataclass(frozen=True)
class DigitEvent:
    """A key press, from either source."""

    digit: str
    media_time: float
    """Seconds on the receiving call's media clock when the press began."""
    source: Source
    duration: float
    """Seconds of the press known when it was emitted (see the module docstring)."""


def _frequencies(digit: str) -> tuple[float, float]:
    for row, keys in enumerate(KEYPAD):
        column = keys.find(digit.upper())
        if column >= 0 and len(digit) == 1:
            return ROW_HZ[row], COLUMN_HZ[column]
    raise DtmfError(f"{digit!r} is not a DTMF digit; expected one of {DIGITS}")


# -- RFC 4733 ---------------------------------------------------------------


@dataclass(frozen=True)
class TelephoneEvent:
    """One parsed telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int
    """In RTP clock units."""

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None


def parse_rfc4733(payload: bytes) -> TelephoneEvent:
    """Parse the 4-byte telephone-event payload (extra bytes, as in redundancy, are ignored)."""
    if len(payload) < 4:
        raise DtmfError(f"telephone-event payload needs 4 bytes, got {len(payload)}")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(
        event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration
    )


def encode_rfc4733(event_digit: str, duration_samples: int, end: bool, volume: int = 10) -> bytes:
    """The 4-byte payload for ``event_digit``; ``duration_samples`` in the RTP clock's units."""
    code = DIGITS.find(event_digit.upper()) if len(event_digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"{event_digit!r} is not a DTMF digit; expected one of {DIGITS}")
    if not 0 <= duration_samples <= 0xFFFF:
        raise DtmfError(f"duration {duration_samples} does not fit 16 bits; split the event")
    if not 0 <= volume <= 63:
        raise DtmfError(f"volume is 0-63 (-dBm0), got {volume}")
    return struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration_samples)


def rfc4733_payloads(
    digit: str,
    seconds: float,
    clock_rate: int,
    *,
    packet_seconds: float = 0.02,
    end_repeats: int = 3,
    volume: int = 10,
) -> list[bytes]:
    """The payloads a sender emits for one press, all under one RTP timestamp.

    Progress packets every ``packet_seconds`` with a growing duration, then
    the final end packet ``end_repeats`` times. The first carries the marker bit.
    """
    total = round(seconds * clock_rate)
    step = round(packet_seconds * clock_rate)
    if total <= 0 or step <= 0:
        raise DtmfError(f"a press needs a positive length, got {seconds} s")
    if total > 0xFFFF:
        raise DtmfError(f"{seconds} s at {clock_rate} Hz overflows the 16-bit duration")
    payloads = [encode_rfc4733(digit, d, False, volume) for d in range(step, total, step)]
    payloads += [encode_rfc4733(digit, total, True, volume)] * end_repeats
    return payloads


class Rfc4733Decoder:
    """Turn telephone-event payloads into digit events, once per press. Pure: no I/O."""

    def __init__(self, clock_rate: int, *, memory: int = 64) -> None:
        if clock_rate not in (8000, 16000, 48000):
            raise DtmfError(f"telephone-event clock rate {clock_rate} not 8000, 16000 or 48000")
        self.clock_rate = clock_rate
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)
        self._seen_set: set[tuple[int, int]] = set()
        # per SSRC: (event code, timestamp, last duration, ended) of the latest event
        self._latest: dict[int, tuple[int, int, int, bool]] = {}

    def feed(
        self, ssrc: int, rtp_timestamp: int, payload: bytes, arrival_media_time: float
    ) -> DigitEvent | None:
        """One telephone-event packet; a :class:`DigitEvent` if it starts a new press."""
        parsed = parse_rfc4733(payload)
        key = (ssrc, rtp_timestamp)
        latest = self._latest.get(ssrc)
        if key in self._seen_set:
            if latest is not None and latest[1] == rtp_timestamp:
                ended = latest[3] or parsed.end
                self._latest[ssrc] = (parsed.event, rtp_timestamp, parsed.duration, ended)
            return None
        self._remember(key)
        continuation = (
            latest is not None
            and not latest[3]
            and latest[0] == parsed.event
            and (rtp_timestamp - latest[1]) % (1 << 32) in range(latest[2], latest[2] + 1 + 0xFFFF)
            and latest[2] >= 0xFFFF - self.clock_rate // 10
        )
        self._latest[ssrc] = (parsed.event, rtp_timestamp, parsed.duration, parsed.end)
        digit = parsed.digit
        if continuation or digit is None:
            return None
        return DigitEvent(
            digit=digit,
            media_time=arrival_media_time,
            source="rfc4733",
            duration=parsed.duration / self.clock_rate,
        )

    def _remember(self, key: tuple[int, int]) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(key)
        self._seen_set.add(key)


# -- in-band ------------------------------------------------------------------


def dtmf_tone(
    digit: str, seconds: float, sample_rate: int = SAMPLE_RATE, amplitude: float = 0.25
) -> bytes:
    """Mono s16 PCM of ``digit``'s two tones, each at ``amplitude`` of full scale."""
    low, high = _frequencies(digit)
    count = round(seconds * sample_rate)
    t = np.arange(count, dtype=np.float64) / sample_rate
    wave = amplitude * (np.sin(2 * math.pi * low * t) + np.sin(2 * math.pi * high * t))
    return np.clip(wave * 32767.0, -32768, 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class InbandThresholds:
    """Tuning of :class:`InbandDetector`; the defaults survive Opus and reject speech."""

    min_level_dbfs: float = -36.0
    """Each of the two tones must be at least this loud (RMS)."""
    min_tone_share: float = 0.75
    """The two tones' share of the window's energy."""
    max_twist_db: float = 8.0
    """Largest level difference between the row and the column tone."""
    min_dominance_db: float = 10.0
    """How far each tone must stand above the others of its group."""


class InbandDetector:
    """Find DTMF tones in mono s16 PCM; ``feed`` returns each press once."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        *,
        window_seconds: float = 0.02,
        hop_seconds: float = 0.01,
        confirm_windows: int = 2,
        release_windows: int = 2,
        thresholds: InbandThresholds | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.window = round(window_seconds * sample_rate)
        self.hop = round(hop_seconds * sample_rate)
        self.confirm_windows = confirm_windows
        self.release_windows = release_windows
        self.thresholds = thresholds or InbandThresholds()
        t = np.arange(self.window, dtype=np.float64) / sample_rate
        frequencies = np.array(ROW_HZ + COLUMN_HZ)
        phase = 2 * math.pi * np.outer(t, frequencies)
        # window-by-8 basis: cos and sin side by side, one matrix product per batch
        self._basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
        self._pending = np.zeros(0, dtype=np.float64)
        self._pending_start = 0  # sample index of _pending[0] since the first feed
        self._time_origin: float | None = None
        self._candidate: str | None = None
        self._candidate_run = 0
        self._candidate_start = 0
        self._active: str | None = None
        self._quiet_run = 0
        threshold = self.thresholds
        self._min_power = (10 ** (threshold.min_level_dbfs / 10.0)) * 32768.0**2
        self._twist = 10 ** (threshold.max_twist_db / 10.0)
        self._dominance = 10 ** (threshold.min_dominance_db / 10.0)

    def reset(self) -> None:
        """Forget buffered audio and any tone in progress."""
        self._pending = np.zeros(0, dtype=np.float64)
        self._candidate, self._candidate_run, self._active, self._quiet_run = None, 0, None, 0

    def feed(self, pcm: bytes, media_time: float) -> list[DigitEvent]:
        """Audio that starts at ``media_time``; the presses confirmed in it."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if self._time_origin is None:
            self._time_origin = media_time
        start = round((media_time - self._time_origin) * self.sample_rate)
        expected = self._pending_start + len(self._pending)
        if start != expected and abs(start - expected) > self.hop:
            # a gap (lost packets) or a jump: start over at this audio
            self._pending = np.zeros(0, dtype=np.float64)
            self._pending_start = start
        buffer = np.concatenate([self._pending, samples])
        count = 0 if len(buffer) < self.window else 1 + (len(buffer) - self.window) // self.hop
        events: list[DigitEvent] = []
        if count:
            windows = np.lib.stride_tricks.sliding_window_view(buffer, self.window)[:: self.hop]
            windows = windows[:count]
            digits = self._classify(windows)
            for offset, digit in enumerate(digits):
                event = self._step(digit, self._pending_start + offset * self.hop)
                if event is not None:
                    events.append(event)
        consumed = count * self.hop
        self._pending = buffer[consumed:].copy()
        self._pending_start += consumed
        return events

    def _classify(self, windows: np.ndarray) -> list[str | None]:
        """The digit each window holds, or None; vectorised over all windows."""
        projection = windows @ self._basis
        half = self.window / 2.0
        # power of each tone as mean square of the matching sinusoid
        power = (projection[:, :8] ** 2 + projection[:, 8:] ** 2) / (half * half) / 2.0
        energy = np.mean(windows * windows, axis=1)
        rows, columns = power[:, :4], power[:, 4:]
        row_best = np.argmax(rows, axis=1)
        column_best = np.argmax(columns, axis=1)
        index = np.arange(len(windows))
        row_power = rows[index, row_best]
        column_power = columns[index, column_best]
        row_second = np.sort(rows, axis=1)[:, -2]
        column_second = np.sort(columns, axis=1)[:, -2]
        threshold = self.thresholds
        ok = (
            (row_power >= self._min_power)
            & (column_power >= self._min_power)
            & (row_power + column_power >= threshold.min_tone_share * energy)
            & (row_power <= column_power * self._twist)
            & (column_power <= row_power * self._twist)
            & (row_power >= row_second * self._dominance)
            & (column_power >= column_second * self._dominance)
        )
        return [
            KEYPAD[int(r)][int(c)] if good else None
            for r, c, good in zip(row_best, column_best, ok, strict=True)
        ]

    def _step(self, digit: str | None, window_start: int) -> DigitEvent | None:
        if digit is not None and digit == self._active:
            self._quiet_run = 0
            return None
        if self._active is not None:
            self._quiet_run += 1
            if self._quiet_run < self.release_windows and digit is None:
                return None
            self._active = None
        if digit is None:
            self._candidate, self._candidate_run = None, 0
            return None
        if digit != self._candidate:
            self._candidate, self._candidate_run, self._candidate_start = digit, 0, window_start
        self._candidate_run += 1
        if self._candidate_run < self.confirm_windows:
            return None
        self._active, self._quiet_run = digit, 0
        self._candidate, self._candidate_run = None, 0
        assert self._time_origin is not None
        began = self._candidate_start / self.sample_rate
        seen = (window_start + self.window - self._candidate_start) / self.sample_rate
        return DigitEvent(digit, self._time_origin + began, "inband", seen)
