"""The flow engine alone: events in, actions out, on an injected clock. No I/O.

Each test loads real flow files (the loader is part of what a flow is) and
walks a FlowRun through a conversation, checking every action it returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.flows.conftest import flows_from
from worker.flows import FlowSet, FlowStateError, Outcome
from worker.flows.engine import FlowRun, number_words, say_sounds
from worker.flows.events import (
    ActionDone,
    ActionFailed,
    CallerHungUp,
    Continue,
    Digit,
    End,
    FlowCall,
    HangUp,
    HttpFailed,
    HttpReply,
    HttpRequest,
    PlaybackDone,
    PlaySounds,
    RecordingDone,
    SendToVoicemail,
    StartRecording,
    StopRecording,
    Timeout,
    TransferCall,
    WaitForDigit,
)
from worker.media.recorder import RecordingInfo, StopReason

CALL = FlowCall("call-1", "+15145550199", "Ada Caller", "1000")

MENU_FLOW = """
    flow: main
    steps:
      welcome:
        play: greeting
      main_menu:
        menu:
          prompt: menu
          choices: {"1": sales, "2": support}
          invalid: invalid
          no_input: no_input
          timeout: 4
          retries: 2
          fallback: operator
      sales:
        play: ok
        next: bye
      support:
        play: ok
        next: bye
      operator:
        play: fallback
      bye:
        hangup: {}
