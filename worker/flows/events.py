"""What goes in and out of the flow engine: events, actions, and the result of a call.

The engine (:mod:`worker.flows.engine`) takes an :data:`Event` and returns
an :data:`Action`; the driver (:mod:`worker.flows.driver`) performs the
action on the call and turns what happens into the next event. All of these
are frozen values.

Events: :class:`PlaybackDone`, :class:`Digit`, :class:`Timeout`,
:class:`RecordingDone`, :class:`HttpReply`, :class:`HttpFailed`,
:class:`ActionDone`, :class:`ActionFailed`, :class:`CallerHungUp`.

Actions: :class:`PlaySounds`, :class:`WaitForDigit`, :class:`Continue` (keep
doing what you do: the event changed nothing), :class:`StartRecording`,
:class:`StopRecording`, :class:`HttpRequest`, :class:`TransferCall`,
:class:`SendToVoicemail`, :class:`HangUp`, :class:`End` (the flow is over).

Every action except :class:`Continue` replaces the previous one: the driver
stops a prompt still playing and forgets a pending timeout before performing
it. Every action that calls out (recording, HTTP, transfer, voicemail, hang
up) is answered by exactly one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from worker.flows.model import Sound
from worker.media.recorder import RecordingInfo

# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackDone:
    """The sounds of the last :class:`PlaySounds` finished (or were cut)."""

    finished: bool = True
    at: float | None = None


@dataclass(frozen=True)
class Digit:
    """A key press; ``at`` is when it began on the call's media clock."""

    digit: str
    at: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Timeout:
    """The :class:`WaitForDigit` time passed without a key press."""


@dataclass(frozen=True)
class RecordingDone:
    """The recording of :class:`StartRecording` ended (limit, key, or the call ending)."""

    info: RecordingInfo


@dataclass(frozen=True)
class HttpReply:
    """The HTTP step's request got an answer (any status); ``text`` is its body."""

    status: int
    text: str


@dataclass(frozen=True)
class HttpFailed:
    """The HTTP step's request got no answer: timeout, connection refused, ..."""

    reason: str


@dataclass(frozen=True)
class ActionDone:
    """A transfer, voicemail or hang-up request succeeded."""


