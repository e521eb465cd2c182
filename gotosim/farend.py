"""gotosim's real far end: an aiortc peer per call that plays a scripted caller.

For every call, :class:`AiortcFarEnd` answers the device's SDP offer the way
GoTo's media servers do (``a=ice-lite``, ``a=setup:passive``, Opus and the
telephone-event formats that were offered, host candidates on the configured
addresses only), then plays the call's ``script``
(:class:`CallerScript`, format in docs/media-session.md): an audio file or silence, digits at
given media times as RFC 4733 events (sharing the audio's SSRC, sequence
numbers and SRTP, at 8000 or 48000 Hz) or as in-band tones mixed into the
audio, and a hang-up at a given time, reported through
``sim.far_end_hangup(call_id)``.

It also listens: what the caller hears is written to ``<heard_dir>/<call
id>.wav`` as it arrives and summarised in memory as one energy value per 20 ms.
:meth:`AiortcFarEnd.heard` returns a :class:`HeardReport`.

The far end's clock ("media time") is seconds since its first outgoing
frame; script times, the energy log and the digits sent all use it.

RFC 4733 payloads and DTMF tones are made here, not with the worker's
helpers, so a test through gotosim checks the worker's decoders against a
second implementation.

The module holds the script format, the caller track, one call's leg, the
heard report and the far end itself (about 700 lines): they change together.
If it grows, split it into a ``gotosim/farend/`` package along those lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import struct
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gotosim.media import FarEnd, FarEndError, FarEndFactory
from gotosim.model import SimCall
from worker.media import ice, sdp
from worker.media.audio import (
    FRAME_SAMPLES,
    FRAME_SECONDS,
    SAMPLE_RATE,
    SILENT_FRAME,
    MediaError,
    MonoConverter,
    RtpTimestamps,
    pcm_to_frame,
    rms_dbfs,
)
from worker.media.prompts import Prompt, load_prompt
from worker.media.recorder import RecordingInfo, WavRecorder
from worker.media.rtp_tap import RtpInjector, send_rfc4733

logger = logging.getLogger(__name__)

_KEYPAD = ("123A", "456B", "789C", "*0#D")
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_EVENT_CODES = "0123456789*#ABCD"


def event_payload(digit: str, duration: int, end: bool, volume: int) -> bytes:
    """RFC 4733 section 2.3: event code, E bit + volume, 16-bit duration."""
    return struct.pack("!BBH", _EVENT_CODES.index(digit), (0x80 if end else 0) | volume, duration)


def tone_samples(digit: str, seconds: float, level: float = 0.2) -> np.ndarray[Any, Any]:
    """The two DTMF sines of ``digit`` as float samples at 48 kHz, 5 ms fades."""
    row = next(i for i, keys in enumerate(_KEYPAD) if digit in keys)
    low, high = _ROWS[row], _COLUMNS[_KEYPAD[row].index(digit)]
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = level * 32767.0 * (np.sin(2 * math.pi * low * t) + np.sin(2 * math.pi * high * t))
    fade = min(240, len(t) // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave


# -- the script ---------------------------------------------------------------


class ScriptError(FarEndError):
    """A call's ``script`` JSON is not a valid caller script; the message names the key."""


Mode = Literal["rfc4733", "inband", "both"]


@dataclass(frozen=True)
class DigitCue:
    """Press ``digit`` at media time ``at`` for ``seconds``.

    ``mode``: ``rfc4733`` (telephone-events at ``clock_rate``), ``inband``
    (tones mixed into the audio) or ``both`` at once, as some gateways do.
    """

    at: float
    digit: str
    mode: Mode = "rfc4733"
    clock_rate: int = 8000
    seconds: float = 0.12