"""


class Clock:
    """Media time and wall time that tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.media = 0.0
        self.now = now or datetime(2026, 3, 4, 15, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.media += seconds
        self.now += timedelta(seconds=seconds)


def start(flows: FlowSet, flow: str = "main", clock: Clock | None = None) -> tuple[FlowRun, Clock]:
    clock = clock or Clock()
    run = FlowRun(flows, flow, CALL, clock=lambda: clock.media, now=lambda: clock.now)
    return run, clock


@pytest.fixture
def menu_flows(tmp_path: Path, prompt_folder: Path) -> FlowSet:
    return flows_from(tmp_path, prompt_folder, main=MENU_FLOW)


def test_a_menu_choice_goes_to_its_step(menu_flows: FlowSet) -> None:
    run, clock = start(menu_flows)
    assert run.start() == PlaySounds(("greeting",), True)
    clock.advance(0.8)
    assert run.on(PlaybackDone()) == PlaySounds(("menu",), True)
    clock.advance(0.8)
    assert run.on(PlaybackDone()) == WaitForDigit(4.0)
    clock.advance(1.0)
    assert run.on(Digit("2", at=clock.media)) == PlaySounds(("ok",), True)
    assert run.on(PlaybackDone()) == HangUp("hangup step main.bye")
    assert run.on(ActionDone()) == End(Outcome.HUNG_UP, "hangup step main.bye")
    result = run.result()
    assert result.steps == ["main.welcome", "main.main_menu", "main.support", "main.bye"]
    assert result.keys == "2" and result.hung_up
    menu = result.path[1]
    assert (menu.at, menu.left_at) == (0.8, 2.6)
    assert menu.detail["choice"] == "2" and menu.detail["attempts"] == 1


def test_barge_in_cuts_the_prompt_and_the_key_reaches_the_menu(menu_flows: FlowSet) -> None:
    run, clock = start(menu_flows)
    run.start()
    clock.advance(0.3)
    # The key press during the greeting: the menu takes it as its choice at once.
    assert run.on(Digit("1", at=0.3)) == PlaySounds(("ok",), True)
    result = run.result()
    assert result.steps == ["main.welcome", "main.main_menu", "main.sales"]
    assert result.path[0].detail["barged_in"] == {"digit": "1", "at": 0.3}
    assert result.path[1].detail["choice"] == "1"


def test_without_barge_in_key_presses_during_a_prompt_are_ignored(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          notice:
            play: {prompt: greeting, barge_in: false}
          ask:
            gather: {max_digits: 2, first_digit_timeout: 3}
        """,
    )
    run, _ = start(flows)
    assert run.start() == PlaySounds(("greeting",), False)
    assert run.on(Digit("5")) == Continue()
    assert run.on(PlaybackDone()) == WaitForDigit(3.0)  # the 5 was not kept as type-ahead
    assert run.on(Digit("7")) == WaitForDigit(3.0)
    assert isinstance(run.on(Digit("8")), HangUp)  # two digits: done, and the flow ends
    assert run.variables["digits"] == "78"
    assert run.result().keys == "578"


def test_invalid_choices_replay_the_menu_then_fall_back(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    run.start()
    run.on(PlaybackDone())  # greeting done: the menu plays
    run.on(PlaybackDone())  # menu done: waiting
    assert run.on(Digit("9")) == PlaySounds(("invalid", "menu"), True)
    assert run.on(Digit("7")) == PlaySounds(("invalid", "menu"), True)  # barge-in, invalid
    # third invalid key: retries are used up; the invalid prompt, uninterruptible, then fallback
    assert run.on(Digit("8")) == PlaySounds(("invalid",), False)
    assert run.on(Digit("1")) == Continue()  # too late to choose
    assert run.on(PlaybackDone()) == PlaySounds(("fallback",), True)
    detail = run.result().path[1].detail
    assert detail["invalid"] == ["9", "7", "8"] and detail["attempts"] == 3
    assert detail["fell_back"] is True and "choice" not in detail
    assert run.result().steps[-1] == "main.operator"


def test_silence_gets_the_no_input_prompt_then_the_fallback(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    run.start()
    run.on(PlaybackDone())
    assert run.on(PlaybackDone()) == WaitForDigit(4.0)
    assert run.on(Timeout()) == PlaySounds(("no_input", "menu"), True)
    assert run.on(PlaybackDone()) == WaitForDigit(4.0)
    assert run.on(Timeout()) == PlaySounds(("no_input", "menu"), True)
    assert run.on(PlaybackDone()) == WaitForDigit(4.0)
    assert run.on(Timeout()) == PlaySounds(("no_input",), False)
    assert run.on(PlaybackDone()) == PlaySounds(("fallback",), True)
    assert run.result().path[1].detail["timeouts"] == 3


def test_a_valid_choice_after_an_invalid_one_is_taken(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    run.start()
    run.on(PlaybackDone())
    run.on(PlaybackDone())
    run.on(Timeout())
    assert run.on(Digit("1")) == PlaySounds(("ok",), True)  # during the no-input prompt
    assert run.result().path[1].detail == {
        "attempts": 2,
        "invalid": [],
        "timeouts": 1,
        "choice": "1",
    }


def test_no_retries_and_no_reprompt_falls_back_at_once(tmp_path: Path, prompt_folder: Path) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          ask:
            menu: {prompt: menu, choices: {"1": yes}, retries: 0, timeout: 2, fallback: no}
          yes:
            play: ok
            next: no
          no:
            play: fail
        """,
    )
    run, _ = start(flows)
    run.start()
    assert run.on(PlaybackDone()) == WaitForDigit(2.0)
    assert run.on(Timeout()) == PlaySounds(("fail",), True)


def test_gather_ends_on_the_finish_key_max_digits_or_timeouts(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          account:
            gather:
              prompt: menu
              max_digits: 4
              finish_key: "#"
              first_digit_timeout: 5
              inter_digit_timeout: 2
              into: account
              no_digits: nothing
          got:
            play: ok
          nothing:
            play: fail
        """,
    )
    run, _ = start(flows)
    assert run.start() == PlaySounds(("menu",), True)
    assert run.on(Digit("1")) == WaitForDigit(2.0)  # barge-in: the first key
    assert run.on(Digit("2")) == WaitForDigit(2.0)
    assert run.on(Digit("#")) == PlaySounds(("ok",), True)
    assert run.variables["account"] == "12"
    assert run.result().path[0].detail == {"ended": "finish_key", "digits": "12"}

    run, _ = start(flows)
    run.start()
    run.on(PlaybackDone())
    for digit in "987":
        run.on(Digit(digit))
    assert run.on(Digit("6")) == PlaySounds(("ok",), True)
    assert run.variables["account"] == "9876"
    assert run.result().path[0].detail["ended"] == "max_digits"

    run, _ = start(flows)
    run.start()
    assert run.on(PlaybackDone()) == WaitForDigit(5.0)
    run.on(Digit("4"))
    assert run.on(Timeout()) == PlaySounds(("ok",), True)  # inter-digit timeout
    assert run.variables["account"] == "4"

    run, _ = start(flows)
    run.start()
    run.on(PlaybackDone())
    assert run.on(Timeout()) == PlaySounds(("fail",), True)  # nothing pressed: no_digits
    assert run.variables["account"] == ""


def test_type_ahead_from_an_earlier_prompt_feeds_the_gather(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          hello:
            play: greeting
          pin:
            gather: {prompt: menu, max_digits: 3}
          done:
            play: ok
        """,
    )
    run, _ = start(flows)
    run.start()
    assert run.on(Digit("4")) == WaitForDigit(3.0)  # the prompt is skipped: typing has begun
    run.on(Digit("5"))
    assert run.on(Digit("6")) == PlaySounds(("ok",), True)
    assert run.variables["digits"] == "456"


def test_a_message_is_recorded_with_caller_time_and_duration(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          message:
            record:
              box: sales
              greeting: record_greeting
              max_seconds: 60
              silence_seconds: 4
              finish_key: "#"
          thanks:
            play: ok
        """,
    )
    run, clock = start(flows)
    assert run.start() == PlaySounds(("record_greeting", "beep"), False)
    assert run.on(Digit("#")) == Continue()  # the greeting cannot be skipped
    clock.advance(1.0)
    action = run.on(PlaybackDone())
    assert action == StartRecording("20260304-150001-call-1-sales.wav", "sales", 60.0, 4.0)
    assert run.on(Digit("3")) == Continue()
    assert run.on(Digit("#")) == StopRecording()
    info = RecordingInfo(tmp_path / action.file_name, 7.5, 720044, StopReason.CLOSED)
    assert run.on(RecordingDone(info)) == PlaySounds(("ok",), True)
    (message,) = run.result().messages
    assert (message.box, message.caller_number, message.caller_name) == (
        "sales",
        "+15145550199",
        "Ada Caller",
    )
    assert message.started_at == datetime(2026, 3, 4, 15, 0, 1, tzinfo=UTC)
    assert message.duration_seconds == 7.5 and message.path == info.path
    assert run.result().recordings == (info,)
    assert run.result().path[0].detail["stopped_by_key"] == "#"


def test_a_caller_hanging_up_while_recording_keeps_the_message(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          message:
            record: {beep: false, silence_seconds: null}
        """,
    )
    run, _ = start(flows)
    action = run.start()
    assert isinstance(action, StartRecording) and action.silence_seconds is None
    assert action.box == "main"  # the box defaults to the flow's name
    info = RecordingInfo(tmp_path / "m.wav", 3.0, 288044, StopReason.CLOSED)
    assert run.on(CallerHungUp("BYE", recording=info)) == End(Outcome.CALLER_HUNG_UP, "BYE")
    result = run.result()
    assert len(result.messages) == 1 and result.outcome is Outcome.CALLER_HUNG_UP
    assert result.messages[0].duration_seconds == 3.0 and result.recordings == (info,)
    assert result.steps == ["main.message"] and not result.hung_up


def test_say_digits_and_numbers() -> None:
    assert number_words(0) == ["digit_0"]
    assert number_words(15) == ["num_15"]
    assert number_words(40) == ["num_40"]
    assert number_words(342) == ["digit_3", "num_hundred", "num_40", "digit_2"]
    assert number_words(12_005) == ["num_12", "num_thousand", "digit_5"]
    assert number_words(999_999)[:3] == ["digit_9", "num_hundred", "num_90"]
    with pytest.raises(ValueError, match="out of range"):
        number_words(1_000_000)
    assert say_sounds("digits", "+1 (514) 0") == tuple(f"digit_{d}" for d in "15140")
    assert say_sounds("number", "1,200") == ("digit_1", "num_thousand", "digit_2", "num_hundred")
    assert say_sounds("number", "12a") == ("digit_1", "digit_2")  # not a number: its digits


def test_set_say_and_branch_on_variables(tmp_path: Path, prompt_folder: Path) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          remember:
            set: {greeting_for: "${caller_name} at ${extension}", tier: gold}
          route:
            branch:
              cases:
                - when: {var: caller, matches: "^\\\\+1(212|646)"}
                  goto: new_york
                - when: {all: [{var: tier, in: [gold, platinum]}, {var: caller, prefix: "+1514"}]}
                  goto: vip
              else: everyone
          vip:
            say: {number: "${extension}"}
            next: everyone
          new_york:
            play: fail
          everyone:
            play: ok
        """,
    )
    run, _ = start(flows)
    assert run.start() == PlaySounds(("digit_1", "num_thousand"), True)
    assert run.variables["greeting_for"] == "Ada Caller at 1000"
    result = run.result()
    assert result.steps == ["main.remember", "main.route", "main.vip"]
    assert result.path[1].detail["matched"] == 1
    assert result.path[0].detail["set"] == {"greeting_for": "Ada Caller at 1000", "tier": "gold"}


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Montreal is UTC-5 in winter and UTC-4 in summer; the window is its wall clock.
        (datetime(2026, 1, 14, 13, 59, tzinfo=UTC), "closed"),  # Wed 08:59 EST
        (datetime(2026, 1, 14, 14, 0, tzinfo=UTC), "open"),  # Wed 09:00 EST
        (datetime(2026, 7, 15, 13, 0, tzinfo=UTC), "open"),  # Wed 09:00 EDT
        (datetime(2026, 7, 15, 21, 0, tzinfo=UTC), "closed"),  # Wed 17:00 EDT
        (datetime(2026, 3, 8, 15, 0, tzinfo=UTC), "closed"),  # Sun 11:00 EDT (DST began)
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), "open"),  # Mon 09:30 EDT
        (datetime(2026, 12, 25, 15, 0, tzinfo=UTC), "holiday"),  # Fri 10:00, Christmas
        (datetime(2026, 7, 1, 14, 0, tzinfo=UTC), "holiday"),  # Canada Day, 2026 only
        (datetime(2026, 1, 15, 3, 0, tzinfo=UTC), "night"),  # Wed 22:00 EST: wraps midnight
    ],
)
def test_branch_on_time_of_day_weekday_and_date_in_a_zone(
    tmp_path: Path, prompt_folder: Path, utc: datetime, expected: str
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        timezone: America/Montreal
        steps:
          hours:
            branch:
              cases:
                - when: {date: ["12-25", "2026-07-01"]}
                  goto: holiday
                - when: {weekday: mon-fri, time: ["09:00", "17:00"]}
                  goto: open
                - when: {time: ["21:00", "06:00"]}
                  goto: night
              else: closed
          open:
            play: ok
          closed:
            play: fail
          holiday:
            play: greeting
          night:
            play: menu
        """,
    )
    run, _ = start(flows, clock=Clock(utc))
    run.start()
    assert run.result().steps[-1] == f"main.{expected}"


