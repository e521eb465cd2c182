"""Flows on real calls: gotosim's scripted caller over WebRTC on loopback, actions via the API.

Each test runs :class:`worker.flows.testing.FlowSandbox` (gotosim served on
127.0.0.1 with its aiortc far end, a GoTo client provisioned on it) and
checks both sides: the flow's result, what the caller heard (by
cross-correlation with the prompts) and the sandbox's view of the call.
Waits are on events with generous deadlines; times are on media clocks.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.flows.conftest import flows_from
from tests.helpers import ServerThread, free_port
from tests.media.conftest import pcm_array, read_wav, similarity, speak
from worker.flows import FlowSet, Outcome, load_flows
from worker.flows.testing import FlowSandbox, SandboxCall
from worker.media.prompts import PromptLibrary, load_prompt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "attendant" / "flows"
WEDNESDAY_10AM_MONTREAL = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[FlowSandbox]:
    async with FlowSandbox(tmp_path / "sandbox") as box:
        yield box


@pytest.fixture(scope="module")
def example() -> FlowSet:
    flows = load_flows(EXAMPLE)
    flows.prompts.preload()
    return flows


def heard(call: SandboxCall) -> np.ndarray[Any, Any]:
    return read_wav(call.heard.wav_path)


def assert_heard(call: SandboxCall, prompts: PromptLibrary, name: str) -> float:
    """The caller heard prompt ``name`` whole; returns (where it was heard) - (when it started).

    The far end's clock starts at its own first frame, a little apart from ours,
    and what it hears comes through a jitter buffer, so the difference is about
    0.1-0.2 s on an idle machine; it is the same for every prompt of one call.
    """
    match = similarity(pcm_array(prompts.get(name).pcm), heard(call))
    assert match.waveform > 0.8 and match.envelope > 0.9, (name, match)
    offset = match.lag_seconds - started(call, name)
    assert -0.5 < offset < 1.5, (name, match, call.result.playbacks)
    return offset


def started(call: SandboxCall, name: str) -> float:
    (record,) = [p for p in call.result.playbacks if p.sound == name]
    assert record.started_at is not None
    return record.started_at


async def test_pressing_2_reaches_support_and_a_message_is_left_in_our_box(
    sandbox: FlowSandbox, example: FlowSet, tmp_path: Path
) -> None:
    prompts = example.prompts
    said = load_prompt(
        speak("Hello, this is Ada. Please call me back about my order.", tmp_path / "message.wav")
    )
    support = prompts.get("support").duration
    greeting = prompts.get("record_after_tone").duration + prompts.get("beep").duration
    press_2 = 1.0  # during the welcome: barge-in, and the menu takes the 2 as type-ahead
    press_1 = press_2 + support + 1.0  # during the offer to leave a message
    talk_at = press_1 + greeting + 0.8  # after the beep
    press_pound = talk_at + said.duration + 0.6
    script = {
        "audio": str(tmp_path / "message.wav"),
        "audio_at": talk_at,
        "digits": [
            {"at": press_2, "digit": "2"},
            {"at": press_1, "digit": "1"},
            {"at": press_pound, "digit": "#"},
        ],
        "hangup_at": press_pound + 20.0,  # only if the flow failed to hang up
    }
    call = await sandbox.call(example, "main", script=script, caller="+15145550199")
    result = call.result

    assert result.steps == [
        "main.welcome",
        "main.main_menu",
        "main.support",
        "main.support_offer",
        "main.support_message",
        "main.thanks",
        "main.hang_up",
    ]
    assert result.outcome is Outcome.HUNG_UP and result.hung_up
    assert result.keys == "21#"
    assert (call.sim_call.outcome, call.sim_call.reason_code) == ("COMPLETED", "BYE")
    # The menu prompt never played: the 2 pressed during the welcome chose support.
    assert [p.sound for p in result.playbacks][:2] == ["welcome", "support"]
    assert "main_menu" not in [p.sound for p in result.playbacks]
    offsets = [assert_heard(call, prompts, name) for name in ("support", "thanks")]
    assert abs(offsets[0] - offsets[1]) < 0.1, offsets  # heard where and when they were played

    (message,) = result.messages
    assert (message.box, message.caller_number, message.caller_name, message.extension) == (
        "support",
        "+15145550199",
        "Test Caller",
        "1000",
    )
    assert message.stop_reason == "closed"  # stopped by the # key
    assert abs(message.duration_seconds - (press_pound - (press_1 + greeting))) < 0.5, message
    assert result.recordings == (result.recordings[0],)
    assert message.path.parent == sandbox.recordings_dir
    assert stat.S_IMODE(os.stat(message.path).st_mode) == 0o600
    recorded = read_wav(message.path)
    match = similarity(pcm_array(said.pcm), recorded)
    assert match.waveform > 0.8 and match.envelope > 0.9, match
    # Where the caller's words sit in the message: from the media time the recording began
    # (the beep's end) to when the caller started talking, on our clock (placed by the
    # press of 1: sent at `sent` on the caller's clock, received at `got` on ours).
    record_start = next(p.stopped_at for p in result.playbacks if p.sound == "beep")
    sent = next(d.media_time for d in call.heard.digits_sent if d.digit == "1")
    got = next(d.at for d in result.digits if d.digit == "1")
    assert record_start is not None
    expected = talk_at + (got - sent) - record_start
    assert abs(match.lag_seconds - expected) < 0.25, (match, expected)
    details = message.path.with_suffix(".json")
    assert stat.S_IMODE(os.stat(details).st_mode) == 0o600
    saved = json.loads(details.read_text())
    assert saved["box"] == "support" and saved["caller_number"] == "+15145550199"
    assert saved["call_id"] == call.call_id and saved["file"] == message.path.name
    assert datetime.fromisoformat(saved["started_at"]).tzinfo is not None


SILENCE_FLOW = """
    flow: main
    steps:
      ask:
        menu:
          prompt: menu
          choices: {"1": chosen}
          no_input: no_input
          timeout: 1
          retries: 1
          fallback: operator
      chosen:
        play: ok
      operator:
        play: fallback
      bye:
        hangup: {}
