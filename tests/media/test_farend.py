"""gotosim's aiortc far end: the caller script, its signals, its answers, and the simulator.

The far end makes its RFC 4733 payloads and DTMF tones itself; the worker's
decoders must read them (two implementations agreeing). The last test runs a
whole inbound call through a real :class:`gotosim.simulator.Simulator` (no
HTTP for the REST side, a real webhook receiver on loopback) with the far end
as the simulator's far end.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gotosim.farend import (
    AiortcFarEnd,
    CallerScript,
    DigitCue,
    HeardReport,
    ScriptError,
    aiortc_far_end_factory,
    event_payload,
    tone_samples,
)
from gotosim.media import FarEndError
from gotosim.model import CallState, SimConfig
from gotosim.simulator import Simulator
from tests.helpers import serve
from tests.media.conftest import LOOPBACK, assert_loopback_only, sim_call
from worker.flows.testing import WebhookReceiver
from worker.media import sdp
from worker.media.dtmf import DIGITS, InbandDetector, parse_rfc4733
from worker.media.session import CallSession, MediaConfig

DEADLINE = 30.0

# -- the script ------------------------------------------------------------------------


def test_a_full_script_parses(tmp_path: Path) -> None:
    (tmp_path / "hello.wav").write_bytes(b"RIFF")
    script = CallerScript.parse(
        {
            "audio": "hello.wav",
            "audio_at": 0.5,
            "loop_audio": True,
            "digits": [
                {"at": 1.5, "digit": "2"},
                {"at": 2.0, "digit": "#", "mode": "inband", "seconds": 0.2},
                {"at": 2.5, "digit": "a", "mode": "both", "clock_rate": 48000},
            ],
            "hangup_at": 6.0,
            "record": 30,
        },
        root=tmp_path,
    )
    assert script.audio == tmp_path / "hello.wav"
    assert script.digits == (
        DigitCue(1.5, "2", "rfc4733", 8000, 0.12),
        DigitCue(2.0, "#", "inband", 8000, 0.2),
        DigitCue(2.5, "A", "both", 48000, 0.12),
    )
    assert (script.audio_at, script.loop_audio, script.hangup_at, script.record_seconds) == (
        0.5,
        True,
        6.0,
        30.0,
    )
    assert CallerScript.parse(None) == CallerScript()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "script: expected a JSON object"),
        ({"audo": "x.wav"}, r"unknown keys \['audo'\]"),
        ({"audio": "missing.wav"}, "script.audio: no such file"),
        ({"hangup_at": -1}, "script.hangup_at"),
        ({"hangup_at": True}, "script.hangup_at"),
        ({"digits": "123"}, "script.digits: expected a list"),
        ({"digits": [{"at": 1, "digit": "12"}]}, r"script.digits\[0\].digit"),
        ({"digits": [{"digit": "1"}]}, r"script.digits\[0\].at"),
        ({"digits": [{"at": 1, "digit": "1", "mode": "sip"}]}, r"\[0\].mode"),
        ({"digits": [{"at": 1, "digit": "1", "clock_rate": 16000}]}, r"\[0\].clock_rate"),
        ({"digits": [{"at": 1, "digit": "1", "seconds": 5}]}, r"\[0\].seconds"),
        ({"loop_audio": "yes"}, "script.loop_audio"),
    ],
)
def test_a_bad_script_is_refused_naming_the_key(raw: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=message):
        CallerScript.parse(raw, root=tmp_path)


# -- its signals, read by the worker's decoders ------------------------------------------


def test_event_payloads_read_back_with_the_workers_parser() -> None:
    for code, digit in enumerate(DIGITS):
        for end in (False, True):
            parsed = parse_rfc4733(event_payload(digit, 960, end, 10))
            assert (parsed.event, parsed.end, parsed.volume, parsed.duration) == (
                code,
                end,
                10,
                960,
            )


def test_tones_are_heard_by_the_workers_inband_detector() -> None:
    silence = np.zeros(4800)
    heard = []
    for digit in DIGITS:
        detector = InbandDetector(48000)
        samples = np.concatenate([silence, tone_samples(digit, 0.1), silence])
        pcm = samples.astype("<i2").tobytes()
        heard.append("".join(e.digit for e in detector.feed(pcm, 0.0)))
    assert heard == list(DIGITS)


def test_sound_spans_merge_short_pauses() -> None:
    quiet, loud = -90.0, -20.0
    levels = [quiet] * 5 + [loud] * 10 + [quiet] * 5 + [loud] * 5 + [quiet] * 20 + [loud] * 3
    report = HeardReport(
        call_id="c",
        wav_path=Path("c.wav"),
        connected=True,
        closed=True,
        frames_sent=0,
        frames_heard=len(levels),
        energy=tuple((i * 0.02, level) for i, level in enumerate(levels)),
        digits_sent=(),
        notes=(),
        recording=None,
    )
    spans = [(round(a, 2), round(b, 2)) for a, b in report.sound(-45.0, min_gap=0.2)]
    assert spans == [(0.1, 0.5), (0.9, 0.96)]
    body = report.as_json()
    assert body["sound"] == [[0.1, 0.5], [0.9, 0.96]]
    assert body["seconds_heard"] == round(len(levels) * 0.02, 3)
    json.dumps(body)


# -- its answers ------------------------------------------------------------------------


async def _offer(config: MediaConfig | None = None) -> tuple[CallSession, str]:
    session = CallSession(config or MediaConfig(candidate_addresses=LOOPBACK), call_id="o")
    return session, await session.create_offer()


async def test_the_answer_looks_like_gotos(tmp_path: Path) -> None:
    far = AiortcFarEnd(tmp_path / "heard", candidate_addresses=LOOPBACK)
    session, offer = await _offer()
    try:
        answer = await far.answer(sim_call("looks"), offer)
    finally:
        await asyncio.gather(session.close(), far.close())
    assert_loopback_only(answer)
    assert sdp.is_ice_lite(answer)
    assert sdp.setup_role(answer) == "passive"
    assert sdp.rtpmaps(answer) == {
        111: ("opus", 48000),
        126: ("telephone-event", 8000),
        110: ("telephone-event", 48000),
    }
    assert sdp.media_ids(answer) == sdp.media_ids(offer)
    assert "a=sendrecv" in answer  # the caller talks as well as listens


async def test_an_offer_without_the_scripts_event_rate_is_refused(tmp_path: Path) -> None:
    far = AiortcFarEnd(tmp_path / "heard", candidate_addresses=LOOPBACK)
    only_8000 = MediaConfig(
        candidate_addresses=LOOPBACK, telephone_events=(sdp.TelephoneEvent(126, 8000),)
    )
    session, offer = await _offer(only_8000)
    script = {"digits": [{"at": 1, "digit": "1", "clock_rate": 48000}]}
    try:
        with pytest.raises(FarEndError, match=r"RFC 4733 at 48000 Hz.*only at \[8000\]"):
            await far.answer(sim_call("rate", script), offer)
        with pytest.raises(FarEndError, match=r"script\.digits"):
            await far.answer(sim_call("bad", {"digits": [{"at": 1}]}), offer)
        with pytest.raises(FarEndError, match="cannot answer the offer"):
            await far.answer(sim_call("junk"), "v=0\r\nm=audio 9 RTP/AVP 0\r\n")
    finally:
        await asyncio.gather(session.close(), far.close())
    assert far.leg("rate").closed.is_set() and far.leg("junk").closed.is_set()
    with pytest.raises(KeyError, match="no call 'nobody'"):
        far.heard("nobody")


# -- through the simulator -----------------------------------------------------------------


class WebhookSink(WebhookReceiver):
    """A real webhook receiver (the flow sandbox's), with a look-up of what it kept."""

    def find(self, kind: str, call_id: str) -> Any:
        for body in list(self.bodies):
            text = json.dumps(body)
            if call_id in text and f'"{kind}"' in text:
                return body
        return None


async def test_an_inbound_call_through_the_simulator(tmp_path: Path) -> None:
    sink = WebhookSink()
    sim = Simulator(
        SimConfig(extensions=("1000",)),
        far_end_factory=aiortc_far_end_factory(tmp_path / "heard", candidate_addresses=LOOPBACK),
    )
    with serve(sink) as hooks:
        await sim.start()
        session: CallSession | None = None
        try:
            channel = await sim.create_channel("worker", f"{hooks.url}/hook", None, False, False)
            sim.directory.add_device(
                "dev-1", None, None, None, channel.channel_id, channel.channel_id
            )
            sim.add_extensions("dev-1", sim.config.organization_id, [("1000", None)])
            script = {"digits": [{"at": 0.4, "digit": "7"}], "hangup_at": 1.2}
            call = sim.place_call("1000", "+15550100", "Caller", script)

            session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id=call.id)
            offer = await session.create_offer()
            answered = await sim.calls.answer(call.id, offer, channel.channel_id)
            assert answered.state is CallState.CONNECTED
            assert answered.answer_sdp is not None
            assert_loopback_only(answered.answer_sdp)
            await session.accept_answer(answered.answer_sdp)
            far_end = sim.far_end
            assert isinstance(far_end, AiortcFarEnd)
            async with asyncio.timeout(DEADLINE):
                await session.closed.wait()  # the script hangs up at 1.2 s
                await far_end.leg(call.id).closed.wait()  # the simulator hung the far end up
            assert call.far_end_released

            assert [d.digit for d in session.digits.history] == ["7"]
            assert call.state is CallState.ENDED and call.outcome == "COMPLETED"
            events = [e.event for e in call.events]
            for expected in ("media-connected", "caller-digit", "caller-hangup", "ended"):
                assert expected in events, events
            report = far_end.heard(call.id)
            assert report.connected and report.closed and report.frames_heard > 0
            assert [d.digit for d in report.digits_sent] == ["7"]
            ended = await sim.wait_for(lambda: sink.find("ended", call.id), within=DEADLINE)
            assert ended is not None, f"no 'ended' webhook for {call.id}: {sink.bodies}"
        finally:
            if session is not None:
                await session.close()
            await sim.close()