def test_transfer_voicemail_and_their_failures(tmp_path: Path, prompt_folder: Path) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          operator:
            transfer: {to: "+1 514 555 0100", fallback: sorry}
          sorry:
            play: fail
          box:
            voicemail: {number: "*86"}
        """,
    )
    run, _ = start(flows)
    assert run.start() == TransferCall("+15145550100")
    assert run.on(Digit("1")) == Continue()
    assert run.on(ActionDone()) == End(Outcome.TRANSFERRED, "transferred to +15145550100")
    assert not run.result().hung_up

    run, _ = start(flows)
    run.start()
    assert run.on(ActionFailed("HTTP 409: it is ENDED")) == PlaySounds(("fail",), True)
    assert run.result().path[0].detail["failed"] == "HTTP 409: it is ENDED"
    assert run.on(PlaybackDone()) == SendToVoicemail("*86")
    # No fallback: a failed voicemail hangs up.
    assert isinstance(run.on(ActionFailed("refused")), HangUp)
    assert run.on(ActionDone()).outcome is Outcome.HUNG_UP


def test_an_invalid_type_ahead_key_counts_as_an_invalid_choice(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    run.start()
    assert run.on(Digit("0")) == PlaySounds(("invalid", "menu"), True)
    assert run.result().path[1].detail["invalid"] == ["0"]


def test_a_step_without_next_goes_on_to_the_following_step(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    run.start()
    run.on(PlaybackDone())
    run.on(PlaybackDone())
    for _ in range(3):
        run.on(Timeout())
        run.on(PlaybackDone())  # the third no-input prompt is followed by the fallback
    assert run.result().steps[-1] == "main.operator"
    assert run.on(PlaybackDone()) == HangUp("hangup step main.bye")  # bye follows in the file


def test_the_end_of_the_file_hangs_up_and_a_failed_hangup_still_ends(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(tmp_path, prompt_folder, main="flow: main\nsteps:\n  a:\n    play: ok\n")
    run, _ = start(flows)
    run.start()
    assert run.on(PlaybackDone()) == HangUp("the flow ended")
    end = run.on(ActionFailed("404"))
    assert end == End(Outcome.HUNG_UP, "the flow ended (the hang-up request failed: 404)")
    assert run.on(Digit("1")) is end  # over is over


def test_goto_another_flow_and_a_loop_without_waiting_is_stopped(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          jump:
            goto: {flow: other, step: two}
        """,
        other="""
        flow: other
        steps:
          one:
            goto: two
          two:
            play: ok
            next: one
        """,
        loop="""
        flow: loop
        steps:
          a:
            goto: b
          b:
            set: {n: "x${n}"}
            next: a
        """,
    )
    run, _ = start(flows)
    assert run.start() == PlaySounds(("ok",), True)
    assert run.variables["flow"] == "other"
    assert run.on(PlaybackDone()) == PlaySounds(("ok",), True)  # one -> two again
    assert run.result().steps == ["main.jump", "other.two", "other.one", "other.two"]

    run, _ = start(flows, "loop")
    action = run.start()
    assert isinstance(action, HangUp) and "100 steps in a row" in action.reason
    assert run.on(ActionDone()).outcome is Outcome.FAILED
    assert len(run.result().path) == 100