"""


async def test_silence_gets_the_retry_prompt_then_the_fallback(
    sandbox: FlowSandbox, tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(tmp_path / "flows", prompt_folder, main=SILENCE_FLOW)
    call = await sandbox.call(flows, "main", script={"hangup_at": 30.0})
    result = call.result
    plays = result.playbacks
    assert [p.sound for p in plays] == ["menu", "no_input", "menu", "no_input", "fallback"]
    assert all(p.finished for p in plays), plays
    # one second of silence (the timeout) after each menu
    for menu, reprompt in ((plays[0], plays[1]), (plays[2], plays[3])):
        assert menu.stopped_at is not None and reprompt.started_at is not None
        assert 0.95 <= reprompt.started_at - menu.stopped_at < 1.5, (menu, reprompt)
    assert result.steps == ["main.ask", "main.operator", "main.bye"]
    detail = result.path[0].detail
    assert (detail["timeouts"], detail["attempts"], detail["fell_back"]) == (2, 2, True)
    assert result.outcome is Outcome.HUNG_UP
    prompts = flows.prompts
    offset = assert_heard(call, prompts, "fallback")
    # Between the first menu and the no-input prompt, the caller heard silence.
    waits = [(plays[0].stopped_at or 0.0) + 0.2, (plays[1].started_at or 0.0) - 0.2]
    levels = [
        level for at, level in call.heard.energy if waits[0] + offset < at < waits[1] + offset
    ]
    assert levels and max(levels) < -50.0, levels


BARGE_FLOW = """
    flow: main
    steps:
      long:
        play: long
      key:
        gather: {max_digits: 1, first_digit_timeout: 5}
"""


async def test_a_digit_during_a_prompt_stops_it_within_100_ms_of_media_time(
    sandbox: FlowSandbox, tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(tmp_path / "flows", prompt_folder, main=BARGE_FLOW)
    press_at = 1.0

    def script(mode: str) -> dict[str, Any]:
        return {"digits": [{"at": press_at, "digit": "5", "mode": mode}], "hangup_at": 20.0}

    calls = await asyncio.gather(
        sandbox.call(flows, "main", script=script("rfc4733")),
        sandbox.call(flows, "main", script=script("inband")),
        sandbox.call(flows, "main", script={"hangup_at": 1.5}),  # hangs up mid-prompt
    )
    for call, source in zip(calls[:2], ("rfc4733", "inband"), strict=True):
        result = call.result
        (playback,) = result.playbacks
        (digit,) = result.digits
        assert (digit.digit, digit.source) == ("5", source)
        assert not playback.finished and playback.stopped_at is not None
        reaction = playback.stopped_at - digit.at
        assert 0.0 <= reaction <= 0.1, (source, reaction, digit, playback)
        assert result.path[0].detail["barged_in"]["digit"] == "5"
        assert result.variables["digits"] == "5"  # the key also went to the gather
        spans = call.heard.sound(threshold_dbfs=-40.0)
        assert spans and spans[0][0] < 0.4, spans
        assert press_at < spans[-1][1] < press_at + 0.5, (source, spans)
        assert result.outcome is Outcome.HUNG_UP
    hung_up = calls[2].result
    assert hung_up.outcome is Outcome.CALLER_HUNG_UP and not hung_up.hung_up
    assert hung_up.steps == ["main.long"]
    assert calls[2].sim_call.outcome == "COMPLETED"


# -- the HTTP step against a real local server ----------------------------------------------


class Backend:
    """The IVR's custom logic: a real HTTP server on 127.0.0.1."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def route(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        tier = "gold" if body["variables"].get("digits") == "42" else "basic"
        return JSONResponse({"next": "vip" if tier == "gold" else "normal", "set": {"tier": tier}})

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(2.0)  # slower than the step's timeout: the behaviour under test
        return JSONResponse({"next": "vip"})

    async def error(self, request: Request) -> Response:
        return PlainTextResponse("boom", status_code=500)

    async def bad(self, request: Request) -> Response:
        return PlainTextResponse("<html>not json</html>")


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[Backend, str]]:
    state = Backend()
    app = Starlette(
        routes=[
            Route(f"/{name}", getattr(state, name), methods=["POST"])
            for name in ("route", "slow", "error", "bad")
        ]
    )
    server = ServerThread(app).start()
    try:
        yield state, server.url
    finally:
        server.stop()


