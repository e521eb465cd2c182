"""Channels, devices and extension registrations: the sandbox's resource directory.

State transitions only, judged on the injected clock; no I/O and no
notifications (the :class:`~gotosim.simulator.Simulator` sends those). Lookups
of missing resources raise GoTo 404s; a duplicate device id raises a 409.
"""

from __future__ import annotations

import secrets
import uuid

from gotosim.clock import Clock
from gotosim.errors import ApiError, conflict, not_found
from gotosim.model import Channel, Device, Registration, WebhookCheckResult

MAX_LIFETIME = 2_147_483_647
DEFAULT_WEBHOOK_LIFETIME = MAX_LIFETIME


def new_session_id() -> str:
    """An opaque session id shaped like GoTo's (url-safe base64, ~86 characters)."""
    return secrets.token_urlsafe(64)


class Directory:
    def __init__(self, clock: Clock, organization_id: str, extensions: tuple[str, ...]) -> None:
        self.clock = clock
        self.organization_id = organization_id
        self.extensions = extensions
        self.channels: dict[str, Channel] = {}
        self.devices: dict[str, Device] = {}
        self.registrations: list[Registration] = []

    def clear(self) -> None:
        self.channels.clear()
        self.devices.clear()
        self.registrations.clear()

    # -- channels -------------------------------------------------------------------

    def add_channel(
        self,
        nickname: str,
        url: str,
        lifetime: int | None,
        do_not_disturb_aware: bool,
        has_shared_secret: bool,
        check: WebhookCheckResult | None,
    ) -> Channel:
        now = self.clock.time()
        life = DEFAULT_WEBHOOK_LIFETIME if lifetime is None else lifetime
        channel = Channel(
            channel_id=f"Webhook.{uuid.uuid4()}",
            nickname=nickname,
            url=url,
            lifetime=life,
            created_at=now,
            expires_at=now + life,
            do_not_disturb_aware=do_not_disturb_aware,
            has_shared_secret=has_shared_secret,
            check=check,
        )
        self.channels[channel.channel_id] = channel
        return channel

    def channel(self, channel_id: str) -> Channel | None:
        """The live channel with this id; an expired channel is removed and not returned."""
        channel = self.channels.get(channel_id)
        if channel is not None and channel.expires_at <= self.clock.time():
            del self.channels[channel_id]
            return None
        return channel

    def channel_at(self, nickname: str, channel_id: str) -> Channel:
        channel = self.channel(channel_id)
        if channel is None or channel.nickname != nickname:
            raise not_found("notification channel", f"{nickname}/{channel_id}")
        return channel

    def live_channels(self) -> list[Channel]:
        return [c for c in list(self.channels.values()) if self.channel(c.channel_id) is not None]

    def delete_channel(self, nickname: str, channel_id: str) -> Channel:
        channel = self.channel_at(nickname, channel_id)
        del self.channels[channel_id]
        return channel

    def remaining_lifetime(self, channel: Channel) -> int:
        return max(0, int(channel.expires_at - self.clock.time()))

    def refresh_lifetime(self, channel: Channel, lifetime: int | None) -> int:
        """Restart the channel's lifetime from now (with a new length if given)."""
        if lifetime is not None:
            channel.lifetime = lifetime
        channel.expires_at = self.clock.time() + channel.lifetime
        return channel.lifetime

    # -- devices --------------------------------------------------------------------

    def add_device(
        self,
        device_id: str,
        app_id: str | None,
        app_version: str | None,
        platform: str | None,
        incoming_channel_id: str,
        session_channel_id: str,
    ) -> Device:
        if device_id in self.devices:
            raise conflict(f"device {device_id!r} already exists; delete it first or reuse it")
        device = Device(
            device_id=device_id,
            app_id=app_id,
            app_version=app_version,
            platform=platform,
            incoming_channel_id=incoming_channel_id,
            session_channel_id=session_channel_id,
            created_at=self.clock.time(),
        )
        self.devices[device_id] = device
        return device

    def device(self, device_id: str) -> Device:
        device = self.devices.get(device_id)
        if device is None:
            raise not_found("device", device_id)
        return device

    def remove_device(self, device_id: str) -> list[Registration]:
        self.device(device_id)
        del self.devices[device_id]
        return self.unregister(device_id, None)

    # -- extensions -----------------------------------------------------------------

    def check_organization(self, organization_id: str) -> None:
        if organization_id != self.organization_id:
            raise ApiError(
                403,
                "UNAUTHORIZED",
                f"the principal is not allowed in organization {organization_id!r}; "
                "use the organizationId from GET /_sim/credentials",
            )

    def register(
        self, device_id: str, number: str, impersonatee_user_key: str | None
    ) -> tuple[int, Registration | None]:
        """Register one extension on a device: (resultCode, registration).

        201 new, 200 already registered on this device (same session), 404 the
        organization has no such extension.
        """
        self.device(device_id)
        if number not in self.extensions:
            return 404, None
        for existing in self.registrations:
            if existing.device_id == device_id and existing.number == number:
                return 200, existing
        registration = Registration(
            device_id=device_id,
            organization_id=self.organization_id,
            number=number,
            session_id=new_session_id(),
            created_at=self.clock.time(),
            impersonatee_user_key=impersonatee_user_key,
        )
        self.registrations.append(registration)
        return 201, registration

    def registrations_of(self, device_id: str, number: str | None = None) -> list[Registration]:
        return [
            r
            for r in self.registrations
            if r.device_id == device_id and (number is None or r.number == number)
        ]

    def registrations_for(self, number: str) -> list[Registration]:
        """Every device registration of an extension, oldest first."""
        return [r for r in self.registrations if r.number == number]

    def unregister(self, device_id: str, number: str | None) -> list[Registration]:
        removed = self.registrations_of(device_id, number)
        self.registrations = [r for r in self.registrations if r not in removed]
        return removed