@dataclass(frozen=True)
class CallerScript:
    """What the simulated caller does; ``CallerScript.parse`` reads the JSON form."""

    audio: Path | None = None
    audio_at: float = 0.0
    loop_audio: bool = False
    digits: tuple[DigitCue, ...] = ()
    hangup_at: float | None = None
    record_seconds: float | None = 3600.0

    @classmethod
    def parse(cls, raw: Any, *, root: Path | None = None) -> CallerScript:
        """Validate the JSON form; ``None`` is a silent caller who never hangs up."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ScriptError(f"script: expected a JSON object, got {raw!r}")
        unknown = set(raw) - {"audio", "audio_at", "loop_audio", "digits", "hangup_at", "record"}
        if unknown:
            raise ScriptError(
                f"script: unknown keys {sorted(unknown)}; allowed: audio, audio_at, loop_audio, "
                "digits, hangup_at, record"
            )
        audio = raw.get("audio")
        path: Path | None = None
        if audio is not None:
            if not isinstance(audio, str) or not audio:
                raise ScriptError(f"script.audio: expected a file path or null, got {audio!r}")
            path = Path(audio)
            if not path.is_absolute() and root is not None:
                path = root / path
            if not path.is_file():
                raise ScriptError(f"script.audio: no such file {path}")
        record = raw.get("record", 3600.0)
        if record is not None and not _number(record, minimum=0.0, strict=True):
            raise ScriptError(f"script.record: expected seconds > 0 or null, got {record!r}")
        loop_audio = raw.get("loop_audio", False)
        if not isinstance(loop_audio, bool):
            raise ScriptError(f"script.loop_audio: expected true or false, got {loop_audio!r}")
        digits = raw.get("digits", [])
        if not isinstance(digits, list):
            raise ScriptError(f"script.digits: expected a list, got {digits!r}")
        hangup_at = raw.get("hangup_at")
        if hangup_at is not None and not _number(hangup_at, minimum=0.0):
            raise ScriptError(f"script.hangup_at: expected seconds >= 0 or null, got {hangup_at!r}")
        audio_at = raw.get("audio_at", 0.0)
        if not _number(audio_at, minimum=0.0):
            raise ScriptError(f"script.audio_at: expected seconds >= 0, got {audio_at!r}")
        return cls(
            audio=path,
            audio_at=float(audio_at),
            loop_audio=loop_audio,
            digits=tuple(_cue(i, item) for i, item in enumerate(digits)),
            hangup_at=None if hangup_at is None else float(hangup_at),
            record_seconds=None if record is None else float(record),
        )


def _number(value: Any, *, minimum: float, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return value > minimum if strict else value >= minimum


def _cue(index: int, raw: Any) -> DigitCue:
    where = f"script.digits[{index}]"
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{where}: expected an object like {{'at': 1.5, 'digit': '2'}}")
    unknown = set(raw) - {"at", "digit", "mode", "clock_rate", "seconds"}
    if unknown:
        raise ScriptError(f"{where}: unknown keys {sorted(unknown)}")
    at, digit = raw.get("at"), raw.get("digit")
    mode = raw.get("mode", "rfc4733")
    clock_rate = raw.get("clock_rate", 8000)
    seconds = raw.get("seconds", 0.12)
    if not _number(at, minimum=0.0):
        raise ScriptError(f"{where}.at: expected media seconds >= 0, got {at!r}")
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in _EVENT_CODES:
        raise ScriptError(f"{where}.digit: expected one of {_EVENT_CODES}, got {digit!r}")
    if mode not in ("rfc4733", "inband", "both"):
        raise ScriptError(f"{where}.mode: expected 'rfc4733', 'inband' or 'both', got {mode!r}")
    if clock_rate not in (8000, 48000):
        raise ScriptError(f"{where}.clock_rate: expected 8000 or 48000, got {clock_rate!r}")
    if not _number(seconds, minimum=0.04) or seconds > 1.0:
        raise ScriptError(f"{where}.seconds: expected 0.04 to 1.0, got {seconds!r}")
    assert isinstance(at, int | float) and isinstance(seconds, int | float)
    return DigitCue(float(at), digit.upper(), mode, int(clock_rate), float(seconds))


# -- what the caller heard -----------------------------------------------------


@dataclass(frozen=True)
class SentDigit:
    """A digit the caller pressed: when (far-end media time), how, and its RTP timestamp."""

    media_time: float
    digit: str
    mode: Mode
    clock_rate: int | None
    rtp_timestamp: int | None


@dataclass(frozen=True)
class HeardReport:
    """What the caller of one call heard and did; times are far-end media seconds."""

    call_id: str
    wav_path: Path
    connected: bool
    closed: bool
    frames_sent: int
    frames_heard: int
    energy: tuple[tuple[float, float], ...]
    """(media time, dBFS) per 20 ms frame heard; -120 stands for digital silence."""
    digits_sent: tuple[SentDigit, ...]
    notes: tuple[tuple[float, str], ...]
    recording: RecordingInfo | None

    def sound(
        self, threshold_dbfs: float = -45.0, min_gap: float = 0.2
    ) -> list[tuple[float, float]]:
        """Stretches (start, end) where what was heard was louder than ``threshold_dbfs``."""
        spans: list[tuple[float, float]] = []
        for at, level in self.energy:
            if level < threshold_dbfs:
                continue
            if spans and at - spans[-1][1] <= min_gap:
                spans[-1] = (spans[-1][0], at + FRAME_SECONDS)
            else:
                spans.append((at, at + FRAME_SECONDS))
        return spans

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "wav": str(self.wav_path),
            "connected": self.connected,
            "closed": self.closed,
            "frames_sent": self.frames_sent,
            "frames_heard": self.frames_heard,
            "seconds_heard": round(self.frames_heard * FRAME_SECONDS, 3),
            "sound": [[round(a, 3), round(b, 3)] for a, b in self.sound()],
            "energy": [[round(t, 3), round(level, 1)] for t, level in self.energy],
            "digits_sent": [
                {
                    "at": round(d.media_time, 3),
                    "digit": d.digit,
                    "mode": d.mode,
                    "clock_rate": d.clock_rate,
                    "rtp_timestamp": d.rtp_timestamp,
                }
                for d in self.digits_sent
            ],
            "notes": [[round(t, 3), text] for t, text in self.notes],
        }


class HeardLog:
    """The in-memory side of listening: energy per frame, digits sent, notes."""

    def __init__(self) -> None:
        self._times = array("d")
        self._levels = array("f")
        self.digits: list[SentDigit] = []
        self.notes: list[tuple[float, str]] = []
        self.info: RecordingInfo | None = None

    def add(self, at: float, pcm: bytes) -> None:
        level = rms_dbfs(pcm)
        self._times.append(at)
        self._levels.append(max(level, -120.0))

    def note(self, at: float, text: str) -> None:
        self.notes.append((at, text))

    def report(
        self, call_id: str, path: Path, *, connected: bool, closed: bool, frames_sent: int
    ) -> HeardReport:
        return HeardReport(
            call_id=call_id,
            wav_path=path,
            connected=connected,
            closed=closed,
            frames_sent=frames_sent,
            frames_heard=len(self._times),
            energy=tuple(zip(self._times, (float(v) for v in self._levels), strict=True)),
            digits_sent=tuple(self.digits),
            notes=tuple(self.notes),
            recording=self.info,
        )


class SimHooks(Protocol):
    """What the far end calls back on the simulator (:class:`gotosim.simulator.Simulator`)."""

    def far_end_hangup(self, call_id: str, reason: str | None = None) -> Any: ...

    def log_call_event(self, call_id: str, event: str, **detail: Any) -> None: ...


EventSink = Callable[[str, str, dict[str, Any]], None]
"""Receives (call id, event name, detail) for each thing the far end does."""


class CallerTrack(MediaStreamTrack):
    """The caller's voice: script audio or silence, in-band tones mixed in, paced on a clock.

    Frame *i* goes out at ``epoch + i * 20 ms``; ``on_time(t)`` is called
    with each frame's media time before it is built, so cues fire on media time.
    """

    kind = "audio"

    def __init__(
        self,
        audio: Prompt | None,
        script: CallerScript,
        on_time: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._audio = audio.frames if audio is not None else ()
        self._script = script
        self._on_time = on_time
        self._clock = clock
        self.epoch: float | None = None
        self.frames_sent = 0
        self._tones: list[tuple[int, np.ndarray[Any, Any]]] = []

    @property
    def media_time(self) -> float:
        return self.frames_sent * FRAME_SECONDS

    def add_tone(self, digit: str, seconds: float) -> None:
        """Mix ``digit``'s tones into the audio from the next frame on."""
        self._tones.append((self.frames_sent * FRAME_SAMPLES, tone_samples(digit, seconds)))

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self.epoch is None:
            self.epoch = self._clock()
        else:
            delay = self.epoch + self.frames_sent * FRAME_SECONDS - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.readyState != "live":
                raise MediaStreamError
        self._on_time(self.media_time)
        pcm = self._next_pcm()
        frame = pcm_to_frame(pcm, self.frames_sent * FRAME_SAMPLES)
        self.frames_sent += 1
        return frame

    def _next_pcm(self) -> bytes:
        index = self.frames_sent - round(self._script.audio_at / FRAME_SECONDS)
        pcm = SILENT_FRAME
        if self._audio and index >= 0:
            if self._script.loop_audio:
                pcm = self._audio[index % len(self._audio)]
            elif index < len(self._audio):
                pcm = self._audio[index]
        if not self._tones:
            return pcm
        start = self.frames_sent * FRAME_SAMPLES
        mixed = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        still: list[tuple[int, np.ndarray[Any, Any]]] = []
        for origin, tone in self._tones:
            part = tone[start - origin : start - origin + FRAME_SAMPLES]
            mixed[: len(part)] += part
            if start - origin + FRAME_SAMPLES < len(tone):
                still.append((origin, tone))
        self._tones = still
        return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


class FarEndLeg:
    """One answered call: its peer connection, caller track, injector and listener."""

    def __init__(
        self,
        call_id: str,
        script: CallerScript,
        audio: Prompt | None,
        heard_path: Path,
        *,
        ice_servers: Sequence[str],
        candidate_addresses: Sequence[str],
        on_hangup: Callable[[str], Any],
        on_event: EventSink | None = None,
    ) -> None:
        self.call_id = call_id
        self.script = script
        self.candidate_addresses = tuple(candidate_addresses)
        self.pc = RTCPeerConnection(ice.rtc_configuration(ice_servers))
        self.track = CallerTrack(audio, script, self._on_media_time)
        self.recorder = WavRecorder(heard_path, max_seconds=script.record_seconds)
        self.log = HeardLog()
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self._on_hangup = on_hangup
        self._on_event = on_event
        self._cues = sorted(script.digits, key=lambda cue: cue.at)
        self._hangup_requested = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._injector: RtpInjector | None = None
        self._events: dict[int, int] = {}
        self._closing: asyncio.Task[None] | None = None
        self.answer_sdp: str | None = None
        self.pc.on("connectionstatechange", self._on_state)

    def media_time(self) -> float:
        return 0.0 if self.track.epoch is None else time.monotonic() - self.track.epoch

    async def answer(self, offer_sdp: str) -> str:
        offered = sdp.telephone_events(offer_sdp)
        self._events = {event.clock_rate: event.payload_type for event in offered}
        for cue in self._cues:
            if cue.mode != "inband" and cue.clock_rate not in self._events:
                raise FarEndError(
                    f"call {self.call_id}: the script sends digit {cue.digit!r} as RFC 4733 at "
                    f"{cue.clock_rate} Hz, but the offer has telephone-event only at "
                    f"{sorted(self._events) or 'no rate'}"
                )
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        transceiver = self.pc.getTransceivers()[0]
        self.pc.addTrack(self.track)
        answer = await self.pc.createAnswer()
        passive = sdp.set_setup_role(answer.sdp, "passive")
        with ice.pinned_addresses(self.candidate_addresses):
            await self.pc.setLocalDescription(RTCSessionDescription(passive, "answer"))
        text = sdp.add_ice_lite(self.pc.localDescription.sdp)
        text = sdp.add_telephone_events(text, offered)
        self._injector = RtpInjector(transceiver.sender)
        self._injector.attach(transceiver.sender.transport)
        if transceiver.receiver.track is not None:
            self._spawn(self._listen(transceiver.receiver.track))
        self.answer_sdp = text
        return text

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
            self._event("media-connected")
        elif state in ("failed", "closed"):
            self._event(f"media-{state}")
            if state == "failed":
                self._request_hangup("connection failed")

    def _on_media_time(self, now: float) -> None:
        while self._cues and self._cues[0].at <= now:
            self._send_digit(self._cues.pop(0), now)
        if self.script.hangup_at is not None and now >= self.script.hangup_at:
            self._request_hangup("script")

    def _send_digit(self, cue: DigitCue, now: float) -> None:
        if cue.mode in ("inband", "both"):
            self.track.add_tone(cue.digit, cue.seconds)
            self.log.digits.append(SentDigit(now, cue.digit, "inband", None, None))
            self._event("caller-digit", digit=cue.digit, mode="inband")
        if cue.mode in ("rfc4733", "both"):
            self._spawn(self._send_event(cue, now))

    async def _send_event(self, cue: DigitCue, now: float) -> None:
        assert self._injector is not None
        timestamp = await send_rfc4733(
            self._injector,
            event_payload,
            digit=cue.digit,
            payload_type=self._events[cue.clock_rate],
            clock_rate=cue.clock_rate,
            seconds=cue.seconds,
        )
        self.log.digits.append(SentDigit(now, cue.digit, "rfc4733", cue.clock_rate, timestamp))
        self._event("caller-digit", digit=cue.digit, mode="rfc4733", clockRate=cue.clock_rate)

    def _request_hangup(self, why: str) -> None:
        if self._hangup_requested:
            return
        self._hangup_requested = True
        self._event("caller-hangup", why=why)
        self._spawn(self._hangup())

    async def _hangup(self) -> None:
        result = self._on_hangup(self.call_id)
        if inspect.isawaitable(result):
            await result

    async def _listen(self, track: MediaStreamTrack) -> None:
        converter = MonoConverter()
        timestamps = RtpTimestamps()
        anchor: float | None = None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pcm = converter.convert(frame)
                pts = timestamps.unwrap(frame.pts or 0)
                if anchor is None:
                    anchor = self.media_time() - pts / SAMPLE_RATE
                at = anchor + pts / SAMPLE_RATE
                self.log.add(at, pcm)
                if not self.recorder.stopped:
                    try:
                        self.recorder.write(pcm, max(0.0, at))
                    except MediaError as exc:  # keep listening: an unread track grows
                        self._event("far-end-error", error=f"recording stopped: {exc}")
                        self.log.info = self.recorder.close()

    def _event(self, name: str, **detail: Any) -> None:
        at = round(self.media_time(), 3)
        self.log.note(at, " ".join([name, *(f"{k}={v}" for k, v in detail.items())]))
        if self._on_event is not None:
            try:
                self._on_event(self.call_id, name, {"mediaTime": at, **detail})
            except Exception:
                logger.exception("far end of call %s: event sink failed", self.call_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("far end of call %s: %s", self.call_id, task.exception())
            self._event("far-end-error", error=str(task.exception()))

    async def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        try:
            await self.pc.close()
        finally:
            self.track.stop()
            if self._injector is not None:
                self._injector.detach()
            self.log.info = self.recorder.close()
            self.closed.set()

    def report(self) -> HeardReport:
        return self.log.report(
            self.call_id,
            self.recorder.path,
            connected=self.connected.is_set(),
            closed=self.closed.is_set(),
            frames_sent=self.track.frames_sent,
        )


class AiortcFarEnd:
    """A :class:`~gotosim.media.FarEnd` that answers with real media; see the module docstring."""

    def __init__(
        self,
        heard_dir: str | Path,
        *,
        sim: SimHooks | None = None,
        candidate_addresses: Sequence[str] = ("127.0.0.1",),
        ice_servers: Sequence[str] = (),
        script_root: str | Path | None = None,
        keep_finished: int = 100,
    ) -> None:
        self.heard_dir = Path(heard_dir)
        self.keep_finished = keep_finished
        self.sim = sim
        self.candidate_addresses = tuple(candidate_addresses)
        self.ice_servers = tuple(ice_servers)
        self.script_root = Path(script_root) if script_root is not None else None
        self.legs: dict[str, FarEndLeg] = {}
        self._audio: dict[Path, Prompt] = {}

    async def answer(self, call: SimCall, offer_sdp: str) -> str:
        try:
            script = CallerScript.parse(call.script, root=self.script_root)
        except ScriptError as exc:
            raise FarEndError(f"call {call.id}: {exc}") from exc
        previous = self.legs.pop(call.id, None)
        if previous is not None:  # a re-offer: start over with a fresh peer
            await previous.close()
        audio = await self._load(script.audio) if script.audio is not None else None
        leg = FarEndLeg(
            call.id,
            script,
            audio,
            self.heard_dir / f"{call.id}.wav",
            ice_servers=self.ice_servers,
            candidate_addresses=self.candidate_addresses,
            on_hangup=self._hangup_requested,
            on_event=self._log_event,
        )
        self.legs[call.id] = leg
        self._forget_old_legs()
        try:
            return await leg.answer(offer_sdp)
        except FarEndError:
            await leg.close()
            raise
        except Exception as exc:
            await leg.close()
            raise FarEndError(f"call {call.id}: cannot answer the offer: {exc}") from exc

    def _forget_old_legs(self) -> None:
        """Keep the reports of the ``keep_finished`` most recent finished calls only."""
        finished = [call_id for call_id, leg in self.legs.items() if leg.closed.is_set()]
        for call_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.legs[call_id]

    async def _load(self, path: Path) -> Prompt:
        cached = self._audio.get(path)
        if cached is None:
            loop = asyncio.get_running_loop()
            try:
                cached = await loop.run_in_executor(None, load_prompt, path)
            except Exception as exc:
                raise FarEndError(f"cannot load the script's audio {path}: {exc}") from exc
            self._audio[path] = cached
        return cached

    def _hangup_requested(self, call_id: str) -> Any:
        if self.sim is not None:
            return self.sim.far_end_hangup(call_id)
        leg = self.legs.get(call_id)
        return leg.close() if leg is not None else None

    def _log_event(self, call_id: str, event: str, detail: dict[str, Any]) -> None:
        if self.sim is not None:
            self.sim.log_call_event(call_id, event, **detail)

    async def hangup(self, call: SimCall) -> None:
        leg = self.legs.get(call.id)
        if leg is not None:
            await leg.close()

    async def close(self) -> None:
        await asyncio.gather(*(leg.close() for leg in self.legs.values()))

    def leg(self, call_id: str) -> FarEndLeg:
        leg = self.legs.get(call_id)
        if leg is None:
            raise KeyError(f"the far end has no call {call_id!r}")
        return leg

    def heard(self, call_id: str) -> HeardReport:
        """What the caller of ``call_id`` heard and when (``KeyError`` for an unknown call)."""
        return self.leg(call_id).report()


def aiortc_far_end_factory(
    heard_dir: str | Path,
    *,
    candidate_addresses: Sequence[str] = ("127.0.0.1",),
    ice_servers: Sequence[str] = (),
    script_root: str | Path | None = None,
) -> FarEndFactory:
    """A :data:`~gotosim.media.FarEndFactory` making an :class:`AiortcFarEnd` per simulator."""

    def factory(sim: Any) -> FarEnd:
        return AiortcFarEnd(
            heard_dir,
            sim=sim,
            candidate_addresses=candidate_addresses,
            ice_servers=ice_servers,
            script_root=script_root,
        )

    return factory


__all__ = [
    "AiortcFarEnd",
    "CallerTrack",
    "FarEndLeg",
    "aiortc_far_end_factory",
    "event_payload",
    "tone_samples",
]