def http_flow(name: str, url: str) -> str:
    return f"""
        flow: {name}
        steps:
          account:
            gather: {{max_digits: 2, first_digit_timeout: 4}}
          lookup:
            http: {{url: "{url}", timeout: 0.5, fallback: sorry}}
          normal:
            play: ok
            next: bye
          vip:
            entry: true
            play: greeting
            next: bye
          sorry:
            play: fail
          bye:
            hangup: {{}}
    """


async def test_the_http_step_branches_on_json_and_its_failures_reach_the_fallback(
    sandbox: FlowSandbox, tmp_path: Path, prompt_folder: Path, backend: tuple[Backend, str]
) -> None:
    state, url = backend
    refused = f"http://127.0.0.1:{free_port()}/nobody"
    files = {name: http_flow(name, f"{url}/{name}") for name in ("route", "slow", "error", "bad")}
    flows = flows_from(
        tmp_path / "flows", prompt_folder, refused=http_flow("refused", refused), **files
    )
    script = {"digits": [{"at": 0.5, "digit": "4"}, {"at": 0.8, "digit": "2"}], "hangup_at": 20.0}
    names = ["route", "slow", "error", "bad", "refused"]
    calls = dict(
        zip(
            names,
            await asyncio.gather(*(sandbox.call(flows, n, script=script) for n in names)),
            strict=True,
        )
    )

    routed = calls["route"]
    assert routed.result.steps == ["route.account", "route.lookup", "route.vip", "route.bye"]
    assert routed.result.variables["tier"] == "gold"
    (body,) = [b for b in state.bodies if b["call_id"] == routed.call_id]
    assert body["caller"] == {"number": "+15145550199", "name": "Test Caller"}
    assert body["variables"]["digits"] == "42" and body["extension"] == "1000"
    assert body["path"] == ["route.account", "route.lookup"]
    assert_heard(routed, flows.prompts, "greeting")

    expected = {
        "slow": "no reply within 0.5 s",
        "error": "HTTP 500",
        "bad": "the reply is not JSON",
        "refused": "ConnectError",
    }
    for name, reason in expected.items():
        result = calls[name].result
        assert result.steps == [
            f"{name}.account",
            f"{name}.lookup",
            f"{name}.sorry",
            f"{name}.bye",
        ], result.steps
        assert reason in result.path[1].detail["failed"], (name, result.path[1].detail)
        assert result.outcome is Outcome.HUNG_UP
        assert_heard(calls[name], flows.prompts, "fail")


# -- transfer and voicemail through the API --------------------------------------------------


async def test_the_operator_is_a_blind_transfer_through_the_api(
    sandbox: FlowSandbox, example: FlowSet
) -> None:
    call = await sandbox.call(
        example,
        "main",
        script={"digits": [{"at": 0.6, "digit": "0"}], "hangup_at": 20.0},
        now=lambda: WEDNESDAY_10AM_MONTREAL,
    )
    assert call.result.steps == [
        "main.welcome",
        "main.main_menu",
        "main.operator",
        "main.operator_transfer",
    ]
    assert call.result.outcome is Outcome.TRANSFERRED and not call.result.hung_up
    assert call.sim_call.outcome == "TRANSFERRED"
    assert call.sim_call.transfer_target == "+15145550100"


async def test_voicemail_is_a_transfer_to_the_voicemail_number_or_falls_back(
    sandbox: FlowSandbox, example: FlowSet
) -> None:
    press = {"digits": [{"at": 0.5, "digit": "9"}]}  # barge through the holiday message
    with_number, without = await asyncio.gather(
        sandbox.call(
            example, "holiday", script={**press, "hangup_at": 20.0}, voicemail_number="*86"
        ),
        sandbox.call(example, "holiday", script={**press, "hangup_at": 3.0}),
    )
    assert with_number.result.outcome is Outcome.VOICEMAIL
    assert (with_number.sim_call.outcome, with_number.sim_call.transfer_target) == (
        "TRANSFERRED",
        "*86",
    )
    # No number: GoTo's reject-to-voicemail is refused on an answered call (409), so the
    # flow goes to its fallback, our own box, where the caller hangs up.
    result = without.result
    assert result.steps == ["holiday.message", "holiday.to_voicemail", "after_hours.message"]
    failed = result.path[1].detail["failed"]
    assert "409" in failed or "CONNECTED" in failed, failed
    assert result.outcome is Outcome.CALLER_HUNG_UP
    (message,) = result.messages
    assert message.box == "after_hours" and message.path.is_file()
