"""CallSession and its helpers: SDP text, the candidate seam, digit merging, sequence gaps.

The pure helpers are tested on their own; everything touching aiortc uses real
peer connections (no network is needed to make an offer or apply an answer).
"""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from gotosim.media import build_answer_sdp, parse_offer
from worker.config import Settings
from worker.media import ice, sdp
from worker.media.dtmf import DigitEvent
from worker.media.rtp_tap import SequenceGaps
from worker.media.session import (
    CallSession,
    DigitMerger,
    DigitStream,
    MediaConfig,
    SessionError,
    SessionState,
)

LOOPBACK = ("127.0.0.1",)

# GoTo's answer from the seed document (POST /calls/{id}/answer reply), verbatim.
SEED_ANSWER = (
    "v=0\r\no=rtcweb 1 1 IN IP4 199.88.123.123\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
    "a=group:BUNDLE audio\r\na=msid-semantic: WMS ANAUOoBPqN08BQw7SeGk3EhjiTBWNaDXu47M\r\n"
    "m=audio 40342 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 199.88.123.123\r\n"
    "a=ice-ufrag:YoPy\r\na=ice-pwd:gv3wCs/e+Rn5YKunE/J7tRi7\r\n"
    "a=fingerprint:sha-256 F5:F5:F5:F5:F5:F5:F5:F5:F5:F5:A1:A1:A1:A1:A1:A1:A1:A1:A1:A1:A1:"
    "A1:A1:A1:A1:A1:A1:A1:A1:A1:A1:A1\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=setup:passive\r\n"
    "a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=rtpmap:126 telephone-event/8000\r\na=maxptime:60\r\n"
    "a=candidate:0 1 UDP 2113667327 199.88.123.123 40342 typ host\r\na=end-of-candidates\r\n"
)

AIORTC_LIKE_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\nc=IN IP4 127.0.0.1\r\na=sendrecv\r\na=mid:0\r\n"
    "a=rtcp-mux\r\na=rtpmap:96 opus/48000/2\r\na=rtcp-fb:96 nack\r\na=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 10.0.0.7 40002 typ host\r\na=end-of-candidates\r\n"
    "a=setup:actpass\r\n"
)


# -- SDP helpers ------------------------------------------------------------------


def test_telephone_events_are_added_after_the_codecs() -> None:
    text = sdp.add_telephone_events(AIORTC_LIKE_OFFER, sdp.DEFAULT_EVENTS)
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 96 0 126 110\r\n" in text
    assert sdp.telephone_events(text) == (
        sdp.TelephoneEvent(126, 8000),
        sdp.TelephoneEvent(110, 48000),
    )
    lines = text.split("\r\n")
    assert (
        lines.index("a=rtpmap:126 telephone-event/8000") == lines.index("a=rtpmap:0 PCMU/8000") + 1
    )
    assert "a=fmtp:126 0-16" in lines
    # idempotent: a second pass adds nothing
    assert sdp.add_telephone_events(text, sdp.DEFAULT_EVENTS) == text


def test_renumbering_moves_every_attribute_of_the_payload() -> None:
    text = sdp.renumber_payload(AIORTC_LIKE_OFFER, 96, 111)
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n" in text
    assert "a=rtpmap:111 opus/48000/2" in text
    assert "a=rtcp-fb:111 nack" in text and "a=fmtp:111 useinbandfec=1" in text
    assert ":96 " not in text
    with pytest.raises(sdp.SdpError, match="0 is already in use"):
        sdp.renumber_payload(AIORTC_LIKE_OFFER, 96, 0)
    with pytest.raises(sdp.SdpError, match="no such format"):
        sdp.renumber_payload(AIORTC_LIKE_OFFER, 97, 98)


def test_keep_formats_drops_the_others() -> None:
    text = sdp.keep_formats(AIORTC_LIKE_OFFER, ["opus"])
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n" in text
    assert "PCMU" not in text
    with pytest.raises(sdp.SdpError, match="none of the encodings"):
        sdp.keep_formats(AIORTC_LIKE_OFFER, ["G729"])


