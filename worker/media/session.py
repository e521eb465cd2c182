"""One call's media: an aiortc peer connection, as a flow needs it.

The worker is always the SDP offerer::

    session = CallSession(MediaConfig.from_settings(settings), call_id=call_id)
    offer = await session.create_offer()        # full SDP, candidates included
    answer = await goto.answer_call(call_id, offer)
    await session.accept_answer(answer)         # GoTo: ice-lite, setup:passive
    await session.wait_connected()
    session.playback.play(prompts.get("menu"))
    async with asyncio.timeout(5):
        digit = await session.digits.get()
    await session.close()

What it does beyond aiortc:

- candidates and ICE servers come from settings through :mod:`worker.media.ice`;
- the offer lists Opus as payload 111 and telephone-event/8000 (126) and
  /48000 (110) (:mod:`worker.media.sdp`); telephone-event packets are taken out
  before aiortc's jitter buffer (:mod:`worker.media.rtp_tap`) and decoded;
- far-end audio is always read (an unread track grows without bound), mixed
  to mono, fed to the in-band DTMF detector, the recorder and any listener;
- digits from RFC 4733 and from in-band tones become one stream of
  :class:`~worker.media.dtmf.DigitEvent`, one per key press even when a
  gateway sends both; with ``barge_in`` on, a digit stops the prompt at once;
- ``close()`` is quick, idempotent and safe to call from many tasks at once.

**Media time.** Every timestamp a session hands out (digit events, audio
listeners, ``media_time()``) is on one clock: the outgoing media clock, the
seconds of audio the playback track has sent, which is also what
:class:`~worker.media.playback.Playback` ``started_at``/``stopped_at`` use.
So "the prompt stopped 12 ms after the key press began" is
``playback.stopped_at - digit.media_time``. It is a media clock, not a wall
clock: when the event loop falls behind, it falls behind with the audio.

- An RFC 4733 digit is stamped with the media time at which its first packet
  arrived; barge-in on it takes effect at that same media time.
- Received audio is placed by its RTP timestamps: stream position plus an
  offset, the smallest ``media_time() - position`` seen so far (the
  least-delayed frame), so a late frame never moves the far end's audio
  earlier than it could have been heard. In-band digits are the detector's
  press-start time on that stream, moved by the offset current at detection.
- Recordings are laid out on the stream position alone (lost packets become
  silence), starting where the recording was started on the media clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from worker.config import Settings
from worker.media import ice, sdp
from worker.media.audio import (
    SAMPLE_RATE,
    SILENT_FRAME,
    MediaError,
    MonoConverter,
    RtpTimestamps,
)
from worker.media.dtmf import DigitEvent, InbandDetector, Rfc4733Decoder
from worker.media.playback import FrameInfo, PlaybackTrack
from worker.media.recorder import RecordingInfo, WavRecorder
from worker.media.rtp_tap import EventTap

logger = logging.getLogger(__name__)

AudioListener = Callable[[bytes, float], None]
DigitListener = Callable[[DigitEvent], None]


class SessionError(MediaError):
    """A call session was used in the wrong state, or its connection failed."""


class SessionState(StrEnum):
    NEW = "NEW"
    OFFERED = "OFFERED"
    ANSWERED = "ANSWERED"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class MediaConfig:
    """What a session is configured with; see :meth:`from_settings`."""

    ice_servers: tuple[str, ...] = ()
    candidate_addresses: tuple[str, ...] = ()
    telephone_events: tuple[sdp.TelephoneEvent, ...] = sdp.DEFAULT_EVENTS
    inband_dtmf: bool = True
    digit_merge_seconds: float = 0.5
    """An RFC 4733 and an in-band report of the same digit this close are one press."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaConfig:
        return cls(
            ice_servers=settings.ice_servers, candidate_addresses=settings.candidate_addresses
        )


