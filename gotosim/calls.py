"""Simulated calls: the state machine behind ``/web-calls/v1/calls`` and ``/_sim/calls``.

Outbound: CONNECTING (make call) -> RINGING -> CONNECTED -> ENDED, or ENDED
early as the dialled number's behaviour says (busy, no answer, reject).
Inbound: INCOMING (``incoming`` sent) -> RINGING (device said so) ->
CONNECTING (answer in progress) -> CONNECTED -> ENDED, or ENDED by a reject,
the caller giving up, or the ring timeout.

Every end sends one ``ended`` notification (reasonCode ``BYE``, ``CANCEL``,
``REJECTED``, ``BUSY``, ``NO_ANSWER``, ``TRANSFERRED`` or ``UNREGISTERED``)
and calls the far end's ``hangup`` once. Timers run on the simulator's
clock. An action in the wrong state is a 409 that names the state.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gotosim.errors import INVALID, bad_field, conflict, not_found
from gotosim.media import FarEndError
from gotosim.model import Behaviour, CallEvent, CallState, Direction, Registration, SimCall

if TYPE_CHECKING:
    from gotosim.simulator import Simulator

BYE = "BYE"
CANCEL = "CANCEL"
REJECTED = "REJECTED"
BUSY = "BUSY"
NO_ANSWER = "NO_ANSWER"
TRANSFERRED = "TRANSFERRED"
UNREGISTERED = "UNREGISTERED"

SEND_TO_VOICEMAIL = "SEND_TO_VOICEMAIL"
REJECT_ACTIONS = (SEND_TO_VOICEMAIL,)
RINGING_STATES = (CallState.INCOMING, CallState.RINGING)
EARLY_BEHAVIOUR_DELAY = 0.2


@dataclass(frozen=True)
class NumberBehaviour:
    """How a dialled number behaves (``PUT /_sim/numbers/{number}``)."""

    behaviour: Behaviour
    after_seconds: float | None = None
    script: Any = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"behaviour": self.behaviour}
        if self.after_seconds is not None:
            out["afterSeconds"] = self.after_seconds
        if self.script is not None:
            out["script"] = self.script
        return out


class Calls:
    """Every call of one simulator and the rules that move them."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.calls: dict[str, SimCall] = {}
        self._timers: dict[str, set[asyncio.Task[None]]] = {}

    # -- lookup ---------------------------------------------------------------------

    def get(self, call_id: str) -> SimCall:
        call = self.calls.get(call_id)
        if call is None:
            raise not_found("call", call_id)
        return call

    def active(self) -> list[SimCall]:
        return [c for c in self.calls.values() if not c.ended]

    def clear(self) -> None:
        for tasks in self._timers.values():
            for task in tasks:
                task.cancel()
        self._timers.clear()
        self.calls.clear()

    # -- helpers --------------------------------------------------------------------

    def event(self, call: SimCall, event: str, **detail: Any) -> None:
        call.events.append(CallEvent(self.sim.clock.time(), event, detail))
        self.sim.changed()

    def _state(self, call: SimCall, state: CallState) -> None:
        if call.state is not state:
            previous = call.state
            call.state = state
            self.event(call, "state", **{"from": previous.value, "to": state.value})

    def _require(
        self,
        call: SimCall,
        action: str,
        states: tuple[CallState, ...],
        direction: Direction | None = None,
    ) -> None:
        if direction is not None and call.direction is not direction:
            raise conflict(
                f"cannot {action} call {call.id}: it is an {call.direction.value.lower()} call"
            )
        if call.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise conflict(
                f"cannot {action} call {call.id}: it is {call.state.value} (must be {allowed})"
            )

    def _after(self, call: SimCall, seconds: float, action: Callable[[], None]) -> None:
        async def timer() -> None:
            await self.sim.clock.sleep(seconds)
            if not call.ended:
                action()

        self._track(call, self.sim.spawn(timer(), f"gotosim-call-{call.id[:12]}"))

    def _track(self, call: SimCall, task: asyncio.Task[None]) -> None:
        tasks = self._timers.setdefault(call.id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _channel(self, field: str, channel_id: str) -> str:
        if self.sim.directory.channel(channel_id) is None:
            raise bad_field(field, INVALID, f"notification channel {channel_id!r} does not exist")
        return channel_id

    # -- outbound -------------------------------------------------------------------

    async def make_call(
        self,
        *,
        device_id: str,
        organization_id: str,
        extension_number: str,
        dial_string: str,
        in_call_channel_id: str,
        sdp: str,
    ) -> SimCall:
        directory = self.sim.directory
        if device_id not in directory.devices:
            raise bad_field("deviceId", INVALID, f"device {device_id!r} does not exist")
        directory.check_organization(organization_id)
        registrations = directory.registrations_of(device_id, extension_number)
        if not registrations:
            raise bad_field(
                "extensionNumber",
                INVALID,
                f"extension {extension_number!r} is not registered on device {device_id!r}",
            )
        self._channel("inCallChannelId", in_call_channel_id)
        plan = self.sim.numbers.get(dial_string) or NumberBehaviour(
            self.sim.config.default_behaviour
        )
        call = SimCall(
            id=secrets.token_urlsafe(64),
            direction=Direction.OUTBOUND,
            organization_id=organization_id,
            extension_number=extension_number,
            number=dial_string,
            name="-",
            state=CallState.CONNECTING,
            created_at=self.sim.clock.time(),
            sip_call_id=_sip_call_id(extension_number),
            device_id=device_id,
            session_id=registrations[0].session_id,
            in_call_channel_id=in_call_channel_id,
            script=plan.script,
            offer_sdp=sdp,
        )
        self.calls[call.id] = call
        self.event(call, "created", direction="OUTBOUND", dialString=dial_string)
        try:
            call.answer_sdp = await self.sim.far_end.answer(call, sdp)
        except FarEndError as exc:
            del self.calls[call.id]
            raise bad_field("sdp", INVALID, f"cannot answer the SDP offer: {exc}") from None
        except BaseException:
            del self.calls[call.id]
            raise
        self.event(call, "far-end-answer", behaviour=plan.behaviour)
        self._progress(call, plan)
        return call

    def _progress(self, call: SimCall, plan: NumberBehaviour) -> None:
        """Play out the dialled number's behaviour after the make-call reply."""
        after = plan.after_seconds

        async def progress() -> None:
            if plan.behaviour == "busy":
                await self.sim.clock.sleep(EARLY_BEHAVIOUR_DELAY if after is None else after)
                if not call.ended:
                    self.end(call, BUSY, "BUSY")
                return
            self._state(call, CallState.RINGING)
            if plan.behaviour == "answer":
                await self.sim.clock.sleep(after or 0.0)
                if not call.ended:
                    self._connected(call)
            elif plan.behaviour == "reject":
                await self.sim.clock.sleep(EARLY_BEHAVIOUR_DELAY if after is None else after)
                if not call.ended:
                    self.end(call, REJECTED, "REJECTED")
            else:
                await self.sim.clock.sleep(self.sim.config.ring_timeout if after is None else after)
                if not call.ended:
                    self.end(call, NO_ANSWER, "NO_ANSWER")

        self._track(call, self.sim.spawn(progress(), f"gotosim-call-{call.id[:12]}"))

    def _connected(self, call: SimCall) -> None:
        call.answered_at = self.sim.clock.time()
        self._state(call, CallState.CONNECTED)

    # -- inbound --------------------------------------------------------------------

    def place_inbound(
        self,
        extension: str,
        number: str,
        name: str,
        script: Any = None,
        ring_timeout: float | None = None,
    ) -> SimCall:
        registrations = self.sim.directory.registrations_for(extension)
        if not registrations:
            raise conflict(
                f"extension {extension!r} is not registered on any device; create a device "
                "and POST its extensions first"
            )
        call = SimCall(
            id=uuid.uuid4().hex,
            direction=Direction.INBOUND,
            organization_id=registrations[0].organization_id,
            extension_number=extension,
            number=number,
            name=name,
            state=CallState.INCOMING,
            created_at=self.sim.clock.time(),
            sip_call_id=_sip_call_id(extension),
            session_id=registrations[0].session_id,
            offered_to=list(registrations),
            script=script,
        )
        self.calls[call.id] = call
        self.event(call, "created", direction="INBOUND", number=number, name=name)
        for registration in registrations:
            device = self.sim.directory.devices.get(registration.device_id)
            if device is None:
                continue
            self.sim.notify(
                device.incoming_channel_id,
                "incoming",
                "VOIP",
                "30",
                {
                    "sessionId": registration.session_id,
                    "organizationId": registration.organization_id,
                    "extensionNumber": extension,
                    "callId": call.id,
                    "name": name,
                    "number": number,
                },
                call_id=call.id,
            )
        timeout = self.sim.config.ring_timeout if ring_timeout is None else ring_timeout
        self._after(call, timeout, lambda: self._ring_timeout(call))
        return call

    def _ring_timeout(self, call: SimCall) -> None:
        if call.state in RINGING_STATES:
            self.end(call, NO_ANSWER, "MISSED")

    def ringing(self, call_id: str, in_call_channel_id: str | None) -> SimCall:
        call = self.get(call_id)
        self._require(call, "ring", RINGING_STATES, Direction.INBOUND)
        if in_call_channel_id is not None:
            call.in_call_channel_id = self._channel("inCallChannelId", in_call_channel_id)
        self._state(call, CallState.RINGING)
        return call

    async def answer(self, call_id: str, sdp: str, in_call_channel_id: str) -> SimCall:
        call = self.get(call_id)
        self._require(call, "answer", RINGING_STATES, Direction.INBOUND)
        self._channel("inCallChannelId", in_call_channel_id)
        registration = self._answering_registration(call, in_call_channel_id)
        previous = call.state
        self._state(call, CallState.CONNECTING)
        try:
            answer_sdp = await self.sim.far_end.answer(call, sdp)
        except FarEndError as exc:
            if not call.ended:
                self._state(call, previous)
            raise bad_field("sdp", INVALID, f"cannot answer the SDP offer: {exc}") from None
        except BaseException:
            if not call.ended:
                self._state(call, previous)
            raise
        if call.ended:
            raise conflict(f"call {call.id} ended while it was being answered ({call.reason_code})")
        call.device_id = registration.device_id
        call.session_id = registration.session_id
        call.in_call_channel_id = in_call_channel_id
        call.offer_sdp = sdp
        call.answer_sdp = answer_sdp
        call.answered_at = self.sim.clock.time()
        self._state(call, CallState.CONNECTED)
        return call

    def _answering_registration(self, call: SimCall, channel_id: str) -> Registration:
        devices = self.sim.directory.devices
        alive = [r for r in call.offered_to if r.device_id in devices]
        if not alive:
            raise conflict(f"cannot answer call {call.id}: no device is registered for it any more")
        for registration in alive:
            if devices[registration.device_id].incoming_channel_id == channel_id:
                return registration
        return alive[0]

    def reject(self, call_id: str, action: str | None, destination: str | None) -> SimCall:
        call = self.get(call_id)
        self._require(call, "reject", RINGING_STATES, Direction.INBOUND)
        if action == SEND_TO_VOICEMAIL:
            outcome = "VOICEMAIL"
        elif destination is not None:
            outcome = "FORWARDED"
            call.transfer_target = destination
        else:
            outcome = "REJECTED"
        self.event(call, "rejected", action=action, destination=destination)
        self.end(call, REJECTED, outcome)
        return call

    # -- in call --------------------------------------------------------------------

    def hangup(self, call_id: str) -> SimCall:
        """The device hangs up (``DELETE /calls/{id}``)."""
        call = self.get(call_id)
        self._require(
            call,
            "hang up",
            (CallState.INCOMING, CallState.RINGING, CallState.CONNECTING, CallState.CONNECTED),
        )
        if call.state is CallState.CONNECTED:
            self.end(call, BYE, "COMPLETED")
        elif call.direction is Direction.INBOUND:
            self.end(call, REJECTED, "REJECTED")
        else:
            self.end(call, CANCEL, "CANCELLED")
        return call

    def far_end_hangup(self, call_id: str, reason: str | None = None) -> SimCall:
        """The remote party hangs up (or gives up ringing)."""
        call = self.get(call_id)
        if call.ended:
            raise conflict(f"cannot hang up call {call.id}: it is ENDED ({call.reason_code})")
        if call.state is CallState.CONNECTED:
            self.end(call, reason or BYE, "COMPLETED")
        elif call.direction is Direction.INBOUND:
            self.end(call, reason or CANCEL, "ABANDONED")
        else:
            self.end(call, reason or REJECTED, "REJECTED")
        return call

    def set_hold(self, call_id: str, on_hold: bool) -> SimCall:
        call = self.get(call_id)
        self._require(call, "hold" if on_hold else "unhold", (CallState.CONNECTED,))
        if call.on_hold is not on_hold:
            call.on_hold = on_hold
            self.event(call, "hold" if on_hold else "unhold")
        return call

    def set_mute(self, call_id: str, muted: bool) -> SimCall:
        call = self.get(call_id)
        self._require(call, "mute" if muted else "unmute", (CallState.CONNECTED,))
        if call.muted is not muted:
            call.muted = muted
            self.event(call, "mute" if muted else "unmute")
        return call

    def dtmf(self, call_id: str, tone: str) -> SimCall:
        call = self.get(call_id)
        self._require(call, "send DTMF on", (CallState.CONNECTED,))
        call.dtmf.append(tone)
        self.event(call, "dtmf", tone=tone)
        return call

    def blind_transfer(self, call_id: str, dial_string: str) -> SimCall:
        call = self.get(call_id)
        self._require(call, "transfer", (CallState.CONNECTED,))
        call.transfer_target = dial_string
        self.event(call, "blind-transfer", dialString=dial_string)
        self.end(call, TRANSFERRED, "TRANSFERRED")
        return call

    async def offer(self, call_id: str, sdp: str) -> SimCall:
        call = self.get(call_id)
        self._require(call, "renegotiate", (CallState.CONNECTED,))
        try:
            answer_sdp = await self.sim.far_end.answer(call, sdp)
        except FarEndError as exc:
            raise bad_field("sdp", INVALID, f"cannot answer the SDP offer: {exc}") from None
        if call.ended:
            raise conflict(f"call {call.id} ended during renegotiation ({call.reason_code})")
        call.offer_sdp, call.answer_sdp = sdp, answer_sdp
        self.event(call, "offer")
        return call

    # -- ending ---------------------------------------------------------------------

    def end(self, call: SimCall, reason: str, outcome: str) -> None:
        """End a call once: state, ``ended`` notification(s), far-end hangup, timers."""
        if call.ended:
            return
        call.ended_at = self.sim.clock.time()
        call.reason_code = reason
        call.outcome = outcome
        self._state(call, CallState.ENDED)
        self.event(call, "ended", reasonCode=reason, outcome=outcome)
        current = asyncio.current_task()
        for task in self._timers.pop(call.id, set()):
            if task is not current:
                task.cancel()
        for channel_id, session_id in self._ended_targets(call):
            self.sim.notify(
                channel_id,
                "ended",
                "ALERT",
                "3600",
                {
                    "sessionId": session_id,
                    "organizationId": call.organization_id,
                    "extensionNumber": call.extension_number,
                    "callId": call.id,
                    "reasonCode": reason,
                },
                call_id=call.id,
            )
        self.sim.spawn(self.sim.far_end_hung_up(call), f"gotosim-hangup-{call.id[:12]}")

    def _ended_targets(self, call: SimCall) -> list[tuple[str, str]]:
        if call.in_call_channel_id is not None:
            return [(call.in_call_channel_id, call.session_id or "")]
        targets: dict[str, str] = {}
        for registration in call.offered_to:
            device = self.sim.directory.devices.get(registration.device_id)
            if device is not None:
                targets.setdefault(device.incoming_channel_id, registration.session_id)
        return list(targets.items())

    def unregistered(self, removed: list[Registration]) -> None:
        """End the calls that lived on registrations just removed."""
        sessions = {r.session_id for r in removed}
        for call in self.active():
            if call.device_id is not None and call.session_id in sessions:
                self.end(call, UNREGISTERED, "UNREGISTERED")
            elif call.device_id is None and call.offered_to:
                call.offered_to = [r for r in call.offered_to if r.session_id not in sessions]
                if not call.offered_to:
                    self.end(call, UNREGISTERED, "UNREGISTERED")


def _sip_call_id(extension: str) -> str:
    digits = "".join(secrets.choice("0123456789") for _ in range(19))
    return f"{digits}_{digits}~{extension}~{uuid.uuid4()}_{secrets.token_urlsafe(24)}"
