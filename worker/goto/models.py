"""Request and reply models of the GoTo REST APIs the client uses.

Frozen pydantic models with GoTo's field names as aliases (``channelId``,
``callbackReference``, ...: the camelCase of the Python name unless marked
otherwise); Python code uses snake_case names. Unknown
fields are kept (``extra="allow"``) because GoTo adds attributes without
notice, so a parsed reply dumps back to what arrived: :meth:`GoToModel.dump`
gives the JSON-ready dict with GoTo's names and only the fields that were
set. Webhook URLs carry a secret and are left out of ``repr``.

Notification models (what GoTo POSTs to the webhook) live in
:mod:`worker.goto.events`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class GoToModel(BaseModel):
    """Base of the REST models: GoTo's camelCase names on the wire, snake_case in Python."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
    )

    def dump(self) -> dict[str, Any]:
        """JSON-ready data with GoTo's field names: the fields that were set, unknown ones too."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- notification channels (/notification-channel/v1) ----------------------------------


class Webhook(GoToModel):
    url: str = Field(repr=False)


class WebhookChannelData(GoToModel):
    webhook: Webhook
    channel_type: str | None = None
    unreachable_timestamp: datetime | None = None


class CreateWebhookChannelRequest(GoToModel):
    """Body of ``POST /channels/{nickname}`` for a webhook channel."""

    channel_type: str
    webhook_channel_data: WebhookChannelData
    channel_lifetime: int | None = Field(default=None, ge=1)


class Channel(GoToModel):
    """A notification channel as GoTo returns it."""

    channel_id: str = Field(min_length=1)
    channel_nickname: str = ""
    webhook_channel_data: WebhookChannelData | None = None
    channel_lifetime: int | None = None
    resource_url: str | None = Field(
        default=None, repr=False, validation_alias="resourceURL", serialization_alias="resourceURL"
    )
    do_not_disturb_aware: bool | None = None
    channel_url: str | None = Field(
        default=None, repr=False, validation_alias="channelURL", serialization_alias="channelURL"
    )

    @property
    def webhook_url(self) -> str | None:
        data = self.webhook_channel_data
        return data.webhook.url if data is not None else None


class ChannelPage(GoToModel):
    """One page of ``GET /channels``; ``next_page_marker`` is absent on the last page."""

    items: tuple[Channel, ...] = ()
    page_size: int | None = None
    next_page_marker: str | None = None


class ChannelLifetime(GoToModel):
    channel_lifetime: int


# --- devices and extensions (/web-calls/v1/devices) -------------------------------------


class ClientInformation(GoToModel):
    device_id: str = Field(min_length=1)
    app_id: str | None = None
    app_version: str | None = None
    platform: str | None = None


class CallbackReference(GoToModel):
    incoming_call_channel_id: str
    session_management_channel_id: str


class Device(GoToModel):
    """A WebRTC device: the body of ``POST /devices`` and what GoTo returns for it."""

    client_information: ClientInformation
    callback_reference: CallbackReference | None = None

    @property
    def device_id(self) -> str:
        return self.client_information.device_id


class ExtensionRequest(GoToModel):
    number: str = Field(min_length=1)
    impersonatee_user_key: str | None = None


class CreateExtensionsRequest(GoToModel):
    organization_id: str = Field(min_length=1)
    extensions: tuple[ExtensionRequest, ...] = Field(min_length=1)


class Extension(GoToModel):
    """An extension on a device; ``result_code`` is per-extension (201 when created)."""

    number: str
    session_id: str | None = Field(default=None, repr=False)
    result_code: int | None = None
    organization_id: str | None = None


class ExtensionResult(GoToModel):
    """Reply of ``POST /devices/{deviceId}/extensions``."""

    organization_id: str = ""
    extensions: tuple[Extension, ...] = ()

    def failed(self) -> tuple[Extension, ...]:
        """Extensions whose per-item ``resultCode`` is not a 2xx."""
        return tuple(
            e
            for e in self.extensions
            if e.result_code is not None and not 200 <= e.result_code < 300
        )


class ExtensionPage(GoToModel):
    """One page of ``GET /devices/{deviceId}/extensions``.

    The list's key is not documented: ``items`` and ``extensions`` are both read.
    """

    items: tuple[Extension, ...] = ()
    extensions: tuple[Extension, ...] = ()
    organization_id: str | None = None
    page_size: int | None = None
    next_page_marker: str | None = None

    @property
    def all(self) -> tuple[Extension, ...]:
        return self.items + self.extensions


# --- calls (/web-calls/v1/calls) --------------------------------------------------------


class MakeCallRequest(GoToModel):
    device_id: str = Field(min_length=1)
    organization_id: str = Field(min_length=1)
    extension_number: str = Field(min_length=1)
    dial_string: str = Field(min_length=1)
    in_call_channel_id: str = Field(min_length=1)
    sdp: str = Field(min_length=1, repr=False)


class AnswerRequest(GoToModel):
    sdp: str = Field(min_length=1, repr=False)
    in_call_channel_id: str = Field(min_length=1)
    dial_string: str | None = None


class RejectRequest(GoToModel):
    action: str | None = None
    destination: str | None = None


class RingingRequest(GoToModel):
    in_call_channel_id: str | None = None
    incoming_notification_timestamp: str | None = None


class DtmfRequest(GoToModel):
    tone: str = Field(pattern=r"^[0-9*#A-Da-d]+$")


class BlindTransferRequest(GoToModel):
    dial_string: str = Field(min_length=1)


class CallInfo(GoToModel):
    """A call as returned by make-call and answer: ``sdp`` is the far end's SDP answer."""

    id: str = Field(min_length=1)
    leg_id: str | None = None
    sdp: str | None = Field(default=None, repr=False)
    status: str | None = None
    number: str | None = None
    name: str | None = None
    is_muted: bool | None = None
    is_on_hold: bool | None = None
    has_media: bool | None = None
    ringing_in_media: bool | None = None
    timestamp: datetime | None = None
    sip_call_id: str | None = None


__all__ = [
    "AnswerRequest",
    "BlindTransferRequest",
    "CallInfo",
    "CallbackReference",
    "Channel",
    "ChannelLifetime",
    "ChannelPage",
    "ClientInformation",
    "CreateExtensionsRequest",
    "CreateWebhookChannelRequest",
    "Device",
    "DtmfRequest",
    "Extension",
    "ExtensionPage",
    "ExtensionRequest",
    "ExtensionResult",
    "GoToModel",
    "MakeCallRequest",
    "RejectRequest",
    "RingingRequest",
    "Webhook",
    "WebhookChannelData",
]
