"""Notification models: what GoTo POSTs to a webhook notification channel.

Every notification shares one envelope (``source``, ``type``, ``timestamp``,
``usage``, ``ttl``, ``content``). Known ``WebRTC`` types get a typed
``content``; anything else is kept whole as :class:`UnknownNotification` so
nothing is lost. Unknown fields are tolerated everywhere and kept in
``model_extra`` so a parsed notification dumps back to what arrived.
``ttl`` arrives as a string (``"30"``) or a number (``1800``); both parse.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


class NotificationError(ValueError):
    """A webhook body is not a valid notification; ``where`` names the field."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def _ttl(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("ttl must be a number of seconds")
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped.isdigit():
            raise ValueError(f"ttl must be a number of seconds, got {value!r}")
        return int(stripped)
    return value


Ttl = Annotated[int, BeforeValidator(_ttl), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class GreetingsContent(_Model):
    session_id: str = Field(alias="sessionId")
    organization_id: str = Field(alias="organizationId")
    extension_number: str = Field(alias="extensionNumber")


class IncomingContent(_Model):
    session_id: str = Field(alias="sessionId")
    organization_id: str = Field(alias="organizationId")
    extension_number: str = Field(alias="extensionNumber")
    call_id: str = Field(alias="callId", min_length=1)
    name: str = ""
    number: str = ""


class EndedContent(_Model):
    session_id: str = Field(alias="sessionId")
    organization_id: str = Field(alias="organizationId")
    extension_number: str = Field(alias="extensionNumber")
    call_id: str = Field(alias="callId", min_length=1)
    reason_code: str = Field(default="", alias="reasonCode")


class _Envelope(_Model):
    source: str
    timestamp: datetime
    usage: str = ""
    ttl: Ttl = 0


class GreetingsNotification(_Envelope):
    type: Literal["greetings"]
    content: GreetingsContent


class IncomingNotification(_Envelope):
    type: Literal["incoming"]
    content: IncomingContent


class EndedNotification(_Envelope):
    type: Literal["ended"]
    content: EndedContent


class UnknownNotification(_Envelope):
    """A notification type this version does not know; kept whole."""

    type: str
    content: dict[str, Any] = Field(default_factory=dict)

    @property
    def call_id(self) -> str | None:
        value = self.content.get("callId")
        return value if isinstance(value, str) and value else None


Notification = (
    GreetingsNotification | IncomingNotification | EndedNotification | UnknownNotification
)

_TYPED: dict[str, type[GreetingsNotification | IncomingNotification | EndedNotification]] = {
    "greetings": GreetingsNotification,
    "incoming": IncomingNotification,
    "ended": EndedNotification,
}


def parse_notification(data: Any) -> Notification:
    """Parse one decoded webhook body; raise :class:`NotificationError` naming the bad field."""
    if not isinstance(data, dict):
        raise NotificationError(f"expected a JSON object, got {type(data).__name__}", "body")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise NotificationError("missing or not a string", "type")
    model = _TYPED.get(kind, UnknownNotification)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NotificationError(first["msg"], where) from None


def parse_notification_json(body: bytes | str) -> Notification:
    """Decode and parse a raw webhook body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotificationError(f"not valid JSON ({exc})", "body") from None
    return parse_notification(data)


def notification_call_id(notification: Notification) -> str | None:
    """The call a notification is about, if any."""
    if isinstance(notification, IncomingNotification | EndedNotification):
        return notification.content.call_id
    if isinstance(notification, UnknownNotification):
        return notification.call_id
    return None


def dump_notification(notification: Notification) -> dict[str, Any]:
    """The notification as JSON-ready data, with GoTo's field names and any unknown fields."""
    return notification.model_dump(mode="json", by_alias=True)
