"""The Simulator: the whole simulated GoTo cloud as one object, usable without HTTP.

It owns the clock, the OAuth token store, the resource directory (channels,
devices, registrations), the calls, the webhook deliverer, the injected
faults, the request log and the far end. Everything runs on one asyncio event
loop: :meth:`Simulator.start` binds it (the ASGI lifespan calls it) and
:meth:`Simulator.close` stops timers, deliveries and the far end.

The HTTP layers (:mod:`gotosim.api_oauth`, :mod:`gotosim.api_channels`,
:mod:`gotosim.api_webcalls`, :mod:`gotosim.api_control`) validate requests and
call in here; the behaviour lives here and in :mod:`gotosim.calls`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from gotosim.calls import Calls, NumberBehaviour
from gotosim.clock import Clock, SystemClock, iso_offset
from gotosim.directory import Directory
from gotosim.errors import BAD_REQUEST, INVALID, ApiError, Violation
from gotosim.faults import Faults
from gotosim.media import FarEnd, FarEndFactory, static_far_end
from gotosim.model import Channel, Device, Registration, SimCall, SimConfig, WebhookCheckResult
from gotosim.oauth import TokenStore
from gotosim.requestlog import RequestLog
from gotosim.webhooks import Deliverer, NotificationRecord, redact_url

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Simulator:
    """State and behaviour of the sandbox; see the module docstring."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Clock | None = None,
        far_end_factory: FarEndFactory | None = None,
    ) -> None:
        self.config = (config or SimConfig()).with_generated_credentials()
        self.clock: Clock = clock or SystemClock()
        self.faults = Faults()
        self.tokens = TokenStore(
            self.clock,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            principal=self.config.principal,
            access_lifetime=self.config.access_token_lifetime,
            refresh_lifetime=self.config.refresh_token_lifetime,
            rotation=self.config.refresh_rotation,
        )
        self.tokens.seed_refresh_token(self.config.refresh_token)
        self.directory = Directory(
            self.clock, self.config.organization_id, tuple(self.config.extensions)
        )
        self.deliveries = Deliverer(
            clock=self.clock,
            faults=self.faults,
            lookup_channel=self.directory.channel,
            on_change=self.changed,
            timeout=self.config.webhook_timeout,
            retry_delay=self.config.webhook_retry_delay,
        )
        self.calls = Calls(self)
        self.requests = RequestLog()
        self.numbers: dict[str, NumberBehaviour] = {}
        self._far_end_factory = far_end_factory or static_far_end
        self._far_end: FarEnd | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self.check_failures: list[WebhookCheckResult] = []

    def __repr__(self) -> str:
        return (
            f"Simulator(organization={self.config.organization_id!r}, "
            f"calls={len(self.calls.calls)}, channels={len(self.directory.channels)})"
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running event loop: open the webhook client, build the far end."""
        await self.deliveries.start()
        if self._far_end is None:
            self._far_end = self._far_end_factory(self)

    async def close(self) -> None:
        """Stop everything this simulator started (timers, deliveries, the far end)."""
        await self._stop_tasks()
        await self.deliveries.close()
        if self._far_end is not None:
            far_end, self._far_end = self._far_end, None
            try:
                await far_end.close()
            except Exception:
                logger.exception("gotosim: closing the far end failed")

    async def reset(self) -> None:
        """Forget every channel, device, call, request, notification, fault and number."""
        for call in self.calls.active():
            await self.far_end_hung_up(call)
        self.calls.clear()
        await self._stop_tasks()
        await self.deliveries.stop_workers()
        self.deliveries.records.clear()
        self.directory.clear()
        self.requests.clear()
        self.faults.clear()
        self.numbers.clear()
        self.check_failures.clear()
        self.changed()

    async def _stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                continue
            except Exception:
                logger.exception("gotosim: a background task failed while stopping")
        self._tasks.clear()

    @property
    def far_end(self) -> FarEnd:
        if self._far_end is None:
            raise RuntimeError("the simulator is not started; call Simulator.start() first")
        return self._far_end

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run a background coroutine owned by the simulator (cancelled on close/reset)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "gotosim: background task %s failed", task.get_name(), exc_info=task.exception()
            )

    # -- change notification and waiting --------------------------------------------

    def changed(self) -> None:
        """Wake everything waiting in :meth:`wait_for`."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, probe: Callable[[], T | None], within: float) -> T | None:
        """Wait until ``probe()`` returns something (it is re-run after every change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = probe()
            if found:
                return found
            left = deadline - loop.time()
            if left <= 0:
                return None
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return probe() or None

    # -- notifications --------------------------------------------------------------

    def notify(
        self,
        channel_id: str,
        kind: str,
        usage: str,
        ttl: str,
        content: dict[str, Any],
        call_id: str | None = None,
    ) -> NotificationRecord:
        """Queue a WebRTC notification in the seed's envelope on a channel."""
        body = {
            "source": "WebRTC",
            "type": kind,
            "timestamp": iso_offset(self.clock.time()),
            "usage": usage,
            "ttl": ttl,
            "content": content,
        }
        record = self.deliveries.send(channel_id, body, call_id)
        if call_id is not None and call_id in self.calls.calls:
            self.calls.event(
                self.calls.calls[call_id], "notification", type=kind, channelId=channel_id
            )
        self.changed()
        return record

    # -- settings and credentials ---------------------------------------------------

    def update_config(self, **changes: Any) -> SimConfig:
        """Change settings at run time (``PUT /_sim/settings``)."""
        self.config = replace(self.config, **changes)
        self.tokens.access_lifetime = self.config.access_token_lifetime
        self.tokens.refresh_lifetime = self.config.refresh_token_lifetime
        self.tokens.rotation = self.config.refresh_rotation
        self.directory.extensions = tuple(self.config.extensions)
        return self.config

    def credentials(self, base_url: str) -> dict[str, Any]:
        """What a client needs to talk to this sandbox (secrets included)."""
        base = base_url.rstrip("/")
        return {
            "clientId": self.config.client_id,
            "clientSecret": self.config.client_secret,
            "refreshToken": self.tokens.current_refresh_token(),
            "organizationId": self.config.organization_id,
            "extensions": list(self.config.extensions),
            "apiUrl": base,
            "authUrl": base,
            "principal": self.config.principal,
        }

    # -- channels -------------------------------------------------------------------

    async def create_channel(
        self,
        nickname: str,
        url: str,
        lifetime: int | None,
        do_not_disturb_aware: bool,
        has_shared_secret: bool,
    ) -> Channel:
        check = await self.deliveries.check(url)
        if not check.ok and self.config.webhook_check == "enforce":
            self.check_failures.append(check)
            raise ApiError(
                400,
                BAD_REQUEST,
                f"webhook URL {redact_url(url)} failed the OPTIONS check: {check.describe()}; "
                "it must accept POST",
                [Violation("webhookChannelData.webhook.url", INVALID)],
            )
        channel = self.directory.add_channel(
            nickname, url, lifetime, do_not_disturb_aware, has_shared_secret, check
        )
        logger.info(
            "gotosim: channel %s created for %s (OPTIONS check %s)",
            channel.channel_id,
            redact_url(url),
            "passed" if check.ok else "failed, recorded",
        )
        self.changed()
        return channel

    # -- devices and extensions -----------------------------------------------------

    def delete_device(self, device_id: str) -> Device:
        device = self.directory.device(device_id)
        removed = self.directory.remove_device(device_id)
        self.calls.unregistered(removed)
        self.changed()
        return device

    def add_extensions(
        self, device_id: str, organization_id: str, numbers: list[tuple[str, str | None]]
    ) -> list[tuple[str, int, Registration | None]]:
        """Register extensions on a device; each success is greeted on the session channel."""
        device = self.directory.device(device_id)
        self.directory.check_organization(organization_id)
        results: list[tuple[str, int, Registration | None]] = []
        for number, impersonatee in numbers:
            code, registration = self.directory.register(device_id, number, impersonatee)
            results.append((number, code, registration))
        for _, _, registration in results:
            if registration is not None:
                self.notify(
                    device.session_channel_id,
                    "greetings",
                    "BACKGROUND",
                    "120",
                    {
                        "sessionId": registration.session_id,
                        "organizationId": registration.organization_id,
                        "extensionNumber": registration.number,
                    },
                )
        self.changed()
        return results

    def delete_extensions(
        self, device_id: str, organization_id: str | None, number: str | None
    ) -> list[Registration]:
        self.directory.device(device_id)
        if organization_id is not None:
            self.directory.check_organization(organization_id)
        removed = self.directory.unregister(device_id, number)
        self.calls.unregistered(removed)
        self.changed()
        return removed

    # -- calls: the far end's side ---------------------------------------------------

    def place_call(
        self,
        extension: str,
        number: str,
        name: str,
        script: Any = None,
        ring_timeout: float | None = None,
    ) -> SimCall:
        """An inbound call from ``number`` to ``extension`` (``incoming`` is sent)."""
        call = self.calls.place_inbound(extension, number, name, script, ring_timeout)
        self.changed()
        return call

    def far_end_hangup(self, call_id: str, reason: str | None = None) -> bool:
        """The far end ends a call; ``False`` if the call is unknown or already ended."""
        try:
            self.calls.far_end_hangup(call_id, reason)
        except ApiError:
            return False
        return True

    def log_call_event(self, call_id: str, event: str, **detail: Any) -> None:
        """Add a line to a call's event log (for far ends); unknown calls are ignored."""
        call = self.calls.calls.get(call_id)
        if call is not None:
            self.calls.event(call, event, **detail)

    async def far_end_hung_up(self, call: SimCall) -> None:
        """Tell the far end a call ended (exactly once per call)."""
        if call.far_end_released:
            return
        call.far_end_released = True
        if self._far_end is None:
            return
        try:
            await self._far_end.hangup(call)
        except Exception:
            logger.exception("gotosim: the far end failed to hang up call %s", call.id)
