"""The flow driver: runs a :class:`~worker.flows.engine.FlowRun` on a live call.

::

    result = await run_flow(
        flows, "main",
        session=session,                 # a connected CallSession
        actions=GoToCallActions(client, call_id, voicemail_number="*86"),
        recordings_dir=settings.recordings_dir,
        call=FlowCall(call_id, caller_number, caller_name, extension),
        http=http_client,                # an httpx.AsyncClient, for http steps
    )

It runs on the call's event loop, as one coroutine: it performs each action
the engine returns (prompts on the session's playback track, timeouts,
recordings, HTTP requests, the call actions) and feeds back what happened:
key presses (from ``session.on_digit``), playback ends, timeouts, recording
ends, replies, and the session closing, which is the caller hanging up.

- Barge-in is the session's own: before each prompt the driver sets
  ``session.barge_in`` as the step says, so a key press cuts the prompt at
  the media time it arrived; the engine then moves on.
- Every action but :class:`~worker.flows.events.Continue` replaces the one
  before: a prompt still playing is stopped, a pending timeout forgotten.
  Events from a replaced action (a late playback end) are dropped.
- Messages (``record``) are written by a :class:`~worker.media.recorder.WavRecorder`
  fed from ``session.on_audio``, so they never clash with a recording of the
  whole call; next to each WAV a ``.json`` file (mode 0600) says who left it,
  when, in which box and for how long.
- Before a hang-up or transfer, the driver lets the end of the last prompt reach
  the caller (``tail_seconds`` after it ended on the media clock).
- The driver never closes the session and never raises for what happens on
  the call: failed API calls and requests become events the flow handles.
  If it is cancelled (the call's maximum length), :meth:`FlowDriver.result`
  still gives the path so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol

import httpx
from aiortc.mediastreams import MediaStreamError

from worker.flows.engine import FlowRun
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
from worker.flows.model import BUILTIN_BEEP, FlowSet
from worker.media.audio import MediaError
from worker.media.dtmf import DigitEvent
from worker.media.playback import Playback
from worker.media.prompts import Prompt, PromptLibrary, beep
from worker.media.recorder import FILE_MODE, RecordingInfo, StopReason, WavRecorder
from worker.media.session import CallSession, SessionState

logger = logging.getLogger(__name__)

ANY = -1
"""Generation of events that are never stale (key presses, the caller hanging up)."""
MAX_REPLY_BYTES = 64 * 1024

P = ParamSpec("P")


class CallActions(Protocol):
    """What a flow asks of the call itself; the node implements it with the GoTo API."""

    async def hangup(self) -> None: ...

    async def transfer(self, number: str) -> None: ...

    async def voicemail(self, number: str | None) -> None: ...


_BEEP: Prompt | None = None


def _builtin_beep() -> Prompt:
    global _BEEP
    if _BEEP is None:
        _BEEP = beep()
    return _BEEP


class FlowDriver:
    """Runs one flow on one call; see the module docstring. Use :func:`run_flow`."""

    def __init__(
        self,
        flows: FlowSet,
        start_flow: str,
        *,
        session: CallSession,
        actions: CallActions,
        recordings_dir: Path,
        call: FlowCall,
        http: httpx.AsyncClient,
        prompts: PromptLibrary | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        start_step: str | None = None,
        action_timeout: float = 15.0,
        tail_seconds: float = 0.3,
    ) -> None:
        self.flows = flows
        self.session = session
        self.actions = actions
        self.recordings_dir = Path(recordings_dir)
        self.call = call
        self.http = http
        self.prompts = prompts or flows.prompts
        self.action_timeout = action_timeout
        self.tail_seconds = tail_seconds
        self.flow_run = FlowRun(
            flows, start_flow, call, clock=session.media_time, now=now, start_step=start_step
        )
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._generation = 0
        self._playbacks: list[Playback] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._recorder: WavRecorder | None = None
        self._recording: RecordingInfo | None = None
        self._unsubscribe_audio: Callable[[], None] | None = None
        self._acting = False
        self._closed_while_acting = False
        self._hung_up_reported = False
        self._messages_written = 0

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> FlowResult:
        """Run the flow to its end and return the story of the call."""
        loop = asyncio.get_running_loop()
        unsubscribe = self.session.on_digit(self._on_digit)
        watcher = asyncio.ensure_future(self.session.closed.wait())
        watcher.add_done_callback(lambda done: None if done.cancelled() else self._on_closed())
        try:
            action = self.flow_run.start()
            deadline: float | None = None
            while not isinstance(action, End):
                if not isinstance(action, Continue):
                    self._generation += 1
                    self._interrupt()
                    logger.debug("call %s: %s", self.call.call_id, action)
                    deadline = await self._perform(action, loop)
                event = await self._next_event(deadline, loop)
                action = self.flow_run.on(event)
                self._write_messages()
            logger.info(
                "call %s: flow ended: %s (%s)", self.call.call_id, action.outcome, action.reason
            )
        finally:
            unsubscribe()
            watcher.cancel()
            self._interrupt()
            if self._recorder is not None:
                self._close_recorder()
            for task in list(self._tasks):
                task.cancel()
        return self.result()

    def result(self) -> FlowResult:
        """The path so far (the whole story once :meth:`run` returned)."""
        records = tuple(
            PlaybackRecord(p.name, p.started_at, p.stopped_at, p.finished) for p in self._playbacks
        )
        return self.flow_run.result(playbacks=records)

    async def _next_event(self, deadline: float | None, loop: asyncio.AbstractEventLoop) -> Event:
        while True:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            getter = asyncio.ensure_future(self._queue.get())
            try:
                await asyncio.wait({getter}, timeout=timeout)
            finally:
                if not getter.done():
                    getter.cancel()
            if not getter.done() or getter.cancelled():
                return Timeout()
            generation, event = getter.result()
            if generation in (ANY, self._generation):
                return event

    def _put(self, event: Event, generation: int | None = None) -> None:
        self._queue.put_nowait((self._generation if generation is None else generation, event))

    # -- inputs --------------------------------------------------------------------------

    def _on_digit(self, event: DigitEvent) -> None:
        self._put(Digit(event.digit, event.media_time, event.source), ANY)

    def _on_closed(self) -> None:
        if self._acting:
            self._closed_while_acting = True
            return
        message = self._close_recorder() if self._recorder is not None else None
        self._report_hangup(message)

    def _report_hangup(self, message: RecordingInfo | None = None) -> None:
        if not self._hung_up_reported:
            self._hung_up_reported = True
            reason = self.session.close_reason or "media closed"
            self._put(CallerHungUp(reason, message), ANY)

    # -- actions -------------------------------------------------------------------------

    def _interrupt(self) -> None:
        """Stop what the previous action started (a prompt, a pending request)."""
        if self.session.playback.playing and not self.session.closed.is_set():
            self.session.playback.stop()
        for task in list(self._tasks):
            task.cancel()

    async def _perform(self, action: Action, loop: asyncio.AbstractEventLoop) -> float | None:
        closed = self.session.closed.is_set()
        if isinstance(action, PlaySounds):
            if not closed:
                self._play(action)
        elif isinstance(action, WaitForDigit):
            return loop.time() + action.seconds
        elif isinstance(action, StartRecording):
            if not closed:
                self._start_recording(action)
        elif isinstance(action, StopRecording):
            self._put(RecordingDone(self._close_recorder()))
        elif isinstance(action, HttpRequest):
            self._spawn(self._http(action, self._generation))
        elif isinstance(action, TransferCall | SendToVoicemail | HangUp):
            await self._call_action(action)
        return None

    def _play(self, action: PlaySounds) -> None:
        self.session.barge_in = action.barge_in
        last: Playback | None = None
        try:
            for sound in action.sounds:
                if isinstance(sound, str):
                    prompt = self._prompt(sound)
                    if prompt is None:
                        continue
                    last = self.session.playback.play(prompt)
                else:
                    last = self.session.playback.say_silence(sound)
                self._playbacks.append(last)
        except MediaStreamError:
            return  # the track ended: the call is closing, CallerHungUp follows
        if last is None:
            self._put(PlaybackDone(True, self.session.media_time()))
            return
        self._spawn(self._playback_done(last, self._generation))

    def _prompt(self, name: str) -> Prompt | None:
        if name == BUILTIN_BEEP:
            return _builtin_beep()
        try:
            return self.prompts.get(name)
        except MediaError as exc:
            logger.error("call %s: cannot play prompt %s: %s", self.call.call_id, name, exc)
            return None

    async def _playback_done(self, playback: Playback, generation: int) -> None:
        await playback.done.wait()
        if self.session.state is SessionState.CLOSED:
            return  # cut by the call ending: CallerHungUp follows, not the next step
        self._put(PlaybackDone(playback.finished, playback.stopped_at), generation)

    def _start_recording(self, action: StartRecording) -> None:
        path = self.recordings_dir / action.file_name
        generation = self._generation
        try:
            recorder = WavRecorder(
                path,
                max_seconds=action.max_seconds,
                stop_on_silence_seconds=action.silence_seconds,
                on_stop=lambda _reason: self._recorder_stopped(generation),
            )
        except MediaError as exc:
            logger.error("call %s: cannot record a message: %s", self.call.call_id, exc)
            self._put(ActionFailed(f"cannot record: {exc}"))
            return
        self._recorder = recorder
        self._recording = None
        origin = self.session.media_time()

        def feed(pcm: bytes, at: float) -> None:
            if self._recorder is recorder:
                try:
                    recorder.write(pcm, max(0.0, at - origin))
                except MediaError as exc:
                    logger.error("call %s: message recording failed: %s", self.call.call_id, exc)
                    self._put(RecordingDone(self._close_recorder()), generation)

        self._unsubscribe_audio = self.session.on_audio(feed)

    def _recorder_stopped(self, generation: int) -> None:
        self._put(RecordingDone(self._close_recorder()), generation)

    def _close_recorder(self) -> RecordingInfo:
        recorder, self._recorder = self._recorder, None
        if self._unsubscribe_audio is not None:
            with contextlib.suppress(ValueError):
                self._unsubscribe_audio()
            self._unsubscribe_audio = None
        if recorder is not None:
            try:
                self._recording = recorder.close()
            except MediaError as exc:
                logger.error("call %s: finishing a message failed: %s", self.call.call_id, exc)
                self._recording = RecordingInfo(recorder.path, 0.0, 0, StopReason.CLOSED)
        if self._recording is None:
            raise AssertionError("no recording to close")
        return self._recording

    async def _http(self, action: HttpRequest, generation: int) -> None:
        event: Event
        try:
            async with asyncio.timeout(action.timeout):
                async with self.http.stream(
                    "POST",
                    action.url,
                    json=dict(action.body),
                    headers=dict(action.headers),
                    timeout=action.timeout,
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_REPLY_BYTES:
                            raise _TooLarge
                    event = HttpReply(response.status_code, body.decode("utf-8", "replace"))
        except (TimeoutError, httpx.TimeoutException):
            event = HttpFailed(f"no reply within {action.timeout:g} s")
        except _TooLarge:
            event = HttpFailed(f"the reply is larger than {MAX_REPLY_BYTES // 1024} KiB")
        except httpx.HTTPError as exc:
            event = HttpFailed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        self._put(event, generation)

    async def _let_the_last_prompt_arrive(self) -> None:
        """Before the call goes away, let the end of the last prompt reach the caller.

        The last frames sent are still in the network and the far end's jitter buffer
        (100-200 ms); hanging up at once would cut the end of "Goodbye".
        """
        ends = [p.stopped_at for p in self._playbacks[-1:] if p.stopped_at is not None]
        if ends and not self.session.closed.is_set():
            wait = ends[0] + self.tail_seconds - self.session.media_time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _call_action(self, action: TransferCall | SendToVoicemail | HangUp) -> None:
        self._acting = True
        event: Event
        try:
            await self._let_the_last_prompt_arrive()
            async with asyncio.timeout(self.action_timeout):
                if isinstance(action, TransferCall):
                    await self.actions.transfer(action.number)
                elif isinstance(action, SendToVoicemail):
                    await self.actions.voicemail(action.number)
                else:
                    await self.actions.hangup()
            event = ActionDone()
        except TimeoutError:
            event = ActionFailed(f"no answer within {self.action_timeout:g} s")
        except Exception as exc:  # a GoToError, or whatever a CallActions raises
            logger.warning("call %s: %s failed: %s", self.call.call_id, action, exc)
            event = ActionFailed(str(exc) or type(exc).__name__)
        finally:
            self._acting = False
        self._put(event)
        if self._closed_while_acting or self.session.closed.is_set():
            self._report_hangup()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- messages ------------------------------------------------------------------------

    def _write_messages(self) -> None:
        for message in self.flow_run.messages[self._messages_written :]:
            self._messages_written += 1
            write_message_json(message)


class _TooLarge(Exception):
    pass


def write_message_json(message: Message) -> Path:
    """Write ``<message>.json`` beside its WAV, owner-only; returns its path."""
    path = message.path.with_suffix(".json")
    data = json.dumps(message.as_json(), indent=2).encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        logger.error("cannot write message details %s: %s", path, exc)
    return path


def _run_to_the_end(
    make: Callable[P, FlowDriver],
) -> Callable[P, Coroutine[Any, Any, FlowResult]]:
    """A coroutine function with the parameters of ``make``: make the driver, run it."""

    async def run_flow(*args: P.args, **kwargs: P.kwargs) -> FlowResult:
        """Run ``start_flow`` of ``flows`` on a connected call until it ends; see the module.

        It takes the arguments of :class:`FlowDriver`.
        """
        return await make(*args, **kwargs).run()

    return run_flow


run_flow = _run_to_the_end(FlowDriver)


__all__ = ["CallActions", "FlowDriver", "run_flow", "write_message_json"]