class DigitMerger:
    """Pure rule: drop a digit that another source already reported for the same press."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._last: dict[str, DigitEvent] = {}

    def accept(self, event: DigitEvent) -> bool:
        previous = self._last.get(event.digit)
        if (
            previous is not None
            and previous.source != event.source
            and abs(event.media_time - previous.media_time) <= self.window
        ):
            return False
        self._last[event.digit] = event
        return True


class DigitStream:
    """The call's key presses in order: a type-ahead buffer a flow reads from."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DigitEvent] = asyncio.Queue()
        self.history: list[DigitEvent] = []

    def _put(self, event: DigitEvent) -> None:
        self.history.append(event)
        self._queue.put_nowait(event)

    async def get(self) -> DigitEvent:
        """The next unread digit (wrap in ``asyncio.timeout`` to bound the wait)."""
        return await self._queue.get()

    def get_nowait(self) -> DigitEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def clear(self) -> list[DigitEvent]:
        """Drop (and return) the digits typed ahead and not read yet."""
        dropped = []
        while not self._queue.empty():
            dropped.append(self._queue.get_nowait())
        return dropped

    def __aiter__(self) -> AsyncIterator[DigitEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DigitEvent]:
        while True:
            yield await self._queue.get()


class CallSession:
    """One call's peer connection, prompts out, audio and digits in. See the module docstring."""

    def __init__(
        self,
        config: MediaConfig,
        *,
        call_id: str = "",
        playback: PlaybackTrack | None = None,
        barge_in: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.call_id = call_id
        self.barge_in = barge_in
        self.state = SessionState.NEW
        self.pc = RTCPeerConnection(ice.rtc_configuration(config.ice_servers))
        self.playback = playback or PlaybackTrack(clock=clock)
        self._chain_on_frame(self.playback)
        self._transceiver = self.pc.addTransceiver(self.playback, direction="sendrecv")
        self._transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name.lower() == "opus"]
        )
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.digits = DigitStream()
        self.offer_sdp: str | None = None
        self.answer_sdp: str | None = None
        self.frames_received = 0
        self.last_audio_time: float | None = None
        self.audio_gaps: list[tuple[float, float]] = []
        """(media time, seconds) of each hole in the far end's audio (lost or late packets)."""
        self.recording: RecordingInfo | None = None
        self._merger = DigitMerger(config.digit_merge_seconds)
        self._digit_listeners: list[DigitListener] = []
        self._audio_listeners: list[AudioListener] = []
        self._decoders: dict[int, Rfc4733Decoder] = {}
        self._inband = InbandDetector(SAMPLE_RATE) if config.inband_dtmf else None
        self._tap = EventTap({}, self._on_event_packet, self.media_time)
        self._recorder: WavRecorder | None = None
        self._recording_origin = 0.0
        self._recording_shift: float | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.pc.on("connectionstatechange", self._on_connection_state)

    # -- clock -------------------------------------------------------------------

    def media_time(self) -> float:
        """Seconds of audio sent so far: the call's media clock (see the module docstring)."""
        return self.playback.media_time

    def _chain_on_frame(self, track: PlaybackTrack) -> None:
        previous = track.on_frame

        def on_frame(info: FrameInfo) -> None:
            if self._recorder is not None and self._recorder.channels == 2:
                self._record_near(info)
            if previous is not None:
                previous(info)

        track.on_frame = on_frame

    # -- signalling -----------------------------------------------------------

    async def create_offer(self) -> str:
        """Gather candidates and return the full SDP offer (no trickle)."""
        self._require(SessionState.NEW, "create an offer")
        offer = await self.pc.createOffer()
        with ice.pinned_addresses(self.config.candidate_addresses):
            await self.pc.setLocalDescription(offer)
        text = self.pc.localDescription.sdp
        opus = sdp.payload_type_of(text, "opus")
        if opus is None:
            raise SessionError(f"call {self.call_id}: aiortc made an offer without Opus")
        text = sdp.renumber_payload(text, opus, sdp.OPUS_PAYLOAD_TYPE)
        text = sdp.add_telephone_events(text, self.config.telephone_events)
        self.offer_sdp = text
        self.state = SessionState.OFFERED
        self._tap.payload_types = {e.payload_type: e.clock_rate for e in sdp.telephone_events(text)}
        self._tap.attach(self._transceiver.receiver.transport)
        return text

    async def accept_answer(self, answer_sdp: str) -> None:
        """Apply the far end's SDP answer; the connection then starts on its own."""
        self._require(SessionState.OFFERED, "accept an answer")
        assert self.offer_sdp is not None
        try:
            answer_sdp = sdp.adopt_offer_mids(answer_sdp, self.offer_sdp)
        except sdp.SdpError as exc:
            raise SessionError(f"call {self.call_id}: unusable SDP answer: {exc}") from exc
        if sdp.payload_type_of(answer_sdp, "opus") is None:
            formats = sorted({name for name, _ in sdp.rtpmaps(answer_sdp).values()})
            raise SessionError(
                f"call {self.call_id}: the SDP answer has no Opus (it has {formats or 'nothing'})"
            )
        events = dict(self._tap.payload_types)
        for event in sdp.telephone_events(answer_sdp):
            events[event.payload_type] = event.clock_rate
        for number, (name, _) in sdp.rtpmaps(answer_sdp).items():
            if name.lower() != "telephone-event":
                events.pop(number, None)
        self._tap.payload_types = events
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        except Exception as exc:
            raise SessionError(f"call {self.call_id}: cannot apply the SDP answer: {exc}") from exc
        self.answer_sdp = answer_sdp
        self.state = SessionState.ANSWERED
        self._tap.attach(self._transceiver.receiver.transport)
        track = self._transceiver.receiver.track
        if track is not None:
            self._consumer = asyncio.ensure_future(self._consume(track))

    async def wait_connected(self) -> None:
        """Wait for ICE and DTLS; :class:`SessionError` if the call closes first.

        Bound the wait with ``asyncio.timeout``: a far end that never answers
        media keeps this waiting.
        """
        await self.until_closed(self.connected.wait(), "before its media connected")

    async def until_closed(self, waiting: Awaitable[object], doing: str) -> None:
        """Wait for ``waiting``; :class:`SessionError` naming ``doing`` if the call closes first."""
        inner = asyncio.ensure_future(waiting)
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({inner, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            inner.cancel()
            closed.cancel()
        if not inner.done():
            raise SessionError(f"call {self.call_id} closed {doing}: {self.close_reason}")

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("call %s: connection %s", self.call_id, state)
        if state == "connected" and self.state is SessionState.ANSWERED:
            self.state = SessionState.CONNECTED
            self.connected.set()
        elif state in ("failed", "closed") and self._closing is None:
            self._start_close(f"connection {state}")

    # -- digits ------------------------------------------------------------------

    def on_digit(self, listener: DigitListener) -> Callable[[], None]:
        """Call ``listener`` for each key press (after barge-in); returns an unsubscribe."""
        self._digit_listeners.append(listener)
        return lambda: self._digit_listeners.remove(listener)

    def _on_event_packet(self, packet: RtpPacket, clock_rate: int, arrival: float) -> None:
        decoder = self._decoders.get(clock_rate)
        if decoder is None:
            decoder = self._decoders[clock_rate] = Rfc4733Decoder(clock_rate)
        event = decoder.feed(packet.ssrc, packet.timestamp, packet.payload, arrival)
        if event is not None:
            self._emit(event)

    def _emit(self, event: DigitEvent) -> None:
        if not self._merger.accept(event):
            logger.debug(
                "call %s: digit %s from %s merged", self.call_id, event.digit, event.source
            )
            return
        if self.barge_in and self.playback.playing:
            self.playback.stop()
        logger.info("call %s: digit %s (%s)", self.call_id, event.digit, event.source)
        self.digits._put(event)
        for listener in list(self._digit_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("call %s: a digit listener failed", self.call_id)

    # -- far-end audio ---------------------------------------------------------

    def on_audio(self, listener: AudioListener) -> Callable[[], None]:
        """Call ``listener(pcm, media_time)`` per 20 ms of far-end audio; returns an unsubscribe."""
        self._audio_listeners.append(listener)
        return lambda: self._audio_listeners.remove(listener)

    async def _consume(self, track: MediaStreamTrack) -> None:
        converter = MonoConverter()
        timestamps = RtpTimestamps()
        offset: float | None = None
        expected: int | None = None
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pcm = converter.convert(frame)
                pts = timestamps.unwrap(frame.pts or 0)
                position = pts / SAMPLE_RATE
                seen = self.media_time() - position
                offset = seen if offset is None else min(offset, seen)
                at = offset + position
                if expected is not None and pts > expected:
                    self.audio_gaps.append(
                        (offset + expected / SAMPLE_RATE, position - expected / SAMPLE_RATE)
                    )
                expected = pts + frame.samples
                self.frames_received += 1
                self.last_audio_time = at
                if self._inband is not None:
                    for event in self._inband.feed(pcm, position):
                        self._emit(replace(event, media_time=event.media_time + offset))
                if self._recorder is not None:
                    self._record_far(pcm, at, position)
                for listener in list(self._audio_listeners):
                    try:
                        listener(pcm, at)
                    except Exception:
                        logger.exception("call %s: an audio listener failed", self.call_id)
        except MediaStreamError:
            if self._closing is None:
                self._start_close("far end stopped sending")

    # -- recording -------------------------------------------------------------

    def start_recording(
        self,
        path: str | Path,
        *,
        channels: int = 1,
        max_seconds: float | None = None,
        stop_on_silence_seconds: float | None = None,
    ) -> WavRecorder:
        """Record the far end (``channels=2``: far end left, our prompts right) from now on."""
        if self.state is SessionState.CLOSED:
            raise SessionError(f"cannot record call {self.call_id}: it is CLOSED")
        if self._recorder is not None:
            raise SessionError(f"call {self.call_id} is already recording to {self._recorder.path}")
        self._recording_origin = self.media_time()
        self._recording_shift = None
        self._recorder = WavRecorder(
            path,
            channels=channels,
            max_seconds=max_seconds,
            stop_on_silence_seconds=stop_on_silence_seconds,
        )
        return self._recorder

    def stop_recording(self) -> RecordingInfo | None:
        """Finish the recording (if any) and return what it holds."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        self.recording = recorder.close()
        return self.recording

    def _record_far(self, pcm: bytes, at: float, position: float) -> None:
        assert self._recorder is not None
        if self._recording_shift is None:
            self._recording_shift = at - self._recording_origin - position
        try:
            self._recorder.write(pcm, max(0.0, position + self._recording_shift))
        except MediaError:
            # Keep reading the track (an unread one grows without bound); the
            # recording ends here and says so.
            logger.exception("call %s: recording failed, stopping it", self.call_id)
            with contextlib.suppress(MediaError):
                self.stop_recording()

    def _record_near(self, info: FrameInfo) -> None:
        assert self._recorder is not None
        playback = info.playback
        pcm = SILENT_FRAME
        if playback is not None and playback.prompt is not None:
            frames = playback.prompt.frames
            position = (playback.frames_played - 1) % max(1, playback.frames)
            if position < len(frames):
                pcm = frames[position]
        self._recorder.write_near(pcm, info.media_time - self._recording_origin)

    # -- closing -----------------------------------------------------------------

    async def close(self, reason: str = "closed locally") -> None:
        """Close the call's media; every concurrent caller waits for the same close."""
        task = self._start_close(reason)
        await asyncio.shield(task)

    def _start_close(self, reason: str) -> asyncio.Task[None]:
        if self._closing is None:
            self.close_reason = reason
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def _close(self) -> None:
        logger.info("call %s: closing media (%s)", self.call_id, self.close_reason)
        self.state = SessionState.CLOSED
        consumer = self._consumer
        if consumer is not None and consumer is not asyncio.current_task():
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        try:
            await self.pc.close()
        except Exception:
            logger.exception("call %s: closing the peer connection failed", self.call_id)
        self.playback.end()
        self._tap.detach()
        try:
            self.stop_recording()
        except MediaError:
            logger.exception("call %s: finishing the recording failed", self.call_id)
        self.closed.set()

    def _require(self, state: SessionState, action: str) -> None:
        if self.state is not state:
            raise SessionError(
                f"cannot {action} on call {self.call_id or '(no id)'}: it is {self.state}, "
                f"not {state}"
            )

    @property
    def event_packets(self) -> int:
        """Telephone-event packets taken out of the stream so far."""
        return self._tap.diverted

    def __repr__(self) -> str:
        return f"CallSession(call_id={self.call_id!r}, state={self.state})"


__all__ = [
    "AudioListener",
    "CallSession",
    "DigitListener",
    "DigitMerger",
    "DigitStream",
    "MediaConfig",
    "SessionError",
    "SessionState",
]