def test_roles_lite_and_candidates() -> None:
    text = sdp.add_ice_lite(sdp.set_setup_role(AIORTC_LIKE_OFFER, "passive"))
    assert sdp.setup_role(text) == "passive"
    assert sdp.is_ice_lite(text) and not sdp.is_ice_lite(AIORTC_LIKE_OFFER)
    lines = text.split("\r\n")
    assert lines.index("a=ice-lite") == lines.index("t=0 0") + 1
    assert sdp.candidate_addresses(text) == ["127.0.0.1", "10.0.0.7"]
    assert sdp.foreign_candidates(text, LOOPBACK) == ["10.0.0.7"]
    with pytest.raises(sdp.SdpError, match="unknown DTLS setup role"):
        sdp.set_setup_role(text, "server")
    with pytest.raises(sdp.SdpError, match="no m=audio"):
        sdp.rtpmaps("v=0\r\ns=-\r\n")


def test_gotos_answer_without_mid_adopts_the_offers_mid() -> None:
    fixed = sdp.adopt_offer_mids(SEED_ANSWER, AIORTC_LIKE_OFFER)
    assert sdp.media_ids(SEED_ANSWER) == [None]
    assert sdp.media_ids(fixed) == ["0"]
    assert "a=group:BUNDLE 0\r\n" in fixed
    # an answer that already names its mids is left alone
    assert sdp.adopt_offer_mids(AIORTC_LIKE_OFFER, AIORTC_LIKE_OFFER) == AIORTC_LIKE_OFFER
    two = AIORTC_LIKE_OFFER + "m=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
    with pytest.raises(sdp.SdpError, match="must pair up"):
        sdp.adopt_offer_mids(SEED_ANSWER, two)


# -- the candidate seam ----------------------------------------------------------


def test_select_addresses_filters_by_version_and_repeats() -> None:
    addresses = ["127.0.0.1", "::1", "127.0.0.1", "192.0.2.10"]
    assert ice.select_addresses(addresses, use_ipv4=True, use_ipv6=False) == [
        "127.0.0.1",
        "192.0.2.10",
    ]
    assert ice.select_addresses(addresses, use_ipv4=False, use_ipv6=True) == ["::1"]


async def test_pinned_addresses_are_scoped_to_their_context() -> None:
    ice.install()
    seen: dict[str, list[str]] = {}
    started = asyncio.Event()
    release = asyncio.Event()

    async def pinned() -> None:
        with ice.pinned_addresses(LOOPBACK):
            started.set()
            await release.wait()  # hold the pin while the other task looks
            seen["pinned"] = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)

    async def unpinned() -> None:
        await started.wait()
        seen["unpinned"] = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        release.set()

    await asyncio.gather(pinned(), unpinned())
    assert seen["pinned"] == ["127.0.0.1"]
    assert "127.0.0.1" not in seen["unpinned"]
    with pytest.raises(ValueError), ice.pinned_addresses(["localhost"]):
        pass


def test_ice_servers_come_from_settings_only() -> None:
    assert ice.rtc_configuration([]).iceServers == []
    servers = ice.rtc_configuration(["stun:stun.example.net:3478"]).iceServers
    assert [s.urls for s in servers] == ["stun:stun.example.net:3478"]
    settings = Settings.from_env(
        {
            "CALLWORKER_CANDIDATE_ADDRESSES": "127.0.0.1",
            "CALLWORKER_ICE_SERVERS": "stun:stun.example.net:3478",
        }
    )
    config = MediaConfig.from_settings(settings)
    assert config.candidate_addresses == LOOPBACK
    assert config.ice_servers == ("stun:stun.example.net:3478",)
    assert MediaConfig.from_settings(Settings()).ice_servers == ()


# -- digits -------------------------------------------------------------------------


def _digit(digit: str, at: float, source: str) -> DigitEvent:
    return DigitEvent(digit=digit, media_time=at, source=source, duration=0.1)  # type: ignore[arg-type]


