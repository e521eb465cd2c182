"""SDP text helpers: telephone-event, payload numbers, roles, candidates.

aiortc builds its SDP from a process-wide codec table that has no
``telephone-event``; adding it there would make aiortc hand event packets to
its audio decoder thread, which dies on them. So callworker leaves aiortc's
table alone and edits the SDP *text* instead: after aiortc wrote its
description, :func:`add_telephone_events` announces ``telephone-event`` (the
packets themselves are taken out before aiortc sees them, see
:mod:`worker.media.rtp_tap`). The other helpers give the offer GoTo's payload
numbers (Opus 111, telephone-event/8000 126), make an answer look like GoTo's
(``a=ice-lite``, ``a=setup:passive``), and list candidate addresses so tests
can check nothing but loopback is ever offered.

Everything here is a pure function from text to text or data. Lines are
rejoined with CRLF, as RFC 4566 asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from worker.media.audio import MediaError

OPUS_PAYLOAD_TYPE = 111
"""GoTo's (and browsers') payload number for Opus."""
TELEPHONE_EVENT_8000 = 126
"""GoTo's payload number for telephone-event/8000."""
TELEPHONE_EVENT_48000 = 110
"""Payload number for telephone-event/48000 (libwebrtc's choice)."""


class SdpError(MediaError):
    """An SDP lacks what a call needs (an audio section, a codec) or is malformed."""


@dataclass(frozen=True)
class TelephoneEvent:
    """One ``telephone-event`` format of an audio section."""

    payload_type: int
    clock_rate: int


DEFAULT_EVENTS = (
    TelephoneEvent(TELEPHONE_EVENT_8000, 8000),
    TelephoneEvent(TELEPHONE_EVENT_48000, 48000),
)


def _lines(sdp: str) -> list[str]:
    return [line for line in sdp.replace("\r\n", "\n").split("\n") if line]


