"""The simulator's state: configuration, channels, devices, registrations and calls.

Plain dataclasses owned by the :class:`~gotosim.simulator.Simulator` and
mutated only on its event loop. :class:`SimCall` is also what a far end
(:mod:`gotosim.media`) receives: it may read any field and must not write them;
it reports back through the simulator (``far_end_hangup``, ``log_call_event``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from gotosim.clock import iso_offset

Rotation = Literal["never", "always", "ttl60"]
WebhookCheck = Literal["enforce", "record"]
Behaviour = Literal["answer", "busy", "no-answer", "reject"]

ROTATIONS: tuple[Rotation, ...] = ("never", "always", "ttl60")
WEBHOOK_CHECKS: tuple[WebhookCheck, ...] = ("enforce", "record")
BEHAVIOURS: tuple[Behaviour, ...] = ("answer", "busy", "no-answer", "reject")


@dataclass(frozen=True)
class SimConfig:
    """How a simulator starts. Empty credentials are generated at random."""

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    organization_id: str = ""
    extensions: tuple[str, ...] = ("1000", "1001")
    principal: str = "sandbox-user@gotosim.local"
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 2_592_000
    refresh_rotation: Rotation = "ttl60"
    ring_timeout: float = 30.0
    webhook_timeout: float = 5.0
    webhook_retry_delay: float = 0.05
    webhook_check: WebhookCheck = "enforce"
    default_behaviour: Behaviour = "answer"

    def with_generated_credentials(self) -> SimConfig:
        """A copy with every empty credential filled in."""
        from dataclasses import replace

        return replace(
            self,
            client_id=self.client_id or str(uuid.uuid4()),
            client_secret=self.client_secret or secrets.token_urlsafe(24),
            refresh_token=self.refresh_token or secrets.token_urlsafe(48),
            organization_id=self.organization_id or str(uuid.uuid4()),
        )


@dataclass
class WebhookCheckResult:
    """What the OPTIONS request to a webhook URL returned."""

    url: str
    time: float
    ok: bool
    status: int | None = None
    allow: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return self.error
        allow = f" (Allow: {self.allow})" if self.allow else ""
        return f"it answered HTTP {self.status}{allow}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "time": iso_offset(self.time), "ok": self.ok}
        if self.status is not None:
            out["status"] = self.status
        if self.allow is not None:
            out["allow"] = self.allow
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Channel:
    """A webhook notification channel."""

    channel_id: str
    nickname: str
    url: str
    lifetime: int
    created_at: float
    expires_at: float
    do_not_disturb_aware: bool = False
    has_shared_secret: bool = False
    unreachable_since: float | None = None
    check: WebhookCheckResult | None = None


@dataclass
class Device:
    """A registered WebRTC device, keyed by the client-chosen ``deviceId``."""

    device_id: str
    app_id: str | None
    app_version: str | None
    platform: str | None
    incoming_channel_id: str
    session_channel_id: str
    created_at: float


@dataclass
class Registration:
    """One extension registered on one device (a session)."""

    device_id: str
    organization_id: str
    number: str
    session_id: str
    created_at: float
    impersonatee_user_key: str | None = None


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class CallState(StrEnum):
    INCOMING = "INCOMING"
    RINGING = "RINGING"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    ENDED = "ENDED"


@dataclass(frozen=True)
class CallEvent:
    time: float
    event: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"time": iso_offset(self.time), "event": self.event, **self.detail}


@dataclass(eq=False)
class SimCall:
    """A call as the simulated cloud sees it.

    ``number``/``name`` are the remote party (the caller of an inbound call,
    the dialled number of an outbound one). ``script`` is the opaque JSON a
    test or user attached to drive the far end; gotosim never reads it.
    """

    id: str
    direction: Direction
    organization_id: str
    extension_number: str
    number: str
    name: str
    state: CallState
    created_at: float
    leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    sip_call_id: str = ""
    device_id: str | None = None
    session_id: str | None = None
    in_call_channel_id: str | None = None
    offered_to: list[Registration] = field(default_factory=list)
    script: Any = None
    muted: bool = False
    on_hold: bool = False
    answered_at: float | None = None
    ended_at: float | None = None
    reason_code: str | None = None
    outcome: str | None = None
    offer_sdp: str | None = None
    answer_sdp: str | None = None
    dtmf: list[str] = field(default_factory=list)
    transfer_target: str | None = None
    events: list[CallEvent] = field(default_factory=list)
    far_end_released: bool = field(default=False, repr=False)

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED
