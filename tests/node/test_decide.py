from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.config import Settings
from worker.node.decide import Action, CallFacts, DefaultPolicy, Load, decide
from worker.node.hours import HoursError, is_open, parse_weekly_hours

IDLE = Load(live_calls=0, max_live_calls=5, loop_lag_ms=1.0, max_loop_lag_ms=50.0)
CALL = CallFacts(call_id="c1", caller_number="+15145550000", extension="1000")


def policy(**env: str) -> DefaultPolicy:
    return DefaultPolicy.from_settings(
        Settings.from_env({f"CALLWORKER_{k}": v for k, v in env.items()})
    )


def test_answers_by_default_with_greeting_and_recording() -> None:
    decision = decide(
        CALL, datetime(2026, 11, 26, 12, tzinfo=UTC), IDLE, policy(RECORD_SECONDS="12")
    )
    assert decision.action is Action.ANSWER
    assert decision.greeting == "greeting"
    assert decision.record_seconds == 12


def test_blocklisted_caller_goes_to_voicemail() -> None:
    decision = decide(
        CALL, datetime(2026, 11, 26, 12, tzinfo=UTC), IDLE, policy(BLOCKLIST="+15145550000")
    )
    assert decision.action is Action.VOICEMAIL
    assert "blocklist" in decision.reason


def test_outside_hours_goes_to_voicemail_in_the_named_zone() -> None:
    hours = policy(OPEN_HOURS="mon-fri 09:00-17:00", TIMEZONE="America/Montreal")
    # Thursday 2026-11-26 15:00 UTC is 10:00 in Montreal (EST, UTC-5): open.
    assert decide(CALL, datetime(2026, 11, 26, 15, tzinfo=UTC), IDLE, hours).action is Action.ANSWER
    # 13:00 UTC is 08:00 in Montreal: closed.
    closed = decide(CALL, datetime(2026, 11, 26, 13, tzinfo=UTC), IDLE, hours)
    assert closed.action is Action.VOICEMAIL
    assert closed.reason == "outside opening hours"
    # Saturday: closed all day.
    assert (
        decide(CALL, datetime(2026, 11, 28, 15, tzinfo=UTC), IDLE, hours).action is Action.VOICEMAIL
    )


def test_daylight_saving_moves_with_the_wall_clock() -> None:
    windows = parse_weekly_hours("mon-sun 09:00-10:00")
    # Paris: UTC+2 in summer, UTC+1 in winter; 09:30 local both times.
    assert is_open(windows, datetime(2026, 7, 1, 7, 30, tzinfo=UTC), "Europe/Paris")
    assert is_open(windows, datetime(2026, 12, 1, 8, 30, tzinfo=UTC), "Europe/Paris")
    assert not is_open(windows, datetime(2026, 12, 1, 7, 30, tzinfo=UTC), "Europe/Paris")


def test_full_node_gives_overflow_action() -> None:
    full = Load(live_calls=5, max_live_calls=5, loop_lag_ms=1.0, max_loop_lag_ms=50.0)
    decision = decide(CALL, datetime(2026, 11, 26, 12, tzinfo=UTC), full, policy())
    assert decision.action is Action.VOICEMAIL
    assert "full (5/5" in decision.reason
    noon = datetime(2026, 11, 26, 12, tzinfo=UTC)
    lagging = Load(live_calls=2, max_live_calls=5, loop_lag_ms=80.0, max_loop_lag_ms=50.0)
    assert decide(CALL, noon, lagging, policy(OVERFLOW_ACTION="decline")).action is Action.DECLINE
    # With no call on the node, lag is the machine's, not the node's: answer.
    idle_but_slow = Load(live_calls=0, max_live_calls=5, loop_lag_ms=80.0, max_loop_lag_ms=50.0)
    assert decide(CALL, noon, idle_but_slow, policy()).action is Action.ANSWER


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fri 9-17", "expected a time HH:MM"),
        ("fri-mon 09:00-17:00", "runs backwards"),
        ("mon 17:00-09:00", "before it opens"),
        ("weekdays", "expected '<days> HH:MM-HH:MM'"),
    ],
)
def test_bad_hours_name_the_window(text: str, message: str) -> None:
    with pytest.raises(HoursError, match=message):
        parse_weekly_hours(text)
