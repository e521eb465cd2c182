"""RTP taps on an aiortc DTLS transport: take telephone-events out, put them in.

aiortc implements no RFC 4733. Two small hooks on one ``RTCDtlsTransport``
instance (never on the class, so other connections are untouched) fill the gap:

:class:`EventTap` (receive)
    wraps the transport's ``_handle_rtp_data``, which sees every decrypted
    RTP packet before aiortc routes it to a receiver and its jitter buffer.
    Packets whose payload type is a negotiated telephone-event go to a handler
    and nowhere else, so they can never reach the audio decoder thread (which
    dies on them, leaving the call silently deaf). The holes they leave in the
    sequence numbers are closed (see :class:`SequenceGaps`), or aiortc's
    jitter buffer would drop audio after every key press. Until the first
    event arrives every other packet passes untouched; the check is one byte.

:class:`RtpInjector` (send)
    wraps the transport's ``_send_rtp``, through which aiortc's sender sends
    every RTP packet, to send extra packets (telephone-events) that share the
    audio's SSRC, sequence numbers and SRTP context, as RFC 4733 requires.
    Once ``n`` packets were injected, each later audio packet's sequence
    number is shifted by ``n`` (two bytes rewritten) so the receiver sees one
    gap-free sequence. RTCP passes untouched; the sender-report packet count
    does not include injected packets.

:func:`send_rfc4733` paces one key press through an injector: a first
packet with the marker bit, progress packets every 50 ms, three end packets.

Both hooks use aiortc internals (``_handle_rtp_data``, ``_send_rtp``,
``RTCRtpSender._ssrc``) that are stable across aiortc 1.x; the tests exercise
them end to end so an upgrade that moves them fails loudly.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiortc.rtp import RtpPacket, is_rtcp

from worker.media.audio import MediaError

logger = logging.getLogger(__name__)

EVENT_PACKET_INTERVAL = 0.05
"""Seconds between RFC 4733 progress packets (RFC 4733 section 2.5.1.2 suggests 50 ms)."""
END_PACKET_REPEATS = 3
"""How many times the final (end) packet of an event is sent."""


class TapError(MediaError):
    """An RTP tap was used in a state where it cannot work (e.g., nothing sent yet)."""


Encoder = Callable[[str, int, bool, int], bytes]
"""Makes one RFC 4733 payload: (digit, duration in clock units, end bit, volume)."""


class EventTap:
    """Divert RTP packets of the given payload types away from aiortc's receiver.

    ``handler(packet, clock_rate, arrival)`` is called synchronously on the
    event loop for each diverted packet, with the parsed packet, the clock
    rate of its payload type and ``clock()`` at arrival.

    A diverted packet leaves a hole in the sequence numbers aiortc sees, and
    aiortc's audio jitter buffer stalls at a hole until 16 later packets
    arrive, then drops what it holds: a third of a second of audio lost after
    every key press. So the tap also closes the holes: later packets of that
    SSRC are renumbered down by the number of packets diverted before them.
    (A packet reordered across an event may then collide with a neighbour and
    cost one 20 ms frame; reordering is rare and that is the worst case.)
    """

    def __init__(
        self,
        payload_types: Mapping[int, int],
        handler: Callable[[RtpPacket, int, float], None],
        clock: Callable[[], float],
    ) -> None:
        self.payload_types = dict(payload_types)
        self._handler = handler
        self._clock = clock
        self._transport: Any = None
        self._gaps: dict[int, SequenceGaps] = {}
        self.diverted = 0

    def attach(self, transport: Any) -> None:
        """Install on ``transport`` (an ``RTCDtlsTransport``); moving from another one is fine."""
        if self._transport is transport:
            return
        self.detach()
        original = type(transport)._handle_rtp_data.__get__(transport)

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            if len(data) < 12:
                return
            if (data[1] & 0x7F) in self.payload_types:
                self._divert(data)
                return
            if self._gaps:
                data = self._renumber(data)
            await original(data, arrival_time_ms=arrival_time_ms)

        transport._handle_rtp_data = handle_rtp_data
        self._transport = transport

    def detach(self) -> None:
        if self._transport is not None:
            self._transport.__dict__.pop("_handle_rtp_data", None)
            self._transport = None

    def _renumber(self, data: bytes) -> bytes:
        sequence, _, ssrc = struct.unpack_from("!HLL", data, 2)
        gaps = self._gaps.get(ssrc)
        if gaps is None:
            return data
        mapped = gaps.map(sequence)
        if mapped == sequence:
            return data
        return data[:2] + struct.pack("!H", mapped) + data[4:]

    def _divert(self, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ValueError as exc:
            logger.debug("dropping a malformed telephone-event packet: %s", exc)
            return
        self.diverted += 1
        gaps = self._gaps.get(packet.ssrc)
        if gaps is None:
            gaps = self._gaps[packet.ssrc] = SequenceGaps()
        gaps.remove(packet.sequence_number)
        clock_rate = self.payload_types[packet.payload_type]
        try:
            self._handler(packet, clock_rate, self._clock())
        except Exception:
            # The transport's receive loop must survive a faulty handler.
            logger.exception("telephone-event handler failed")


class SequenceGaps:
    """Renumber a 16-bit RTP sequence so that removed numbers leave no hole. Pure.

    Sequence numbers are unwrapped to an ever-growing count; removed numbers
    more than :attr:`HORIZON` behind the newest are folded into a base offset
    (aiortc drops audio that late anyway).
    """

    HORIZON = 512

    def __init__(self) -> None:
        self._highest: int | None = None
        self._base = 0
        self._removed: list[int] = []

    def _extend(self, sequence: int) -> int:
        if self._highest is None:
            self._highest = sequence + (1 << 16)
            return self._highest
        delta = (sequence - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        extended = self._highest + delta
        self._highest = max(self._highest, extended)
        return extended

    def remove(self, sequence: int) -> None:
        """Take ``sequence`` out of the numbering."""
        extended = self._extend(sequence)
        index = bisect.bisect_left(self._removed, extended)
        if index == len(self._removed) or self._removed[index] != extended:
            self._removed.insert(index, extended)
        assert self._highest is not None
        horizon = self._highest - self.HORIZON
        while self._removed and self._removed[0] < horizon:
            self._removed.pop(0)
            self._base += 1

    def map(self, sequence: int) -> int:
        """The number a kept packet gets once removed numbers are closed up."""
        extended = self._extend(sequence)
        shift = self._base + bisect.bisect_left(self._removed, extended)
        return (extended - shift) & 0xFFFF


class RtpInjector:
    """Send extra RTP packets in the stream of one aiortc ``RTCRtpSender``."""

    def __init__(self, sender: Any) -> None:
        self._sender = sender
        self._transport: Any = None
        self._original: Callable[[bytes], Awaitable[None]] | None = None
        self._offset = 0
        self.last_sequence: int | None = None
        self.last_timestamp: int | None = None
        self.injected = 0
        self.audio_packets = 0

    @property
    def ssrc(self) -> int:
        return int(self._sender._ssrc)

    def attach(self, transport: Any) -> None:
        """Install on ``transport`` (the sender's ``RTCDtlsTransport``)."""
        if self._transport is transport:
            return
        self.detach()
        self._original = type(transport)._send_rtp.__get__(transport)
        transport._send_rtp = self._send
        self._transport = transport

    def detach(self) -> None:
        if self._transport is not None:
            self._transport.__dict__.pop("_send_rtp", None)
            self._transport = None

    async def _send(self, data: bytes) -> None:
        assert self._original is not None
        if len(data) >= 12 and not is_rtcp(data):
            sequence, timestamp, ssrc = struct.unpack_from("!HLL", data, 2)
            if ssrc == self.ssrc:
                if self._offset:
                    sequence = (sequence + self._offset) & 0xFFFF
                    data = data[:2] + struct.pack("!H", sequence) + data[4:]
                self.last_sequence = sequence
                self.last_timestamp = timestamp
                self.audio_packets += 1
        await self._original(data)

    async def inject(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> None:
        """Send one packet with the audio's SSRC and the next sequence number."""
        if self._original is None or self.last_sequence is None:
            raise TapError("cannot inject RTP before the audio stream sent its first packet")
        sequence = (self.last_sequence + 1) & 0xFFFF
        self.last_sequence = sequence
        self._offset += 1
        self.injected += 1
        packet = RtpPacket(
            payload_type=payload_type,
            marker=1 if marker else 0,
            sequence_number=sequence,
            timestamp=timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        await self._original(packet.serialize())


async def send_rfc4733(
    injector: RtpInjector,
    encode: Encoder,
    *,
    digit: str,
    payload_type: int,
    clock_rate: int,
    seconds: float,
    volume: int = 10,
) -> int:
    """Send one key press as RFC 4733 events; return the event's RTP timestamp.

    The event timestamp is the audio clock (48 kHz units) one frame after the
    last audio packet, as libwebrtc does at either rate; durations count
    ``clock_rate`` units. The pacing sleeps are the behaviour: the packets go
    out on an absolute schedule, ``EVENT_PACKET_INTERVAL`` apart.
    """
    if injector.last_timestamp is None:
        raise TapError(f"cannot send digit {digit!r}: no audio has been sent yet")
    timestamp = (injector.last_timestamp + 960) & 0xFFFFFFFF
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = max(1, round(seconds * clock_rate))
    step = 0
    while True:
        elapsed = min(total, round(step * EVENT_PACKET_INTERVAL * clock_rate))
        if elapsed >= total:
            break
        await injector.inject(
            payload_type, encode(digit, max(elapsed, 1), False, volume), timestamp, step == 0
        )
        step += 1
        await asyncio.sleep(max(0.0, start + step * EVENT_PACKET_INTERVAL - loop.time()))
    final = encode(digit, min(total, 0xFFFF), True, volume)
    for _ in range(END_PACKET_REPEATS):
        await injector.inject(payload_type, final, timestamp, False)
    return timestamp


__all__ = [
    "END_PACKET_REPEATS",
    "EVENT_PACKET_INTERVAL",
    "EventTap",
    "RtpInjector",
    "SequenceGaps",
    "TapError",
    "send_rfc4733",
]
