"""The flow engine: from the state of a call and an event, the next action. No I/O.

::

    run = FlowRun(flows, "main", FlowCall("c1", "+15145550199"), clock=media_time, now=now)
    action = run.start()                      # PlaySounds(("welcome",), barge_in=True)
    action = run.on(Digit("2", at=1.2))       # barge-in: the next step's action
    ...
    result = run.result()                     # path, digits, variables, messages, outcome

``clock`` gives the call's media time (for the path's timings) and ``now``
an aware datetime (for time-of-day conditions and message times); both are
injected, so tests move time instead of waiting.

How steps behave (see docs/flows.md for the file format):

- play/pause/say: :class:`PlaySounds`; with barge-in, a key press cuts it and is
  kept as type-ahead for the next gather or menu; without, key presses are ignored.
- gather: type-ahead first, then the prompt, then :class:`WaitForDigit` with the
  first-digit timeout, then the inter-digit timeout after each key; it ends on
  the finish key, at ``max_digits`` or on a timeout, and stores the keys.
- menu: a choice goes to its target; an invalid key or a timeout plays the
  invalid or no-input prompt and the menu again, up to ``retries`` more times,
  then the fallback.
- record: greeting and beep (not interruptible), then :class:`StartRecording`;
  the finish key stops it; the message is kept with caller, time and duration.
- set/branch/goto jump at once (at most ``max_hops`` in a row, against loops).
- transfer/voicemail: the request, then the flow is over; a failed request goes
  to the step's fallback (or hangs up).
- http: :class:`HttpRequest`; a 2xx JSON object reply may set variables and name
  the next step; anything else goes to the fallback.
- A flow that runs out of steps hangs up; the caller hanging up ends it anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from worker.flows.conditions import VARIABLE_NAME
from worker.flows.errors import FlowStateError
from worker.flows.events import (
    Action,
    ActionDone,
    ActionFailed,
    CallerHungUp,
    Continue,
    Digit,
    End,
    Event,
    FlowCall,
    FlowResult,
    HangUp,
    HttpFailed,
    HttpReply,
    HttpRequest,
    Message,
    Outcome,
    PathEntry,
    PlaybackDone,
    PlaybackRecord,
    PlaySounds,
    RecordingDone,
    SendToVoicemail,
    StartRecording,
    StopRecording,
    Timeout,
    TransferCall,
    WaitForDigit,
)
from worker.flows.model import (
    Branch,
    Flow,
    FlowSet,
    Gather,
    Goto,
    Hangup,
    Http,
    Menu,
    Pause,
    Play,
    Record,
    Say,
    SetVars,
    Sound,
    Step,
    Target,
    Transfer,
    Voicemail,
)
from worker.media.recorder import RecordingInfo

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def number_words(number: int) -> list[str]:
    """Prompt names that say ``number`` (0 to 999 999) in English words."""
    if not 0 <= number < 1_000_000:
        raise ValueError(f"say number: {number} is out of range 0..999999")
    if number == 0:
        return ["digit_0"]
    words: list[str] = []
    thousands, rest = divmod(number, 1000)
    if thousands:
        words += [*_below_thousand(thousands), "num_thousand"]
    return words + _below_thousand(rest)


def _below_thousand(number: int) -> list[str]:
    hundreds, rest = divmod(number, 100)
    words = [f"digit_{hundreds}", "num_hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(f"num_{tens * 10}")
        if ones:
            words.append(f"digit_{ones}")
    elif rest >= 10:
        words.append(f"num_{rest}")
    elif rest:
        words.append(f"digit_{rest}")
    return words


def say_sounds(mode: str, text: str) -> tuple[str, ...]:
    """What ``say`` plays: digit by digit, or a number in words (digits when it is not one)."""
    cleaned = text.replace(",", "").replace(" ", "")
    if mode == "number" and cleaned.isdigit() and int(cleaned) < 1_000_000:
        return tuple(number_words(int(cleaned)))
    return tuple(f"digit_{ch}" for ch in text if "0" <= ch <= "9")


class _Jump:
    """Internal: go to ``target`` at once (None: the flow is over)."""

    def __init__(self, target: Target | None) -> None:
        self.target = target


class FlowRun:
    """One call's way through its flows; see the module docstring."""

    def __init__(
        self,
        flows: FlowSet,
        start_flow: str,
        call: FlowCall,
        *,
        clock: Callable[[], float] = lambda: 0.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        start_step: str | None = None,
        variables: dict[str, str] | None = None,
        max_hops: int = 100,
    ) -> None:
        self.flows = flows
        self.start_flow = flows.flow(start_flow).name
        self.start_step = start_step
        self.call = call
        self._clock = clock
        self._now = now
        self.max_hops = max_hops
        self.variables: dict[str, str] = {
            "call_id": call.call_id,
            "caller": call.caller_number,
            "caller_name": call.caller_name,
            "extension": call.extension,
            "flow": self.start_flow,
            **(variables or {}),
        }
        self.digits: list[Digit] = []
        self.messages: list[Message] = []
        self.recordings: list[RecordingInfo] = []
        self._path: list[tuple[str, str, str, float, dict[str, Any]]] = []
        self._left: list[float | None] = []
        self._flow: Flow = flows.flow(start_flow)
        self._step: Step | None = None
        self._phase = ""
        self._typeahead: list[str] = []
        self._buffer: list[str] = []
        self._attempt = 0
        self._record_started: datetime | None = None
        self._hanging_up: tuple[Outcome, str] | None = None
        self._end: End | None = None
        self._started = False

    # -- public --------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._end is not None

    @property
    def current(self) -> tuple[str, str] | None:
        """(flow, step) the call is in, None before start and after the end."""
        if self._step is None or self._end is not None:
            return None
        return self._flow.name, self._step.name

    def start(self) -> Action:
        if self._started:
            raise FlowStateError(f"call {self.call.call_id}: the flow was already started")
        self._started = True
        return self._go(Target(self.start_flow, self.start_step))

    def on(self, event: Event) -> Action:
        if not self._started:
            raise FlowStateError(f"call {self.call.call_id}: on() before start()")
        if self._end is not None:
            return self._end
        if isinstance(event, Digit):
            self.digits.append(event)
        if isinstance(event, RecordingDone):
            self._keep_recording(event.info)
        if isinstance(event, CallerHungUp):
            if event.recording is not None:
                self._keep_recording(event.recording)
            return self._finish(Outcome.CALLER_HUNG_UP, event.reason or "the caller hung up")
        if self._hanging_up is not None:
            if isinstance(event, ActionDone | ActionFailed):
                outcome, reason = self._hanging_up
                if isinstance(event, ActionFailed):
                    reason += f" (the hang-up request failed: {event.reason})"
                return self._finish(outcome, reason)
            return Continue()
        step = self._step
        assert step is not None
        handler: Callable[[Any, Event], Action | _Jump] = getattr(self, f"_on_{step.kind}")
        reaction = handler(step, event)
        return self._go(reaction.target) if isinstance(reaction, _Jump) else reaction

    def result(self, playbacks: tuple[PlaybackRecord, ...] = ()) -> FlowResult:
        """The path so far; after the end, the whole story of the call."""
        path = tuple(
            PathEntry(flow, step, kind, at, left, MappingProxyType(dict(detail)))
            for (flow, step, kind, at, detail), left in zip(self._path, self._left, strict=True)
        )
        outcome, reason = (
            (self._end.outcome, self._end.reason)
            if self._end is not None
            else (Outcome.FAILED, "the flow did not finish")
        )
        return FlowResult(
            flow=self.start_flow,
            outcome=outcome,
            reason=reason,
            path=path,
            digits=tuple(self.digits),
            variables=MappingProxyType(dict(self.variables)),
            messages=tuple(self.messages),
            recordings=tuple(self.recordings),
            playbacks=playbacks,
        )

    # -- moving --------------------------------------------------------------------------

    def _go(self, target: Target | None) -> Action:
        hops = 0
        while True:
            if target is None:
                return self._hang_up(Outcome.HUNG_UP, "the flow ended")
            hops += 1
            if hops > self.max_hops:
                return self._hang_up(
                    Outcome.FAILED,
                    f"{self.max_hops} steps in a row without waiting for the caller "
                    f"(a loop through {self._flow.name}.{target.step}?)",
                )
            self._enter(target)
            assert self._step is not None
            begun: Action | _Jump = getattr(self, f"_begin_{self._step.kind}")(self._step)
            if not isinstance(begun, _Jump):
                return begun
            target = begun.target

    def _enter(self, target: Target) -> None:
        if target.flow is not None and target.flow != self._flow.name:
            self._flow = self.flows.flow(target.flow)
            self.variables["flow"] = self._flow.name
        self._step = self._flow.step(target.step or self._flow.start)
        self._phase = ""
        self._close_entry()
        self._path.append((self._flow.name, self._step.name, self._step.kind, self._clock(), {}))
        self._left.append(None)

    def _close_entry(self) -> None:
        if self._left and self._left[-1] is None:
            self._left[-1] = self._clock()

    @property
    def _detail(self) -> dict[str, Any]:
        return self._path[-1][4]

    def _hang_up(self, outcome: Outcome, reason: str) -> Action:
        self._hanging_up = (outcome, reason)
        self._phase = "hangup"
        return HangUp(reason)

    def _finish(self, outcome: Outcome, reason: str) -> End:
        self._close_entry()
        self._end = End(outcome, reason)
        return self._end

    def _keep_recording(self, info: RecordingInfo) -> None:
        self.recordings.append(info)
        step = self._step
        if not isinstance(step, Record):
            return
        self._detail.update(
            duration=round(info.duration_seconds, 3),
            file=info.path.name,
            stop_reason=str(info.stop_reason),
        )
        self.messages.append(
            Message(
                box=step.box,
                call_id=self.call.call_id,
                caller_number=self.call.caller_number,
                caller_name=self.call.caller_name,
                extension=self.call.extension,
                flow=self._flow.name,
                step=step.name,
                started_at=self._record_started or self._now(),
                duration_seconds=info.duration_seconds,
                path=info.path,
                stop_reason=str(info.stop_reason),
            )
        )

    # -- play, pause, say --------------------------------------------------------------

    def _begin_play(self, step: Play) -> Action | _Jump:
        self._detail["prompts"] = list(step.prompts)
        return PlaySounds(step.prompts, step.barge_in)

    def _begin_pause(self, step: Pause) -> Action | _Jump:
        return PlaySounds((step.seconds,), step.barge_in)

    def _begin_say(self, step: Say) -> Action | _Jump:
        text = step.value.render(self.variables)
        sounds = say_sounds(step.mode, text)
        self._detail["value"] = text
        return PlaySounds(sounds, step.barge_in) if sounds else _Jump(step.next)

    def _on_play(self, step: Play | Pause | Say, event: Event) -> Action | _Jump:
        if isinstance(event, PlaybackDone):
            return _Jump(step.next)
        if isinstance(event, Digit) and step.barge_in:
            self._typeahead.append(event.digit)
            self._detail["barged_in"] = {"digit": event.digit, "at": round(event.at, 3)}
            return _Jump(step.next)
        return Continue()

    _on_pause = _on_play
    _on_say = _on_play

    # -- set, branch, goto -------------------------------------------------------------

    def _begin_set(self, step: SetVars) -> Action | _Jump:
        for name, template in step.values:
            self.variables[name] = template.render(self.variables)
        self._detail["set"] = {name: self.variables[name] for name, _ in step.values}
        return _Jump(step.next)

    def _begin_branch(self, step: Branch) -> Action | _Jump:
        now = self._now()
        for index, (condition, target) in enumerate(step.cases):
            if condition.holds(self.variables, now):
                self._detail.update(matched=index, condition=condition.describe())
                return _Jump(target)
        self._detail["matched"] = "else"
        return _Jump(step.otherwise)

    def _begin_goto(self, step: Goto) -> Action | _Jump:
        return _Jump(step.target)

    def _on_unexpected(self, step: Step, event: Event) -> Action | _Jump:
        return Continue()

    _on_set = _on_unexpected
    _on_branch = _on_unexpected
    _on_goto = _on_unexpected

    # -- gather --------------------------------------------------------------------------

    def _begin_gather(self, step: Gather) -> Action | _Jump:
        self._buffer = []
        typed, self._typeahead = self._typeahead, []
        for digit in typed:
            if self._feed(step, digit):
                return self._gathered(step, "type-ahead")
        if self._buffer:
            self._phase = "waiting"
            return WaitForDigit(step.inter_digit_timeout)
        if step.prompts:
            self._phase = "prompt"
            return PlaySounds(step.prompts, step.barge_in)
        self._phase = "waiting"
        return WaitForDigit(step.first_digit_timeout)

    def _feed(self, step: Gather, digit: str) -> bool:
        """Add a key; True when the gather is complete."""
        if digit == step.finish_key:
            self._detail["ended"] = "finish_key"
            return True
        self._buffer.append(digit)
        if len(self._buffer) >= step.max_digits:
            self._detail["ended"] = "max_digits"
            return True
        return False

    def _on_gather(self, step: Gather, event: Event) -> Action | _Jump:
        if isinstance(event, Digit):
            if self._phase == "prompt" and not step.barge_in:
                return Continue()
            if self._feed(step, event.digit):
                return self._gathered(step, None)
            self._phase = "waiting"
            return WaitForDigit(step.inter_digit_timeout)
        if isinstance(event, PlaybackDone) and self._phase == "prompt":
            self._phase = "waiting"
            return WaitForDigit(step.first_digit_timeout)
        if isinstance(event, Timeout) and self._phase == "waiting":
            self._detail["ended"] = "timeout"
            return self._gathered(step, None)
        return Continue()

    def _gathered(self, step: Gather, how: str | None) -> _Jump:
        keys = "".join(self._buffer)
        self.variables[step.into] = keys
        self._detail["digits"] = keys
        if how is not None:
            self._detail["ended"] = f"{self._detail.get('ended', '')} ({how})".strip()
        if not keys and step.no_digits is not None:
            return _Jump(step.no_digits)
        return _Jump(step.next)

    # -- menu ----------------------------------------------------------------------------

    def _begin_menu(self, step: Menu) -> Action | _Jump:
        self._attempt = 1
        self._detail.update(attempts=1, invalid=[], timeouts=0)
        if self._typeahead:
            return self._choose(step, self._typeahead.pop(0))
        self._phase = "prompt"
        return PlaySounds(step.prompts, step.barge_in)

    def _on_menu(self, step: Menu, event: Event) -> Action | _Jump:
        if self._phase == "exhausted":
            return _Jump(step.fallback) if isinstance(event, PlaybackDone) else Continue()
        if isinstance(event, Digit):
            if self._phase == "prompt" and not step.barge_in:
                return Continue()
            return self._choose(step, event.digit)
        if isinstance(event, PlaybackDone) and self._phase == "prompt":
            self._phase = "waiting"
            return WaitForDigit(step.timeout)
        if isinstance(event, Timeout) and self._phase == "waiting":
            self._detail["timeouts"] += 1
            return self._retry(step, step.no_input)
        return Continue()

    def _choose(self, step: Menu, digit: str) -> Action | _Jump:
        target = step.choice_map.get(digit)
        if target is None:
            self._detail["invalid"].append(digit)
            return self._retry(step, step.invalid)
        self._detail["choice"] = digit
        if step.into is not None:
            self.variables[step.into] = digit
        return _Jump(target)

    def _retry(self, step: Menu, reprompt: tuple[str, ...]) -> Action | _Jump:
        self._typeahead.clear()
        if self._attempt > step.retries:
            self._detail["fell_back"] = True
            if reprompt:
                self._phase = "exhausted"
                return PlaySounds(reprompt, False)
            return _Jump(step.fallback)
        self._attempt += 1
        self._detail["attempts"] = self._attempt
        self._phase = "prompt"
        return PlaySounds((*reprompt, *step.prompts), step.barge_in)

    # -- record --------------------------------------------------------------------------

    def _begin_record(self, step: Record) -> Action | _Jump:
        self._typeahead.clear()
        self._detail["box"] = step.box
        sounds: tuple[Sound, ...] = (*step.greeting, *((step.beep,) if step.beep else ()))
        if sounds:
            self._phase = "greeting"
            return PlaySounds(sounds, False)
        return self._start_recording(step)

    def _start_recording(self, step: Record) -> Action:
        self._phase = "recording"
        self._record_started = self._now()
        stamp = self._record_started.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        call = _SAFE.sub("_", self.call.call_id)[:80] or "call"
        return StartRecording(
            file_name=f"{stamp}-{call}-{_SAFE.sub('_', step.box)}.wav",
            box=step.box,
            max_seconds=step.max_seconds,
            silence_seconds=step.silence_seconds,
        )

    def _on_record(self, step: Record, event: Event) -> Action | _Jump:
        if self._phase == "greeting" and isinstance(event, PlaybackDone):
            return self._start_recording(step)
        if isinstance(event, RecordingDone) and self._phase in ("recording", "stopping"):
            return _Jump(step.next)
        if isinstance(event, ActionFailed) and self._phase in ("recording", "stopping"):
            self._detail["failed"] = event.reason
            return _Jump(step.next)
        if (
            isinstance(event, Digit)
            and self._phase == "recording"
            and event.digit == step.finish_key
        ):
            self._phase = "stopping"
            self._detail["stopped_by_key"] = event.digit
            return StopRecording()
        return Continue()

    # -- transfer, voicemail, hangup -----------------------------------------------------

    def _begin_transfer(self, step: Transfer) -> Action | _Jump:
        number = step.to.render(self.variables).replace(" ", "")
        self._detail["to"] = number
        if not number:
            self._detail["failed"] = f"no number to transfer to ({step.to.text} is empty)"
            return _Jump(step.fallback)
        self._phase = "acting"
        return TransferCall(number)

    def _begin_voicemail(self, step: Voicemail) -> Action | _Jump:
        number = step.number.render(self.variables).replace(" ", "") if step.number else None
        self._detail["number"] = number
        self._phase = "acting"
        return SendToVoicemail(number or None)

    def _on_acting(self, step: Transfer | Voicemail, event: Event) -> Action | _Jump:
        if isinstance(event, ActionDone):
            if isinstance(step, Transfer):
                return self._finish(Outcome.TRANSFERRED, f"transferred to {self._detail['to']}")
            return self._finish(Outcome.VOICEMAIL, "sent to voicemail")
        if isinstance(event, ActionFailed):
            self._detail["failed"] = event.reason
            if step.fallback is None:
                return self._hang_up(Outcome.HUNG_UP, f"{step.kind} failed: {event.reason}")
            return _Jump(step.fallback)
        return Continue()

    _on_transfer = _on_acting
    _on_voicemail = _on_acting

    def _begin_hangup(self, step: Hangup) -> Action | _Jump:
        return self._hang_up(Outcome.HUNG_UP, f"hangup step {self._flow.name}.{step.name}")

    _on_hangup = _on_unexpected

    # -- http ----------------------------------------------------------------------------

    def _begin_http(self, step: Http) -> Action | _Jump:
        self._phase = "http"
        body = {
            "call_id": self.call.call_id,
            "caller": {"number": self.call.caller_number, "name": self.call.caller_name},
            "extension": self.call.extension,
            "flow": self._flow.name,
            "step": step.name,
            "variables": dict(self.variables),
            "digits": "".join(d.digit for d in self.digits),
            "path": [f"{flow}.{name}" for flow, name, _, _, _ in self._path],
        }
        self._detail["url"] = step.url
        return HttpRequest(step.url, MappingProxyType(body), step.timeout, step.headers)

    def _on_http(self, step: Http, event: Event) -> Action | _Jump:
        if isinstance(event, HttpFailed):
            return self._http_fallback(step, event.reason)
        if isinstance(event, HttpReply):
            self._detail["status"] = event.status
            return self._http_reply(step, event)
        if isinstance(event, Digit):
            self._typeahead.append(event.digit)
        return Continue()

    def _http_fallback(self, step: Http, reason: str) -> _Jump:
        self._detail["failed"] = reason
        return _Jump(step.fallback)

    def _http_reply(self, step: Http, reply: HttpReply) -> _Jump:
        if not 200 <= reply.status < 300:
            return self._http_fallback(step, f"HTTP {reply.status}")
        try:
            data = json.loads(reply.text) if reply.text.strip() else {}
        except ValueError as exc:
            return self._http_fallback(step, f"the reply is not JSON: {exc}")
        if not isinstance(data, dict):
            return self._http_fallback(step, f"the reply is not a JSON object: {reply.text[:80]!r}")
        values = data.get("set", {})
        if not isinstance(values, dict):
            return self._http_fallback(step, f"'set' in the reply is not an object: {values!r}")
        for name, value in values.items():
            if not VARIABLE_NAME.match(str(name)) or isinstance(value, dict | list):
                return self._http_fallback(step, f"the reply sets {name!r} to {value!r}")
        target = step.next
        flow_name, step_name = data.get("flow"), data.get("next")
        if flow_name is not None or step_name is not None:
            if not isinstance(flow_name, str | None) or not isinstance(step_name, str | None):
                return self._http_fallback(step, "'next' and 'flow' in the reply must be text")
            flow = self._flow if flow_name is None else self.flows.flows.get(flow_name)
            if flow is None:
                return self._http_fallback(step, f"the reply names flow {flow_name!r}, unknown")
            if step_name is not None and step_name not in flow.steps:
                return self._http_fallback(
                    step, f"the reply names step {step_name!r}, which flow {flow.name!r} lacks"
                )
            target = Target(flow_name, step_name)
        for name, value in values.items():
            self.variables[str(name)] = _text(value)
        self._detail["set"] = {str(k): _text(v) for k, v in values.items()}
        return _Jump(target)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = ["FlowRun", "number_words", "say_sounds"]
