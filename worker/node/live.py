"""A live call on a node's media loop: answer, greet, record, hang up, finish.

:func:`answer_call` runs on the media loop. It returns once the call is
answered and its media connected (that is the hand-off a Celery task waits
for) and leaves the call's script running as a task: play the greeting,
record the caller up to the decision's limit, hang up. The call finishes
exactly once, whichever comes first: the script ends, GoTo's ``ended``
arrives (:meth:`LiveCall.far_end_ended`), the media fails, the maximum call
length passes or the node hangs it up while draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from worker.flows.actions import GoToCallActions
from worker.flows.driver import FlowDriver
from worker.flows.events import FlowCall, FlowResult, Outcome
from worker.flows.model import FlowSet
from worker.goto.client import GoToClient
from worker.goto.errors import GoToError, NotFoundError
from worker.logs import call_id_var
from worker.media.opus import OpusPromptCache
from worker.media.playback import EncodedPlaybackTrack
from worker.media.prompts import PromptLibrary
from worker.media.recorder import RecordingInfo
from worker.media.session import CallSession, MediaConfig, SessionError
from worker.node.decide import Decision

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
ENDED_GRACE = 3.0


# How a flow's ending reads in the call record.
FLOW_OUTCOMES = {
    Outcome.HUNG_UP: "completed",
    Outcome.TRANSFERRED: "transferred",
    Outcome.VOICEMAIL: "voicemail",
    Outcome.CALLER_HUNG_UP: "caller_hangup",
    Outcome.FAILED: "failed",
}


@dataclass
class CallResult:
    """How a live call finished, for the store."""

    outcome: str
    reason: str
    hung_up_by: str
    recordings: list[RecordingInfo] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    steps: list[dict[str, object]] = field(default_factory=list)
    flow: dict[str, object] | None = None


@dataclass
class CallContext:
    """What a live call needs from its node."""

    client: GoToClient
    prompts: PromptLibrary
    media: MediaConfig
    channel_id: str
    recordings_dir: Path
    max_call_seconds: float
    on_finished: Callable[[LiveCall, CallResult], Awaitable[None]]
    http: httpx.AsyncClient
    flows: FlowSet | None = None
    voicemail_number: str = ""
    opus: OpusPromptCache | None = None
    """Prompts encoded once for every call; None: each call encodes its own audio."""


class LiveCall:
    """One answered call owned by this node."""

    def __init__(self, call: FlowCall, decision: Decision, context: CallContext) -> None:
        self.call = call
        self.call_id = call_id = call.call_id
        self.decision = decision
        self.context = context
        self.flows = context.flows  # the version this call started with, kept to its end
        self._driver: FlowDriver | None = None
        self.flow_result: FlowResult | None = None
        playback = EncodedPlaybackTrack(context.opus) if context.opus is not None else None
        self.session = CallSession(context.media, call_id=call_id, playback=playback)
        self.steps: list[dict[str, object]] = []
        self.ended_by_far_end = asyncio.Event()
        self.end_reason = ""
        self.task: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._finished = False

    def step(self, name: str, **details: object) -> None:
        self.steps.append({"step": name, "at": round(self.session.media_time(), 3), **details})

    async def answer(self) -> None:
        """Offer our SDP through the answer endpoint and wait for media to connect."""
        offer = await self.session.create_offer()
        info = await self.context.client.answer(
            self.call_id, sdp=offer, in_call_channel_id=self.context.channel_id
        )
        if not info.sdp:
            raise SessionError(f"call {self.call_id}: the answer reply carried no SDP")
        await self.session.accept_answer(info.sdp)
        self.step("answered")

    def far_end_ended(self, reason: str) -> None:
        """GoTo said the call ended (the caller hung up, or GoTo ended it)."""
        self.end_reason = reason
        self.ended_by_far_end.set()
        if not self.session.closed.is_set():
            self._closing = asyncio.ensure_future(self.session.close(f"call ended ({reason})"))

    def hang_up_now(self, reason: str) -> None:
        """End the call from our side at once (draining, reaping)."""
        self.end_reason = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self) -> None:
        """The call's script; always finishes the call."""
        token = call_id_var.set(self.call_id)
        outcome, reason = "completed", "script finished"
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self.session.wait_connected()
            except TimeoutError:
                raise SessionError(f"call {self.call_id}: media did not connect") from None
            async with asyncio.timeout(self.context.max_call_seconds):
                await self._script()
        except asyncio.CancelledError:
            reason = self.end_reason or "cancelled"
        except TimeoutError:
            reason = f"maximum call length {self.context.max_call_seconds:.0f} s reached"
        except SessionError as exc:
            # Media closing is how a caller's hang-up often shows first; GoTo's
            # `ended` follows. Give it a moment before calling the call failed.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ENDED_GRACE):
                    await self.ended_by_far_end.wait()
            if not self.ended_by_far_end.is_set():
                outcome, reason = "failed", str(exc)
                log.error("call failed: %s", exc)
        except GoToError as exc:
            outcome, reason = "failed", str(exc)
            log.error("call failed: %s", exc)
        except Exception as exc:
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("call script crashed")
        finally:
            call_id_var.reset(token)
        hung_up_by = "callworker"
        if self.ended_by_far_end.is_set():
            hung_up_by, reason = "caller", f"call ended by GoTo ({self.end_reason})"
        result = CallResult(outcome, reason, hung_up_by)
        hang_up = hung_up_by != "caller"
        if self._driver is not None:
            flow = self.flow_result or self._driver.result()
            result.flow = flow.as_json()
            result.recordings.extend(flow.recordings)
            result.digits = [d.digit for d in flow.digits]
            if self.flow_result is not None:
                # The flow ended the call itself (hang-up, transfer, voicemail) or saw
                # the caller go; either way there is nothing left to hang up.
                hang_up = False
                if outcome != "failed" or flow.outcome is Outcome.FAILED:
                    result.outcome = FLOW_OUTCOMES[flow.outcome]
                    result.reason = flow.reason or reason
        await self._finish(result, hang_up=hang_up)

    async def _script(self) -> None:
        if self.decision.flow:
            await self._run_flow(self.decision.flow)
            return
        session = self.session
        decision = self.decision
        if decision.greeting:
            prompt = self.context.prompts.get(decision.greeting)
            self.step("play", prompt=decision.greeting)
            await session.until_closed(session.playback.play(prompt).done.wait(), "while playing")
        if decision.record_seconds > 0:
            path = self.context.recordings_dir / recording_name(self.call_id)
            recorder = session.start_recording(path, max_seconds=decision.record_seconds)
            stopped = asyncio.Event()
            recorder.on_stop = lambda _reason: stopped.set()
            self.step("record", max_seconds=decision.record_seconds)
            await session.until_closed(stopped.wait(), "while recording")
        self.step("hangup")

    async def _run_flow(self, name: str) -> None:
        if self.flows is None:
            raise SessionError(f"call {self.call_id}: flow {name!r} asked for, no flows loaded")
        self.step("flow", flow=name, version=self.flows.version)
        self._driver = FlowDriver(
            self.flows,
            name,
            session=self.session,
            actions=GoToCallActions(
                self.context.client,
                self.call_id,
                voicemail_number=self.context.voicemail_number or None,
            ),
            recordings_dir=self.context.recordings_dir,
            call=self.call,
            http=self.context.http,
        )
        self.flow_result = await self._driver.run()

    async def _finish(self, result: CallResult, *, hang_up: bool) -> None:
        if self._finished:
            return
        self._finished = True
        if hang_up:
            with contextlib.suppress(NotFoundError):
                try:
                    await self.context.client.hangup(self.call_id)
                except GoToError as exc:
                    log.warning("call %s: hang-up request failed: %s", self.call_id, exc)
        recording = self.session.stop_recording() or self.session.recording
        if recording is not None:
            result.recordings.insert(0, recording)
        await self.session.close(result.reason)
        if not result.digits:
            result.digits = [event.digit for event in self.session.digits.history]
        result.steps = self.steps
        await self.context.on_finished(self, result)


def recording_name(call_id: str, now: datetime | None = None) -> str:
    """A call's recording file name, ``<time>-<call id>.wav``; see :func:`recording_glob`."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{call_id}.wav"


def recording_glob(call_id: str) -> str:
    """A pattern matching every :func:`recording_name` of ``call_id``."""
    return f"*-{call_id}.wav"
