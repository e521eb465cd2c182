"""The far end of simulated calls: who answers the device's SDP offers.

A :class:`FarEnd` stands for everything on the other side of GoTo's media
servers (the caller of an inbound call, the callee of an outbound one). The
:class:`~gotosim.simulator.Simulator` builds one far end per simulator with a
:data:`FarEndFactory` and calls it:

- ``answer(call, offer_sdp)`` when the device sends an SDP offer (make call,
  answer, re-offer); it returns GoTo's SDP answer, or raises
  :class:`FarEndError` when the offer cannot be answered (e.g. no Opus);
- ``hangup(call)`` exactly once when the call ends, whoever ended it;
- ``close()`` when the simulator shuts down.

A far end may end a call itself with ``sim.far_end_hangup(call.id)`` and may
add lines to the call's event log with ``sim.log_call_event(call.id, ...)``.
``call.script`` carries the opaque JSON a test attached to the call.

:class:`StaticFarEnd` answers with a valid GoTo-like SDP (ice-lite,
``setup:passive``, Opus and telephone-event when offered, one host candidate
on 127.0.0.1) and carries no media. :mod:`gotosim.farend` provides the real
aiortc far end.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gotosim.model import SimCall

if TYPE_CHECKING:
    from gotosim.simulator import Simulator

__all__ = [
    "FarEnd",
    "FarEndError",
    "FarEndFactory",
    "OfferSummary",
    "SimCall",
    "StaticFarEnd",
    "build_answer_sdp",
    "parse_offer",
    "static_far_end",
]


class FarEndError(ValueError):
    """The far end cannot answer this SDP offer; the message says why."""


class FarEnd(Protocol):
    async def answer(self, call: SimCall, offer_sdp: str) -> str: ...

    async def hangup(self, call: SimCall) -> None: ...

    async def close(self) -> None: ...


FarEndFactory = Callable[["Simulator"], FarEnd]


@dataclass(frozen=True)
class OfferSummary:
    """What an answer needs from an offer's audio section."""

    proto: str
    mid: str | None
    opus_pt: int
    opus_encoding: str
    telephone_event_pt: int | None
    telephone_event_rate: int | None


_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)(?:/(\d+))?$", re.IGNORECASE)


def parse_offer(sdp: str) -> OfferSummary:
    """Read the first audio section of an SDP offer; raise :class:`FarEndError` if unusable."""
    lines = [line.strip() for line in sdp.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise FarEndError("the SDP offer does not start with v=0")
    in_audio = False
    proto = ""
    payloads: list[int] = []
    mid: str | None = None
    maps: dict[int, tuple[str, int]] = {}
    for line in lines:
        if line.startswith("m="):
            if in_audio:
                break
            parts = line[2:].split()
            if parts and parts[0] == "audio" and len(parts) >= 4:
                in_audio = True
                proto = parts[2]
                payloads = [int(p) for p in parts[3:] if p.isdigit()]
            continue
        if not in_audio:
            continue
        if line.startswith("a=mid:"):
            mid = line[6:].strip() or None
        match = _RTPMAP.match(line)
        if match:
            maps[int(match.group(1))] = (match.group(2), int(match.group(3)))
    if not in_audio:
        raise FarEndError("the SDP offer has no m=audio section")
    opus = [pt for pt in payloads if pt in maps and maps[pt][0].lower() == "opus"]
    if not opus:
        raise FarEndError("the SDP offer has no Opus payload type; GoTo answers with Opus")
    events = [pt for pt in payloads if pt in maps and maps[pt][0].lower() == "telephone-event"]
    return OfferSummary(
        proto=proto,
        mid=mid,
        opus_pt=opus[0],
        opus_encoding=maps[opus[0]][0],
        telephone_event_pt=events[0] if events else None,
        telephone_event_rate=maps[events[0]][1] if events else None,
    )


def _fingerprint() -> str:
    return ":".join(f"{b:02X}" for b in secrets.token_bytes(32))


def build_answer_sdp(offer: OfferSummary, address: str = "127.0.0.1", port: int = 0) -> str:
    """A GoTo-like ice-lite SDP answer for ``offer`` (see the seed's make-call reply)."""
    port = port or random.randrange(20000, 60000, 2)
    session = random.randrange(1, 2**62)
    payloads = [str(offer.opus_pt)]
    if offer.telephone_event_pt is not None:
        payloads.append(str(offer.telephone_event_pt))
    lines = [
        "v=0",
        f"o=rtcweb {session} 1 IN IP4 {address}",
        "s=-",
        "t=0 0",
        "a=ice-lite",
    ]
    if offer.mid is not None:
        lines.append(f"a=group:BUNDLE {offer.mid}")
    lines += [
        f"m=audio {port} {offer.proto} {' '.join(payloads)}",
        f"c=IN IP4 {address}",
    ]
    if offer.mid is not None:
        lines.append(f"a=mid:{offer.mid}")
    lines += [
        f"a=ice-ufrag:{secrets.token_hex(2)}",
        f"a=ice-pwd:{secrets.token_hex(12)}",
        f"a=fingerprint:sha-256 {_fingerprint()}",
        "a=setup:passive",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=rtpmap:{offer.opus_pt} {offer.opus_encoding}/48000/2",
    ]
    if offer.telephone_event_pt is not None:
        lines.append(
            f"a=rtpmap:{offer.telephone_event_pt} telephone-event/{offer.telephone_event_rate}"
        )
    lines += [
        "a=maxptime:60",
        f"a=candidate:0 1 UDP 2113667327 {address} {port} typ host",
        "a=end-of-candidates",
        f"a=ssrc:{random.randrange(1, 2**32)} cname:{secrets.token_hex(8)}",
    ]
    return "\r\n".join(lines) + "\r\n"


class StaticFarEnd:
    """Answers every usable offer with a fresh SDP answer and carries no media."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.answered: list[str] = []
        self.hung_up: list[str] = []

    async def answer(self, call: SimCall, offer_sdp: str) -> str:
        answer = build_answer_sdp(parse_offer(offer_sdp), self.address)
        self.answered.append(call.id)
        return answer

    async def hangup(self, call: SimCall) -> None:
        self.hung_up.append(call.id)

    async def close(self) -> None:
        return None


def static_far_end(sim: Simulator) -> FarEnd:
    """The default :data:`FarEndFactory`."""
    return StaticFarEnd()