def _join(lines: Iterable[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def _audio_bounds(lines: Sequence[str]) -> tuple[int, int]:
    """Index of the first ``m=audio`` line and of the line after its section."""
    start = next((i for i, line in enumerate(lines) if line.startswith("m=audio ")), None)
    if start is None:
        raise SdpError("the SDP has no m=audio section")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    return start, end


def _formats(m_line: str) -> list[str]:
    parts = m_line.split()
    if len(parts) < 4:
        raise SdpError(f"malformed media line {m_line!r}: expected m=audio PORT PROTO FORMATS")
    return parts[3:]


def rtpmaps(sdp: str) -> dict[int, tuple[str, int]]:
    """The audio section's ``a=rtpmap`` entries: payload type -> (encoding name, clock rate)."""
    lines = _lines(sdp)
    start, end = _audio_bounds(lines)
    found: dict[int, tuple[str, int]] = {}
    for line in lines[start:end]:
        if line.startswith("a=rtpmap:"):
            number, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            name, _, rest = encoding.partition("/")
            rate = rest.partition("/")[0]
            try:
                found[int(number)] = (name, int(rate))
            except ValueError:
                raise SdpError(f"malformed rtpmap line {line!r}") from None
    return found


def telephone_events(sdp: str) -> tuple[TelephoneEvent, ...]:
    """The ``telephone-event`` formats the audio section lists, in m-line order."""
    lines = _lines(sdp)
    start, _ = _audio_bounds(lines)
    maps = rtpmaps(sdp)
    events = []
    for fmt in _formats(lines[start]):
        if fmt.isdigit() and int(fmt) in maps:
            name, rate = maps[int(fmt)]
            if name.lower() == "telephone-event":
                events.append(TelephoneEvent(int(fmt), rate))
    return tuple(events)


def payload_type_of(sdp: str, encoding: str) -> int | None:
    """The first payload type of the audio section whose encoding is ``encoding``."""
    for number, (name, _) in rtpmaps(sdp).items():
        if name.lower() == encoding.lower():
            return number
    return None


def add_telephone_events(sdp: str, events: Sequence[TelephoneEvent]) -> str:
    """Announce ``events`` in the audio section (m-line, rtpmap and ``fmtp 0-16``).

    Events whose payload type the section already uses are skipped, as are
    repeats of a clock rate already listed as telephone-event.
    """
    lines = _lines(sdp)
    start, end = _audio_bounds(lines)
    formats = _formats(lines[start])
    existing = telephone_events(sdp)
    rates = {event.clock_rate for event in existing}
    added: list[str] = []
    new_formats: list[str] = []
    for event in events:
        if str(event.payload_type) in formats or event.clock_rate in rates:
            continue
        rates.add(event.clock_rate)
        new_formats.append(str(event.payload_type))
        added += [
            f"a=rtpmap:{event.payload_type} telephone-event/{event.clock_rate}",
            f"a=fmtp:{event.payload_type} 0-16",
        ]
    if not added:
        return _join(lines)
    lines[start] = " ".join(lines[start].split()[:3] + formats + new_formats)
    last_map = max(
        (i for i in range(start, end) if lines[i].startswith(("a=rtpmap:", "a=fmtp:"))),
        default=end - 1,
    )
    return _join(lines[: last_map + 1] + added + lines[last_map + 1 :])


def renumber_payload(sdp: str, old: int, new: int) -> str:
    """Give the audio format ``old`` the payload number ``new`` (m-line, rtpmap, fmtp, rtcp-fb)."""
    if old == new:
        return sdp
    lines = _lines(sdp)
    start, end = _audio_bounds(lines)
    formats = _formats(lines[start])
    if str(new) in formats:
        raise SdpError(f"cannot renumber payload {old} to {new}: {new} is already in use")
    if str(old) not in formats:
        raise SdpError(f"cannot renumber payload {old}: the audio section has no such format")
    head = lines[start].split()[:3]
    lines[start] = " ".join(head + [str(new) if f == str(old) else f for f in formats])
    for i in range(start + 1, end):
        for attribute in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            prefix = f"{attribute}{old} "
            if lines[i].startswith(prefix):
                lines[i] = f"{attribute}{new} " + lines[i][len(prefix) :]
    return _join(lines)


def keep_formats(sdp: str, encodings: Iterable[str]) -> str:
    """Drop every audio format whose encoding is not in ``encodings`` (case-insensitive)."""
    wanted = {name.lower() for name in encodings}
    lines = _lines(sdp)
    start, end = _audio_bounds(lines)
    maps = rtpmaps(sdp)
    keep = [
        f
        for f in _formats(lines[start])
        if f.isdigit() and maps.get(int(f), ("",))[0].lower() in wanted
    ]
    if not keep:
        raise SdpError(f"the audio section has none of the encodings {sorted(wanted)}")
    dropped = {f for f in _formats(lines[start]) if f not in keep}
    head = lines[start].split()[:3]
    section = [" ".join(head + keep)]
    for line in lines[start + 1 : end]:
        if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            number = line.split(":", 1)[1].split(" ", 1)[0]
            if number in dropped:
                continue
        section.append(line)
    return _join(lines[:start] + section + lines[end:])


def set_setup_role(sdp: str, role: str) -> str:
    """Replace every ``a=setup:`` value with ``role`` (active, passive or actpass)."""
    if role not in ("active", "passive", "actpass"):
        raise SdpError(f"unknown DTLS setup role {role!r}: expected active, passive or actpass")
    return _join(f"a=setup:{role}" if line.startswith("a=setup:") else line for line in _lines(sdp))


def setup_role(sdp: str) -> str | None:
    """The first ``a=setup:`` value, if any."""
    for line in _lines(sdp):
        if line.startswith("a=setup:"):
            return line[len("a=setup:") :].strip()
    return None


def add_ice_lite(sdp: str) -> str:
    """Declare the session ICE-lite (a session-level ``a=ice-lite`` before the first m-line)."""
    lines = _lines(sdp)
    if is_ice_lite(sdp):
        return _join(lines)
    first_media = next((i for i, line in enumerate(lines) if line.startswith("m=")), len(lines))
    after_timing = next(
        (i + 1 for i, line in enumerate(lines[:first_media]) if line.startswith("t=")), first_media
    )
    return _join([*lines[:after_timing], "a=ice-lite", *lines[after_timing:]])


def is_ice_lite(sdp: str) -> bool:
    """Whether the session declares ``a=ice-lite``."""
    return any(line.strip() == "a=ice-lite" for line in _lines(sdp))


def media_ids(sdp: str) -> list[str | None]:
    """The ``a=mid`` of each m-section, in order (None where a section has none)."""
    lines = _lines(sdp)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    ids: list[str | None] = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        mid = next(
            (x[len("a=mid:") :].strip() for x in lines[start:end] if x.startswith("a=mid:")), None
        )
        ids.append(mid)
    return ids


def adopt_offer_mids(answer: str, offer: str) -> str:
    """Give an answer the offer's ``a=mid`` values where it has none, and a matching BUNDLE.

    GoTo's answer (see the seed) carries no ``a=mid`` and bundles a mid named
    ``audio``; aiortc rejects an answer whose mids differ from the offer's
    ("Media sections in answer do not match offer"). Sections pair up by
    position, as RFC 3264 pairs them.
    """
    offered = media_ids(offer)
    lines = _lines(answer)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if len(starts) != len(offered):
        raise SdpError(
            f"the answer has {len(starts)} media sections, the offer {len(offered)}; "
            "they must pair up one to one"
        )
    out: list[str] = []
    current = media_ids(answer)
    changed = False
    for i, line in enumerate(lines):
        out.append(line)
        if i in starts:
            n = starts.index(i)
            if current[n] is None and offered[n] is not None:
                out.append(f"a=mid:{offered[n]}")
                changed = True
    if not changed:
        return _join(lines)
    wanted = [mid for mid in offered if mid is not None]
    return _join(
        "a=group:BUNDLE " + " ".join(wanted) if line.startswith("a=group:BUNDLE") else line
        for line in out
    )


def candidate_addresses(sdp: str) -> list[str]:
    """The connection address of every ``a=candidate`` line, in order."""
    found = []
    for line in _lines(sdp):
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 6:
                raise SdpError(f"malformed candidate line {line!r}")
            found.append(fields[4])
    return found


def foreign_candidates(sdp: str, allowed: Iterable[str]) -> list[str]:
    """Candidate addresses in ``sdp`` that are not in ``allowed`` (empty when all are)."""
    permitted = set(allowed)
    return [address for address in candidate_addresses(sdp) if address not in permitted]


__all__ = [
    "DEFAULT_EVENTS",
    "OPUS_PAYLOAD_TYPE",
    "TELEPHONE_EVENT_8000",
    "TELEPHONE_EVENT_48000",
    "SdpError",
    "TelephoneEvent",
    "add_ice_lite",
    "add_telephone_events",
    "adopt_offer_mids",
    "candidate_addresses",
    "foreign_candidates",
    "is_ice_lite",
    "keep_formats",
    "media_ids",
    "payload_type_of",
    "renumber_payload",
    "rtpmaps",
    "set_setup_role",
    "setup_role",
    "telephone_events",
]