def test_one_press_reported_by_both_sources_counts_once() -> None:
    merger = DigitMerger(window=0.5)
    assert merger.accept(_digit("5", 1.00, "rfc4733"))
    assert not merger.accept(_digit("5", 1.09, "inband"))  # same press, heard in the audio
    assert merger.accept(_digit("5", 1.30, "rfc4733"))  # a second press of the same key
    assert not merger.accept(_digit("5", 1.38, "inband"))
    assert merger.accept(_digit("5", 2.50, "inband"))  # far apart: a new press
    assert merger.accept(_digit("6", 2.52, "rfc4733"))  # another key is never merged


async def test_digit_stream_buffers_in_order_and_clears() -> None:
    stream = DigitStream()
    for i, digit in enumerate("12#"):
        stream._put(_digit(digit, float(i), "rfc4733"))
    assert (await stream.get()).digit == "1"
    async for event in stream:
        assert event.digit == "2"
        break
    assert [e.digit for e in stream.clear()] == ["#"]
    assert stream.get_nowait() is None
    assert [e.digit for e in stream.history] == ["1", "2", "#"]


def test_sequence_gaps_close_holes_across_the_wrap() -> None:
    gaps = SequenceGaps()
    assert [gaps.map(s) for s in (65530, 65531)] == [65530, 65531]
    for s in (65532, 65533, 65534):  # three event packets
        gaps.remove(s)
    assert [gaps.map(s) for s in (65535, 0, 1)] == [65532, 65533, 65534]
    gaps.remove(2)
    assert gaps.map(3) == 65535
    assert gaps.map(4) == 0
    assert gaps.map(65531) == 65531  # a late packet from before the events keeps its number
    # removed numbers far behind fold into the offset without changing the mapping
    for s in range(5, 5 + SequenceGaps.HORIZON + 10):
        gaps.map(s)
    assert gaps.map(5 + SequenceGaps.HORIZON + 10) == (5 + SequenceGaps.HORIZON + 10 - 4) & 0xFFFF


# -- the session -------------------------------------------------------------------


async def test_the_offer_is_full_opus_111_and_telephone_events() -> None:
    session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id="offer")
    try:
        offer = await session.create_offer()
    finally:
        await session.close()
    assert sdp.rtpmaps(offer) == {
        111: ("opus", 48000),
        126: ("telephone-event", 8000),
        110: ("telephone-event", 48000),
    }
    assert "a=end-of-candidates" in offer and "trickle" not in offer
    assert sdp.candidate_addresses(offer) == ["127.0.0.1"]
    assert sdp.setup_role(offer) == "actpass"


async def test_gotos_seed_answer_is_accepted() -> None:
    session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id="seed")
    try:
        await session.create_offer()
        await session.accept_answer(SEED_ANSWER)
        assert session.state is SessionState.ANSWERED
        assert session._tap.payload_types[126] == 8000
        # the answer's candidate is unreachable: the session is not connected
        assert not session.connected.is_set()
    finally:
        await session.close()
    assert session.closed.is_set() and session.close_reason == "closed locally"


async def test_an_independent_goto_like_answer_is_accepted() -> None:
    session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id="static")
    try:
        offer = await session.create_offer()
        answer = build_answer_sdp(parse_offer(offer))
        await session.accept_answer(answer)
        assert session.answer_sdp == answer
    finally:
        await session.close()


async def test_state_errors_name_the_state() -> None:
    session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id="c-42")
    with pytest.raises(SessionError, match="cannot accept an answer on call c-42: it is NEW"):
        await session.accept_answer(SEED_ANSWER)
    await session.create_offer()
    with pytest.raises(SessionError, match="cannot create an offer on call c-42: it is OFFERED"):
        await session.create_offer()
    with pytest.raises(SessionError, match="no Opus"):
        await session.accept_answer(SEED_ANSWER.replace("opus", "PCMU"))
    await asyncio.gather(session.close(), session.close("again"))
    assert session.close_reason == "closed locally"
    with pytest.raises(SessionError, match="it is CLOSED"):
        session.start_recording("/nonexistent/never.wav")
    with pytest.raises(SessionError, match="closed before its media connected"):
        await session.wait_connected()
