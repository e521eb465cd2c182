"""The default call decision: a pure function of (call, now, load, policy).

Until routing rules and flows are configured, a node answers every caller
with a greeting and records them for a while, except callers on the
blocklist and calls outside the opening hours, which go to GoTo voicemail
(``reject`` with ``SEND_TO_VOICEMAIL``). A full node gives the overflow
action instead of answering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from worker.config import Settings
from worker.node.hours import Window, is_open, parse_weekly_hours


class Action(StrEnum):
    ANSWER = "answer"
    VOICEMAIL = "voicemail"
    DECLINE = "decline"
    IGNORE = "ignore"
    FORWARD = "forward"  # blind transfer to Decision.destination (routing rules only)


@dataclass(frozen=True)
class Decision:
    """What to do with a new call.

    ``flow`` names the flow to run on ANSWER ("" means the node's default path:
    greet and record), ``destination`` is the E.164 number or extension for
    FORWARD, and ``rule`` names the routing rule that matched ("" when the
    settings-driven default decided).
    """

    action: Action
    reason: str
    greeting: str = ""
    record_seconds: int = 0
    flow: str = ""
    destination: str = ""
    rule: str = ""


@dataclass(frozen=True)
class CallFacts:
    call_id: str
    caller_number: str
    extension: str


@dataclass(frozen=True)
class Load:
    live_calls: int
    max_live_calls: int
    loop_lag_ms: float
    max_loop_lag_ms: float
    draining: bool = False

    @property
    def full(self) -> bool:
        # Lag with no call on the node is the machine's load, not the node's:
        # refusing the first call would not relieve it.
        lagging = self.live_calls > 0 and self.loop_lag_ms > self.max_loop_lag_ms
        return self.draining or self.live_calls >= self.max_live_calls or lagging


@dataclass(frozen=True)
class DefaultPolicy:
    greeting: str
    record_seconds: int
    blocklist: frozenset[str]
    hours: tuple[Window, ...]
    timezone: str
    overflow: Action

    @classmethod
    def from_settings(cls, settings: Settings) -> DefaultPolicy:
        return cls(
            greeting=settings.greeting_prompt,
            record_seconds=settings.record_seconds,
            blocklist=frozenset(settings.blocklist),
            hours=parse_weekly_hours(settings.open_hours),
            timezone=settings.timezone,
            overflow=Action(settings.overflow_action),
        )


def decide(call: CallFacts, now: datetime, load: Load, policy: DefaultPolicy) -> Decision:
    if call.caller_number and call.caller_number in policy.blocklist:
        return Decision(Action.VOICEMAIL, f"caller {call.caller_number} is on the blocklist")
    if not is_open(policy.hours, now, policy.timezone):
        return Decision(Action.VOICEMAIL, "outside opening hours")
    if load.full:
        why = (
            "node is draining"
            if load.draining
            else f"node is full ({load.live_calls}/{load.max_live_calls} calls, "
            f"loop lag {load.loop_lag_ms:.0f} ms)"
        )
        return Decision(policy.overflow, why)
    return Decision(
        Action.ANSWER,
        "default: greet and record",
        greeting=policy.greeting,
        record_seconds=policy.record_seconds,
    )