@dataclass(frozen=True)
class ActionFailed:
    """A transfer, voicemail or hang-up request failed; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class CallerHungUp:
    """The call ended from the other side (or its media closed).

    ``recording`` is the message being recorded when it happened: callers often
    hang up to end their message.
    """

    reason: str = ""
    recording: RecordingInfo | None = None


Event = (
    PlaybackDone
    | Digit
    | Timeout
    | RecordingDone
    | HttpReply
    | HttpFailed
    | ActionDone
    | ActionFailed
    | CallerHungUp
)

# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaySounds:
    """Play these prompts (names) and silences (seconds) back to back.

    With ``barge_in`` a key press cuts them at once; without, key presses during
    them are ignored. Answered by :class:`PlaybackDone` (and :class:`Digit` s).
    """

    sounds: tuple[Sound, ...]
    barge_in: bool = True


@dataclass(frozen=True)
class WaitForDigit:
    """Wait up to ``seconds`` for a key press; :class:`Timeout` if none comes."""

    seconds: float


@dataclass(frozen=True)
class Continue:
    """Nothing changes: keep playing, recording or waiting (the same deadline)."""


@dataclass(frozen=True)
class StartRecording:
    """Record the caller into ``file_name`` (in the recordings folder) until a limit.

    Answered by :class:`RecordingDone` when ``max_seconds`` or
    ``silence_seconds`` of silence end it, after :class:`StopRecording`, or
    when the call ends.
    """

    file_name: str
    box: str
    max_seconds: float
    silence_seconds: float | None


@dataclass(frozen=True)
class StopRecording:
    """Stop the recording now (the caller pressed the finish key)."""


@dataclass(frozen=True)
class HttpRequest:
    """POST ``body`` as JSON to ``url``; answered by :class:`HttpReply` or :class:`HttpFailed`."""

    url: str
    body: Mapping[str, Any]
    timeout: float
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TransferCall:
    """Blind-transfer the call to ``number``."""

    number: str


@dataclass(frozen=True)
class SendToVoicemail:
    """Send the call to GoTo voicemail (``number``: the voicemail to dial, if the flow says)."""

    number: str | None = None


@dataclass(frozen=True)
class HangUp:
    """Hang the call up."""

    reason: str


class Outcome(StrEnum):
    HUNG_UP = "hung_up"
    """The flow hung up (a hangup step, or the flow ran out of steps)."""
    TRANSFERRED = "transferred"
    VOICEMAIL = "voicemail"
    CALLER_HUNG_UP = "caller_hung_up"
    FAILED = "failed"
    """The flow went wrong at run time (a loop without waiting); it hung up."""


@dataclass(frozen=True)
class End:
    """The flow is over; the driver stops here."""

    outcome: Outcome
    reason: str


Action = (
    PlaySounds
    | WaitForDigit
    | Continue
    | StartRecording
    | StopRecording
    | HttpRequest
    | TransferCall
    | SendToVoicemail
    | HangUp
    | End
)

# -- the call and its result -------------------------------------------------------------


@dataclass(frozen=True)
class FlowCall:
    """The call a flow runs on, as the flow sees it."""

    call_id: str
    caller_number: str = ""
    caller_name: str = ""
    extension: str = ""


@dataclass(frozen=True)
class PathEntry:
    """One step entered: where, when (media seconds) and what happened there."""

    flow: str
    step: str
    kind: str
    at: float
    left_at: float | None
    detail: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "step": self.step,
            "kind": self.kind,
            "at": round(self.at, 3),
            "left_at": None if self.left_at is None else round(self.left_at, 3),
            **dict(self.detail),
        }


@dataclass(frozen=True)
class Message:
    """A message left in one of our voicemail boxes (a ``record`` step)."""

    box: str
    call_id: str
    caller_number: str
    caller_name: str
    extension: str
    flow: str
    step: str
    started_at: datetime
    duration_seconds: float
    path: Path
    stop_reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "box": self.box,
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "extension": self.extension,
            "flow": self.flow,
            "step": self.step,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "file": self.path.name,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True)
class PlaybackRecord:
    """A prompt or silence the caller was played, on the media clock."""

    sound: str
    started_at: float | None
    stopped_at: float | None
    finished: bool


@dataclass(frozen=True)
class FlowResult:
    """How a flow ran on a call: for the call record (``callworker calls show``)."""

    flow: str
    outcome: Outcome
    reason: str
    path: tuple[PathEntry, ...]
    digits: tuple[Digit, ...]
    variables: Mapping[str, str]
    messages: tuple[Message, ...] = ()
    recordings: tuple[RecordingInfo, ...] = ()
    playbacks: tuple[PlaybackRecord, ...] = ()

    @property
    def hung_up(self) -> bool:
        """True when the flow hung the call up (rather than the caller, a transfer, ...)."""
        return self.outcome in (Outcome.HUNG_UP, Outcome.FAILED)

    @property
    def keys(self) -> str:
        """Every key pressed, in order."""
        return "".join(d.digit for d in self.digits)

    @property
    def steps(self) -> list[str]:
        """``flow.step`` of every step entered, in order."""
        return [f"{e.flow}.{e.step}" for e in self.path]

    def as_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "path": [entry.as_json() for entry in self.path],
            "digits": [
                {"digit": d.digit, "at": round(d.at, 3), "source": d.source} for d in self.digits
            ],
            "variables": dict(self.variables),
            "messages": [m.as_json() for m in self.messages],
        }


__all__ = [
    "Action",
    "ActionDone",
    "ActionFailed",
    "CallerHungUp",
    "Continue",
    "Digit",
    "End",
    "Event",
    "FlowCall",
    "FlowResult",
    "HangUp",
    "HttpFailed",
    "HttpReply",
    "HttpRequest",
    "Message",
    "Outcome",
    "PathEntry",
    "PlaySounds",
    "PlaybackDone",
    "PlaybackRecord",
    "RecordingDone",
    "SendToVoicemail",
    "StartRecording",
    "StopRecording",
    "Timeout",
    "TransferCall",
    "WaitForDigit",
]
