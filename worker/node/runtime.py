"""A worker node: one process, one media loop, the live calls it owns.

Celery task threads call :meth:`Node.take_incoming` and
:meth:`Node.on_call_event`; those decide (pure, :mod:`worker.node.decide`),
hand the call to the media loop and return once the hand-off is done (the
call answered and connected, or sent to voicemail). Everything about a live
call then happens on the loop (:mod:`worker.node.live`).

Ownership: a node claims a call in Redis before answering it, heartbeats
its calls and itself every :data:`HEARTBEAT_SECONDS`, and releases a call
when it finishes. A node that dies stops heart-beating; beat's reaper then
hangs its calls up (:mod:`worker.node.reaper`).

Capacity: at most ``max_live_calls`` calls, and no new call while the
loop's lag p99 exceeds ``max_loop_lag_ms`` or while draining; such a call
gets the overflow action (voicemail by default).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime

import httpx
import redis

from worker.config import Settings
from worker.flows.errors import FlowError
from worker.flows.events import FlowCall
from worker.flows.model import FlowSet
from worker.flows.reload import FlowReloader
from worker.goto.client import GoToClient
from worker.goto.errors import GoToError
from worker.goto.events import EndedNotification, IncomingNotification, UnknownNotification
from worker.logs import call_id_var
from worker.media.opus import OpusPromptCache
from worker.media.prompts import PromptLibrary
from worker.media.recorder import RecorderError, RecordingInfo, convert
from worker.media.session import MediaConfig
from worker.node.decide import Action, CallFacts, Decision, DefaultPolicy, Load, decide
from worker.node.live import CallContext, CallResult, LiveCall
from worker.node.loop import MediaLoop
from worker.ownership import Ownership
from worker.provision import ProvisionError, load_state, state_path
from worker.rules import RulesCache, RulesError, evaluate
from worker.store import Store

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
OWNERSHIP_TTL = 10.0
API_TIMEOUT = 20.0
# The hand-off is the SDP offer (host candidates only: milliseconds) plus the answer request.
HANDOFF_TIMEOUT = API_TIMEOUT + 10.0
SEND_AWAY = (Action.VOICEMAIL, Action.DECLINE, Action.FORWARD)


class NodeError(RuntimeError):
    """The node cannot start or cannot take a call; the message says why."""


class Node:
    """The live-call side of one worker process."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        store: Store,
        redis_client: redis.Redis,
        prompts: PromptLibrary | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.store = store
        self.ownership = Ownership(redis_client)
        self.prompts = prompts or PromptLibrary(settings.prompts_dir)
        self.policy = DefaultPolicy.from_settings(settings)
        self.rules: RulesCache | None = None
        self.flows: FlowReloader | None = None
        self.opus = OpusPromptCache() if settings.shared_opus else None
        self._reload_requested = False
        self._http: httpx.AsyncClient | None = None
        self.loop = MediaLoop(f"media-loop[{name}]")
        self.calls: dict[str, LiveCall] = {}
        self.draining = False
        self.channel_id = ""
        self._client: GoToClient | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> Node:
        state = load_state(state_path(self.settings))
        if state is None or not state.channel_id:
            raise NodeError(
                f"no notification channel in {state_path(self.settings)}: run "
                "`callworker provision` first (the node answers calls with its channel id)"
            )
        self.channel_id = state.channel_id
        if self.settings.rules_file:
            try:
                self.rules = RulesCache(self.settings.rules_file)
            except RulesError as exc:
                raise NodeError(f"cannot start node {self.name}: {exc}") from None
            log.info("routing rules: %s", self.rules.current.summary())
        self._load_flows()
        prompts = self.prompts.preload()
        if self.opus is not None:
            self.opus.preload(prompts)
            if self.flows is not None:
                self._encode_flow_prompts(self.flows.current)
        self.loop.start()
        self.loop.run(self._open(), timeout=API_TIMEOUT)
        log.info("node %s started: up to %d live calls", self.name, self.settings.max_live_calls)
        return self

    def _load_flows(self) -> None:
        wanted = self.rules.current.flows() if self.rules is not None else frozenset()
        if self.settings.flows_dir:
            try:
                self.flows = FlowReloader(
                    self.settings.flows_dir, on_reload=self._encode_flow_prompts
                )
            except FlowError as exc:
                raise NodeError(f"cannot start node {self.name}: {exc}") from None
            self.flows.current.prompts.preload()
            log.info("flows: %s", self.flows.current.summary())
        known = set(self.flows.current) if self.flows is not None else set()
        missing = sorted(wanted - known)
        if missing:
            where = self.settings.flows_dir or "(CALLWORKER_FLOWS_DIR is not set)"
            raise NodeError(
                f"the rules in {self.settings.rules_file} answer with flows {', '.join(missing)}, "
                f"which are not in {where}"
            )

    def _encode_flow_prompts(self, flows: FlowSet) -> None:
        """Encode a flow set's prompts now, not on the media loop when a call first plays them."""
        if self.opus is not None:
            self.opus.preload(flows.prompts.preload())

    def request_reload(self) -> None:
        """Reload rules and flows before the next call (safe in a signal handler)."""
        if self.rules is not None:
            self.rules.request_reload()
        self._reload_requested = True
        log.info("reload of rules and flows requested")

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise NodeError(f"node {self.name} is not started")
        return self._http

    async def _open(self) -> None:
        client = GoToClient.from_settings(self.settings)
        await client.__aenter__()
        self._client = client
        self._http = httpx.AsyncClient(timeout=10.0)
        self._heartbeat = asyncio.create_task(self._beat())

    @property
    def client(self) -> GoToClient:
        if self._client is None:
            raise NodeError(f"node {self.name} is not started")
        return self._client

    async def _beat(self) -> None:
        while True:
            call_ids = list(self.calls)
            try:
                lost = await asyncio.to_thread(
                    self.ownership.heartbeat, self.name, call_ids, OWNERSHIP_TTL
                )
            except redis.RedisError as exc:
                log.warning("heartbeat failed (Redis): %s", exc)
            else:
                for call_id in lost:
                    live = self.calls.get(call_id)
                    if live is not None:
                        log.error("call %s is now owned by another node; hanging up", call_id)
                        live.hang_up_now("ownership lost")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def load(self) -> Load:
        return Load(
            live_calls=len(self.calls),
            max_live_calls=self.settings.max_live_calls,
            loop_lag_ms=self.loop.lag_ms(),
            max_loop_lag_ms=self.settings.max_loop_lag_ms,
            draining=self.draining,
        )

    def drain(self, cap_seconds: float) -> None:
        """Take no new calls; let live ones finish up to ``cap_seconds``, then hang them up."""
        self.draining = True
        log.info(
            "node %s draining: %d live calls, cap %.0f s", self.name, len(self.calls), cap_seconds
        )
        deadline = time.monotonic() + cap_seconds
        with self._idle:
            while self.calls and time.monotonic() < deadline:
                self._idle.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if self.calls:
            log.warning("drain cap reached: hanging up %d calls", len(self.calls))
            self.loop.run(self._hang_up_all("node shutting down"), timeout=API_TIMEOUT)

    async def _hang_up_all(self, reason: str) -> None:
        lives = list(self.calls.values())
        for live in lives:
            live.hang_up_now(reason)
        tasks = [live.task for live in lives if live.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=API_TIMEOUT)

    def stop(self) -> None:
        if self.loop.running:
            try:
                self.loop.run(self._close(), timeout=API_TIMEOUT)
            except Exception:
                log.exception("node %s: closing its media loop work failed", self.name)
            self.loop.stop()

    async def _close(self) -> None:
        await self._hang_up_all("node stopped")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- calls ----------------------------------------------------------------------

    def take_incoming(self, notification: IncomingNotification) -> Decision:
        """Decide what to do with a new call and do it; returns the decision."""
        content = notification.content
        call_id = content.call_id
        facts = CallFacts(call_id, content.number, content.extension_number)
        if self.flows is not None:
            if self._reload_requested:
                self._reload_requested = False
                self.flows.reload()
            else:
                self.flows.reload_if_changed()
        decision = self.decide(facts, datetime.now(UTC))
        log.info("decision: %s (%s)", decision.action.value, decision.reason)
        record = {"decision": decision.action.value, "reason": decision.reason}
        record.update(
            {k: v for k in ("rule", "flow", "destination") if (v := getattr(decision, k))}
        )
        self.store.set_flow(call_id, flow=record)
        if decision.action is Action.ANSWER:
            call = FlowCall(call_id, content.number, content.name, content.extension_number)
            self._answer(call, decision)
        elif decision.action in SEND_AWAY:
            self._send_away(call_id, decision)
        return decision

    def _send_away(self, call_id: str, decision: Decision) -> None:
        """Voicemail, decline or forward a ringing call; its record says which, or why not."""
        if decision.action is Action.VOICEMAIL:
            request = self.client.send_to_voicemail(call_id)
            outcome, code = "voicemail", "SEND_TO_VOICEMAIL"
        elif decision.action is Action.FORWARD:
            request = self.client.reject(call_id, destination=decision.destination)
            outcome, code = "forwarded", decision.destination
        else:
            request = self.client.reject(call_id)
            outcome, code = "declined", "REJECTED"
        try:
            self.loop.run(request, timeout=API_TIMEOUT)
        except Exception as exc:
            reason = f"{decision.action.value} failed: {describe_error(exc)}"
            log.error("%s", reason)
            self.store.mark_failed(call_id, reason=reason)
            return
        self.store.mark_ended(call_id, outcome=outcome, reason_code=code)

    def decide(self, facts: CallFacts, now: datetime) -> Decision:
        """The routing rules' decision if a rules file is set, else the settings default."""
        load = self.load()
        if self.rules is None:
            return decide(facts, now, load, self.policy)
        decision = evaluate(self.rules.get(), facts, now, load)
        if decision.action is Action.ANSWER and not decision.flow:
            # "answer" without a flow: the node's default path, greet and record.
            decision = dataclasses.replace(
                decision,
                greeting=self.policy.greeting,
                record_seconds=self.policy.record_seconds,
            )
        return decision

    def _answer(self, call: FlowCall, decision: Decision) -> None:
        call_id = call.call_id
        if not self.ownership.claim(call_id, self.name, OWNERSHIP_TTL):
            owner = self.ownership.owner(call_id)
            log.info("call already owned by %s; not answering it twice", owner)
            return
        try:
            self.loop.run(self._start_call(call, decision), timeout=HANDOFF_TIMEOUT)
        except Exception as exc:
            # Answering again would not help (GoTo may already have taken the
            # answer): end the call on both sides and say why in its record.
            reason = f"answer failed: {describe_error(exc)}"
            log.error("%s", reason)
            self.ownership.release(call_id, self.name)
            self.store.mark_failed(call_id, reason=reason)
            try:
                self.loop.run(self.client.hangup(call_id), timeout=API_TIMEOUT)
            except Exception as hangup_error:
                log.warning("hang-up after a failed answer failed too: %s", hangup_error)
            return
        self.store.mark_answered(call_id, node=self.name)

    async def _start_call(self, call: FlowCall, decision: Decision) -> None:
        call_id = call.call_id
        context = CallContext(
            client=self.client,
            prompts=self.prompts,
            media=MediaConfig.from_settings(self.settings),
            channel_id=self.channel_id,
            recordings_dir=self.settings.recordings_dir,
            max_call_seconds=float(self.settings.max_call_seconds),
            on_finished=self._finished,
            http=self.http,
            flows=self.flows.current if self.flows is not None else None,
            voicemail_number=self.settings.voicemail_number,
            opus=self.opus,
        )
        live = LiveCall(call, decision, context)
        self.calls[call_id] = live
        try:
            await live.answer()
        except BaseException:
            self.calls.pop(call_id, None)
            await live.session.close("answer failed")
            raise
        live.task = asyncio.create_task(live.run(), name=f"call-{call_id}")

    async def _finished(self, live: LiveCall, result: CallResult) -> None:
        call_id = live.call_id
        token = call_id_var.set(call_id)
        try:
            await asyncio.to_thread(self._record_result, live, result)
        except Exception:
            log.exception("could not write the call record")
        finally:
            with self._idle:
                self.calls.pop(call_id, None)
                self._idle.notify_all()
            call_id_var.reset(token)

    def _record_result(self, live: LiveCall, result: CallResult) -> None:
        call_id = live.call_id
        for finished in result.recordings:
            info = self._convert(finished)
            self.store.add_recording(
                call_id,
                path=str(info.path),
                duration_seconds=info.duration_seconds,
                size_bytes=info.size_bytes,
                format=info.format,
            )
        path: dict[str, object] = {
            "steps": result.steps,
            "digits": result.digits,
            "hung_up_by": result.hung_up_by,
        }
        if result.flow is not None:
            path["flow"] = result.flow
        self.store.set_flow(call_id, path=path)
        outcome = result.outcome
        if outcome == "completed" and result.hung_up_by == "caller":
            outcome = "caller_hangup"
        if outcome == "failed":
            self.store.mark_failed(call_id, reason=result.reason)
        else:
            self.store.mark_ended(call_id, outcome=outcome, reason_code=live.end_reason or None)
        self.ownership.release(call_id, self.name)
        log.info("call finished: %s (%s)", outcome, result.reason)

    def _convert(self, info: RecordingInfo) -> RecordingInfo:
        """The recording in the configured format (the WAV is kept if conversion fails)."""
        fmt = self.settings.recording_format
        if fmt == "wav" or info.format != "wav":
            return info
        try:
            return convert(info, fmt)
        except RecorderError as exc:
            log.error("recording kept as WAV: %s", exc)
            return info

    def on_call_event(self, notification: EndedNotification | UnknownNotification) -> bool:
        """Pass a follow-up event to the live call it names; False if this node has no such call."""
        call_id = (
            notification.content.call_id
            if isinstance(notification, EndedNotification)
            else notification.call_id
        )
        live = self.calls.get(call_id or "")
        if live is None:
            return False
        if isinstance(notification, EndedNotification):
            reason = notification.content.reason_code or "ended"
            self.loop.loop.call_soon_threadsafe(live.far_end_ended, reason)
        return True


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, GoToError | NodeError | ProvisionError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