HTTP_FLOW = """
    flow: main
    steps:
      account:
        gather: {max_digits: 3}
      lookup:
        http:
          url: http://127.0.0.1:9/ivr
          timeout: 2
          headers: {Authorization: "Bearer not-logged"}
          fallback: sorry
      normal:
        play: ok
        next: bye
      vip:
        play: greeting
        next: bye
        entry: true
      sorry:
        play: fail
      bye:
        hangup: {}
"""


def http_run(flows: FlowSet) -> tuple[FlowRun, HttpRequest]:
    run, _ = start(flows)
    run.start()
    for digit in "427":
        action = run.on(Digit(digit))
    assert isinstance(action, HttpRequest)
    return run, action


def test_the_http_step_posts_the_call_context_and_follows_the_reply(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(tmp_path, prompt_folder, main=HTTP_FLOW)
    run, request = http_run(flows)
    assert (request.url, request.timeout) == ("http://127.0.0.1:9/ivr", 2.0)
    assert "Bearer" not in repr(request)
    body = json.loads(json.dumps(dict(request.body)))
    assert body["caller"] == {"number": "+15145550199", "name": "Ada Caller"}
    assert body["variables"]["digits"] == "427" and body["digits"] == "427"
    assert body["path"] == ["main.account", "main.lookup"]
    assert (body["call_id"], body["extension"], body["step"]) == ("call-1", "1000", "lookup")

    reply = HttpReply(200, json.dumps({"next": "vip", "set": {"tier": "gold", "n": 3}}))
    assert run.on(reply) == PlaySounds(("greeting",), True)
    assert (run.variables["tier"], run.variables["n"]) == ("gold", "3")

    run, _ = http_run(flows)
    assert run.on(HttpReply(204, "")) == PlaySounds(("ok",), True)  # no body: next


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (HttpFailed("no reply within 2 s"), "no reply within 2 s"),
        (HttpFailed("ConnectError: [Errno 111] Connection refused"), "Connection refused"),
        (HttpReply(500, "oops"), "HTTP 500"),
        (HttpReply(200, "{not json"), "not JSON"),
        (HttpReply(200, "[1, 2]"), "not a JSON object"),
        (HttpReply(200, '{"next": "nowhere"}'), "step 'nowhere'"),
        (HttpReply(200, '{"flow": "elsewhere"}'), "flow 'elsewhere'"),
        (HttpReply(200, '{"set": {"a": [1]}}'), "sets 'a'"),
        (HttpReply(200, '{"next": 3}'), "must be text"),
    ],
)
def test_http_errors_go_to_the_fallback(
    tmp_path: Path, prompt_folder: Path, event: HttpReply | HttpFailed, reason: str
) -> None:
    flows = flows_from(tmp_path, prompt_folder, main=HTTP_FLOW)
    run, _ = http_run(flows)
    assert run.on(event) == PlaySounds(("fail",), True)
    assert reason in run.result().path[1].detail["failed"]


def test_late_events_change_nothing_and_misuse_is_refused(menu_flows: FlowSet) -> None:
    run, _ = start(menu_flows)
    with pytest.raises(FlowStateError, match="before start"):
        run.on(PlaybackDone())
    run.start()
    with pytest.raises(FlowStateError, match="already started"):
        run.start()
    assert run.on(Timeout()) == Continue()  # no wait is pending while a prompt plays
    assert run.on(HttpReply(200, "{}")) == Continue()
    assert run.result().outcome is Outcome.FAILED  # not finished yet
    assert run.on(CallerHungUp()) == End(Outcome.CALLER_HUNG_UP, "the caller hung up")
