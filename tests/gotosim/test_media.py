"""The static far end's SDP answers: GoTo-like, and accepted by a real aiortc peer."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from gotosim.media import FarEndError, StaticFarEnd, build_answer_sdp, parse_offer
from gotosim.model import CallState, Direction, SimCall
from tests.gotosim.conftest import OFFER, seed


def a_call() -> SimCall:
    return SimCall(
        id="c1",
        direction=Direction.INBOUND,
        organization_id="org",
        extension_number="1000",
        number="+1555",
        name="Bob",
        state=CallState.INCOMING,
        created_at=0.0,
    )


def test_answer_to_the_seed_offer() -> None:
    offer = parse_offer(seed("make_call_request")["sdp"])
    assert (offer.opus_pt, offer.telephone_event_pt, offer.mid) == (111, None, "audio0")
    answer = build_answer_sdp(offer)
    lines = answer.split("\r\n")
    assert lines[0] == "v=0"
    for expected in (
        "a=ice-lite",
        "a=setup:passive",
        "a=rtcp-mux",
        "a=rtpmap:111 OPUS/48000/2",
        "a=mid:audio0",
        "a=end-of-candidates",
    ):
        assert expected in lines, expected
    (media,) = [line for line in lines if line.startswith("m=audio ")]
    assert media.endswith("UDP/TLS/RTP/SAVPF 111")
    (candidate,) = [line for line in lines if line.startswith("a=candidate:")]
    assert " 127.0.0.1 " in candidate and candidate.endswith("typ host")
    assert not any("telephone-event" in line for line in lines)


def test_telephone_event_is_answered_when_offered() -> None:
    answer = build_answer_sdp(parse_offer(OFFER))
    assert "a=rtpmap:101 telephone-event/8000" in answer
    assert " UDP/TLS/RTP/SAVPF 111 101\r\n" in answer


@pytest.mark.parametrize(
    ("sdp", "why"),
    [
        ("", "v=0"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", "m=audio"),
        ("v=0\r\nm=audio 9 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n", "Opus"),
    ],
)
def test_unusable_offers_are_refused(sdp: str, why: str) -> None:
    with pytest.raises(FarEndError, match=why):
        parse_offer(sdp)


async def test_a_real_aiortc_peer_accepts_the_answer() -> None:
    peer = RTCPeerConnection()
    try:
        peer.addTransceiver("audio", direction="sendrecv")
        await peer.setLocalDescription(await peer.createOffer())
        far_end = StaticFarEnd()
        answer = await far_end.answer(a_call(), peer.localDescription.sdp)
        await peer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert peer.signalingState == "stable"
        assert peer.remoteDescription is not None
        (transceiver,) = peer.getTransceivers()
        assert transceiver.currentDirection == "sendrecv"
        assert far_end.answered == ["c1"]
    finally:
        await peer.close()
