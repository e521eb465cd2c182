"""Provisioning: the seed's flow (channel, then device, then extensions), idempotently.

:func:`provision` makes or reuses a Webhook notification channel, a WebRTC
device whose callbacks point at it, and the configured extensions on that
device, then confirms that GoTo's ``greetings`` notification reached the
webhook for each new extension. What it made is kept in
``{data_dir}/provision.json`` (mode 0600, written atomically after every
step), so a second run checks each piece with a GET and reuses it,
re-creating only what is gone; a run that failed half way resumes.

Confirming ``greetings``:

* the webhook URL is on a loopback address and nothing listens on its port:
  provisioning serves a temporary receiver there (:class:`GreetingsReceiver`)
  and waits for the notifications itself;
* otherwise the ingress is expected to receive them; it records each one in
  Redis under :func:`greetings_key`, which is polled when
  ``CALLWORKER_REDIS_URL`` is set;
* otherwise it cannot confirm, and the report says what to check.

:func:`deprovision` deletes the extensions, the device and the channel
(tolerating 404) and the state file. :func:`sandbox_settings` reads the
credentials a running gotosim hands out at ``GET /_sim/credentials``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.config import ConfigError, Secret, Settings
from worker.goto.auth import transport_error, write_private_json
from worker.goto.client import GoToClient
from worker.goto.errors import AmbiguousResultError, NotFoundError, ProtocolError
from worker.goto.events import GreetingsNotification, NotificationError, parse_notification_json
from worker.goto.models import Device

logger = logging.getLogger(__name__)

STATE_FILE = "provision.json"
WEBHOOK_PATH = "/webhooks/goto/"
DEFAULT_GREETINGS_WAIT = 15.0


class ProvisionError(Exception):
    """Provisioning cannot go on; the message says why and what to do."""


def greetings_key(organization_id: str, extension: str) -> str:
    """The Redis key where the ingress records an extension's last ``greetings`` timestamp."""
    return f"callworker:greetings:{organization_id}:{extension}"


# --- state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionState:
    """What provisioning made, as kept in ``provision.json``.

    ``extensions`` maps each registered number to the timestamp of its
    confirmed ``greetings`` (``""`` while unconfirmed).
    """

    api_url: str = ""
    organization_id: str = ""
    nickname: str = ""
    device_id: str = ""
    webhook_secret: str = field(default="", repr=False)
    webhook_url: str = field(default="", repr=False)
    channel_id: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> ProvisionState:
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key, value in values.items():
            if key == "extensions":
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise ValueError("extensions: expected an object of strings")
            elif not isinstance(value, str):
                raise ValueError(f"{key}: expected a string")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["extensions"] = dict(self.extensions)
        data["version"] = 1
        return data


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def load_state(path: Path) -> ProvisionState | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return ProvisionState.from_json(json.loads(text))
    except ValueError as exc:
        raise ProvisionError(
            f"{path} is not a provisioning state file ({exc}); move it away and run again"
        ) from None


def save_state(path: Path, state: ProvisionState) -> None:
    write_private_json(path, state.to_json())


# --- pure helpers -----------------------------------------------------------------------


def webhook_url(settings: Settings, secret: str) -> str:
    """``CALLWORKER_WEBHOOK_URL``, or the local ingress URL carrying ``secret``."""
    if settings.webhook_url:
        return settings.webhook_url
    return f"http://127.0.0.1:{settings.ingress_port}{WEBHOOK_PATH}{secret}"


def mask_url(url: str) -> str:
    """``url`` with the secret path segment hidden, for printing."""
    parts = urlsplit(url)
    path = parts.path
    if WEBHOOK_PATH in path:
        path = path[: path.index(WEBHOOK_PATH) + len(WEBHOOK_PATH)] + "********"
    elif path.strip("/"):
        path = "/********"
    return f"{parts.scheme}://{parts.netloc}{path}"


def new_device_id() -> str:
    """A 19-digit device id, the shape of the seed's example."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


def device_matches(device: Device, channel_id: str) -> bool:
    """Whether both of the device's callbacks point at ``channel_id``."""
    ref = device.callback_reference
    return ref is not None and (
        ref.incoming_call_channel_id == ref.session_management_channel_id == channel_id
    )


# --- the temporary greetings receiver -------------------------------------------------


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(url: str) -> socket.socket | None:
    """A listening socket on the URL's loopback address and port, or None if it is taken."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not is_loopback(url):
        return None
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, parts.port or 80))
        sock.listen(64)
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


class GreetingsReceiver:
    """A webhook receiver on the channel URL while provisioning runs; it records ``greetings``.

    OPTIONS on the exact path answers 200 with ``Allow: POST, OPTIONS`` (GoTo's
    check at channel creation); POST answers 204 and records the notification;
    any other path is 404. Bodies over 1 MiB are refused.
    """

    MAX_BODY = 1 << 20

    def __init__(self, path: str) -> None:
        self.path = path
        self.greetings: list[GreetingsNotification] = []
        self.other = 0
        self._arrived = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        route = Route("/{rest:path}", self._handle, methods=["GET", "POST", "PUT", "OPTIONS"])
        self.app = Starlette(routes=[route])

    def __repr__(self) -> str:
        return f"GreetingsReceiver(greetings={len(self.greetings)})"

    async def _handle(self, request: Request) -> Response:
        if not hmac.compare_digest(request.url.path.encode(), self.path.encode()):
            return Response(status_code=404)
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"Allow": "POST, OPTIONS"})
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST, OPTIONS"})
        body = await request.body()
        if len(body) > self.MAX_BODY:
            return Response(status_code=413)
        try:
            notification = parse_notification_json(body)
        except NotificationError as exc:
            logger.warning("provision receiver: refused a bad notification: %s", exc)
            return Response(status_code=400)
        if isinstance(notification, GreetingsNotification):
            logger.info(
                "greetings notification for extension %s arrived",
                notification.content.extension_number,
            )
            self.greetings.append(notification)
            self._arrived.set()
        else:
            self.other += 1
        return Response(status_code=204)

    @classmethod
    async def serve(cls, url: str) -> GreetingsReceiver | None:
        """Serve on ``url``'s loopback port; None when something else already listens there."""
        sock = _bind(url)
        if sock is None:
            return None
        receiver = cls(urlsplit(url).path or "/")
        config = uvicorn.Config(receiver.app, log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        receiver._server = server
        receiver._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if receiver._task.done():
                sock.close()
                await receiver._task
                raise ProvisionError(f"could not serve the webhook receiver on {mask_url(url)}")
            await asyncio.sleep(0.01)
        logger.info("serving a temporary webhook receiver on %s", mask_url(url))
        return receiver

    def found(self, organization_id: str, numbers: Iterable[str]) -> dict[str, str]:
        wanted = set(numbers)
        return {
            g.content.extension_number: g.timestamp.isoformat()
            for g in self.greetings
            if g.content.organization_id == organization_id and g.content.extension_number in wanted
        }

    async def wait_for(
        self, organization_id: str, numbers: list[str], seconds: float
    ) -> dict[str, str]:
        """The greetings timestamps that arrived for ``numbers`` within ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            self._arrived.clear()
            found = self.found(organization_id, numbers)
            remaining = deadline - loop.time()
            stopped = self._task is None or self._task.done()
            if len(found) == len(set(numbers)) or remaining <= 0 or stopped:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtensionReport:
    number: str
    status: str
    greetings_at: str = ""
    confirmed_now: bool = False

    def line(self) -> str:
        if self.greetings_at and self.confirmed_now:
            greeting = f"greetings notification arrived ({self.greetings_at})"
        elif self.greetings_at:
            greeting = f"greetings notification confirmed earlier ({self.greetings_at})"
        else:
            greeting = "greetings notification NOT confirmed"
        return f"extension  {self.number}  ({self.status}); {greeting}"


@dataclass(frozen=True)
class ProvisionReport:
    channel_id: str
    channel_status: str
    device_id: str
    device_status: str
    webhook_url: str
    extensions: tuple[ExtensionReport, ...]
    confirmed_by: str
    problem: str = ""
    note: str = ""

    @property
    def confirmed(self) -> bool:
        return all(e.greetings_at for e in self.extensions)

    def lines(self) -> list[str]:
        out = [
            f"channel    {self.channel_id}  ({self.channel_status}) -> {self.webhook_url}",
            f"device     {self.device_id}  ({self.device_status})",
        ]
        out.extend(e.line() for e in self.extensions)
        if self.note:
            out.append(self.note)
        return out


# --- provisioning -----------------------------------------------------------------------


def _require(settings: Settings) -> None:
    if not settings.organization_id:
        raise ConfigError("CALLWORKER_ORGANIZATION_ID", "is required to provision")
    if not settings.extensions:
        raise ConfigError(
            "CALLWORKER_EXTENSIONS", "is required to provision (comma-separated numbers)"
        )


class _Run:
    """One provisioning run: the client, the state so far, and how greetings are confirmed."""

    def __init__(self, settings: Settings, client: GoToClient, greetings_wait: float) -> None:
        self.settings = settings
        self.client = client
        self.greetings_wait = greetings_wait
        self.path = state_path(settings)
        self.state = ProvisionState()

    def save(self, **changes: Any) -> None:
        self.state = dataclasses.replace(self.state, **changes)
        save_state(self.path, self.state)

    def start_state(self) -> None:
        old = load_state(self.path) or ProvisionState()
        same_place = (old.api_url, old.organization_id) == (
            self.settings.goto_api_url,
            self.settings.organization_id,
        )
        if not same_place and old.channel_id:
            logger.info("the API URL or organization changed since the last run: starting over")
        configured = self.settings.webhook_secret.reveal()
        generated = ""
        if not self.settings.webhook_url and not configured:
            generated = old.webhook_secret or secrets.token_urlsafe(32)
        self.state = ProvisionState(
            api_url=self.settings.goto_api_url,
            organization_id=self.settings.organization_id,
            nickname=old.nickname or f"callworker-{secrets.token_hex(4)}",
            device_id=self.settings.device_id or old.device_id or new_device_id(),
            webhook_secret=generated,
            webhook_url=webhook_url(self.settings, configured or generated),
            channel_id=old.channel_id if same_place else "",
            extensions=old.extensions if same_place else {},
        )
        self.save()

    async def channel(self) -> tuple[str, str]:
        state, client = self.state, self.client
        status = "created"
        if state.channel_id:
            try:
                found = await client.get_channel(state.nickname, state.channel_id)
            except NotFoundError:
                status = "re-created: the old one is gone"
            else:
                if found.webhook_url == state.webhook_url:
                    return found.channel_id, "reused"
                status = "re-created: the webhook URL changed"
                await _delete_quietly(client.delete_channel(state.nickname, state.channel_id))
        made = await client.create_webhook_channel(state.nickname, state.webhook_url)
        self.save(channel_id=made.channel_id, extensions={})
        return made.channel_id, status

    async def device(self, channel_id: str) -> tuple[str, str]:
        client, device_id = self.client, self.state.device_id
        status = "created"
        try:
            found = await client.get_device(device_id)
        except NotFoundError:
            if self.state.extensions:
                status = "re-created: the old one is gone"
        else:
            if device_matches(found, channel_id):
                return device_id, "reused"
            status = "re-created: it pointed at another channel"
            await _delete_quietly(client.delete_device(device_id))
        self.save(extensions={})
        try:
            await client.create_device(device_id, channel_id)
        except AmbiguousResultError:
            found = await client.get_device(device_id)  # did it work after all?
            if not device_matches(found, channel_id):
                raise
        return device_id, status

    async def extensions(self, device_id: str, waiter: _Waiter) -> list[ExtensionReport]:
        client, org = self.client, self.settings.organization_id
        wanted = list(dict.fromkeys(self.settings.extensions))
        listed = {e.number for e in await client.list_extensions(device_id, organization_id=org)}
        known = dict(self.state.extensions)
        reports: dict[str, ExtensionReport] = {}
        to_create: list[str] = []
        for number in wanted:
            if number in listed and known.get(number):
                reports[number] = ExtensionReport(number, "reused", known[number])
                continue
            if number in listed:  # registered but never confirmed: register again
                await client.delete_extensions(
                    device_id, organization_id=org, extension_number=number
                )
            to_create.append(number)
        for number in sorted(listed - set(wanted)):
            logger.info("removing extension %s: it is no longer configured", number)
            await client.delete_extensions(device_id, organization_id=org, extension_number=number)
            known.pop(number, None)
        if to_create:
            await waiter.prepare(to_create)
            result = await client.create_extensions(device_id, org, to_create)
            failed = result.failed()
            if failed:
                listed_codes = ", ".join(f"{e.number}: resultCode {e.result_code}" for e in failed)
                raise ProvisionError(
                    f"GoTo did not register every extension ({listed_codes}); check that "
                    f"CALLWORKER_EXTENSIONS lists extensions of organization {org}"
                )
            for number in to_create:
                known[number] = ""
            self.save(extensions=known)
            arrived = await waiter.wait(to_create, self.greetings_wait)
            for number in to_create:
                status = "re-registered" if number in listed else "created"
                stamp = arrived.get(number, "")
                reports[number] = ExtensionReport(number, status, stamp, confirmed_now=bool(stamp))
                known[number] = stamp
        self.save(extensions={n: known.get(n, "") for n in wanted})
        return [reports[n] for n in wanted]


class _Waiter:
    """Waits for ``greetings`` through the temporary receiver, Redis, or not at all."""

    def __init__(
        self, organization_id: str, receiver: GreetingsReceiver | None, redis_url: str
    ) -> None:
        self.organization_id = organization_id
        self.receiver = receiver
        self.redis_url = redis_url
        self._before: dict[str, str | None] = {}
        self.how = "receiver" if receiver else "redis" if redis_url else "none"

    async def prepare(self, numbers: Iterable[str]) -> None:
        if self.how == "redis":
            self._before = await self._read(numbers)

    async def wait(self, numbers: list[str], seconds: float) -> dict[str, str]:
        if self.receiver is not None:
            return await self.receiver.wait_for(self.organization_id, numbers, seconds)
        if self.how == "none":
            return {}
        deadline = time.monotonic() + seconds
        while True:
            values = await self._read(numbers)
            done = {n: v for n, v in values.items() if v is not None and v != self._before.get(n)}
            if len(done) == len(numbers) or time.monotonic() >= deadline:
                return done
            await asyncio.sleep(0.1)

    async def _read(self, numbers: Iterable[str]) -> dict[str, str | None]:
        import redis.asyncio as redis_async
        from redis.exceptions import RedisError

        numbers = list(numbers)
        client = redis_async.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            values = await client.mget([greetings_key(self.organization_id, n) for n in numbers])
        except RedisError as exc:
            raise ProvisionError(
                f"cannot read the greetings from Redis at CALLWORKER_REDIS_URL ({exc}); "
                "check that redis-server is running"
            ) from None
        finally:
            await client.aclose()
        return {n: None if v is None else str(v) for n, v in zip(numbers, values, strict=True)}


async def _delete_quietly(deletion: Any) -> None:
    with contextlib.suppress(NotFoundError):
        await deletion


def _problem(extensions: list[ExtensionReport], waiter: _Waiter, url: str, timeout: float) -> str:
    missing = [e.number for e in extensions if not e.greetings_at]
    if not missing:
        return ""
    which = ", ".join(missing)
    shown = mask_url(url)
    if waiter.how == "receiver":
        return (
            f"no greetings notification for extension {which} arrived at {shown} within "
            f"{timeout:g} s; check that GoTo can reach that URL (GoTo delivers to public HTTPS "
            "on port 443 only) and its delivery log, then run provision again"
        )
    if waiter.how == "redis":
        return (
            f"the ingress did not record a greetings notification for extension {which} in "
            f"Redis within {timeout:g} s; check that `callworker ingress` serves {shown} with "
            "the same CALLWORKER_REDIS_URL and that GoTo can reach it, then run provision again"
        )
    port = urlsplit(url).port
    where = f"something already listens on port {port}" if is_loopback(url) else "it is not local"
    return (
        f"cannot confirm the greetings notification for extension {which}: {shown} is not served "
        f"by provision ({where}) and CALLWORKER_REDIS_URL is not set; run `callworker ingress` "
        "with CALLWORKER_REDIS_URL set (or free that port), then run provision again"
    )


async def provision(
    settings: Settings,
    *,
    client: GoToClient | None = None,
    greetings_wait: float = DEFAULT_GREETINGS_WAIT,
) -> ProvisionReport:
    """Run the flow; the report's ``problem`` is set when greetings could not be confirmed."""
    _require(settings)
    own = client is None
    goto = client or GoToClient.from_settings(settings)
    run = _Run(settings, goto, greetings_wait)
    receiver: GreetingsReceiver | None = None
    try:
        run.start_state()
        url = run.state.webhook_url
        receiver = await GreetingsReceiver.serve(url)
        waiter = _Waiter(settings.organization_id, receiver, settings.redis_url)
        channel_id, channel_status = await run.channel()
        device_id, device_status = await run.device(channel_id)
        extensions = await run.extensions(device_id, waiter)
    finally:
        if receiver is not None:
            await receiver.stop()
        if own:
            await goto.aclose()
    return ProvisionReport(
        channel_id=channel_id,
        channel_status=channel_status,
        device_id=device_id,
        device_status=device_status,
        webhook_url=mask_url(url),
        extensions=tuple(extensions),
        confirmed_by=waiter.how,
        problem=_problem(extensions, waiter, url, greetings_wait),
        note=(
            f"the webhook secret was generated and is kept in {run.path}; "
            "`callworker ingress` reads it from there (or set CALLWORKER_WEBHOOK_SECRET)"
            if run.state.webhook_secret
            else ""
        ),
    )


async def deprovision(settings: Settings, *, client: GoToClient | None = None) -> list[str]:
    """Delete what :func:`provision` made; one line per piece, for printing."""
    path = state_path(settings)
    state = load_state(path)
    if state is None:
        return [f"nothing to deprovision: no state file at {path}"]
    own = client is None
    goto = client or GoToClient.from_settings(settings)
    lines: list[str] = []
    try:
        if state.device_id and state.extensions:
            for number in state.extensions:
                gone = await _gone(
                    goto.delete_extensions(
                        state.device_id,
                        organization_id=state.organization_id,
                        extension_number=number,
                    )
                )
                lines.append(f"extension  {number}  {gone}")
        if state.device_id:
            lines.append(
                f"device     {state.device_id}  {await _gone(goto.delete_device(state.device_id))}"
            )
        if state.channel_id:
            gone = await _gone(goto.delete_channel(state.nickname, state.channel_id))
            lines.append(f"channel    {state.channel_id}  {gone}")
    finally:
        if own:
            await goto.aclose()
    path.unlink(missing_ok=True)
    lines.append(f"removed {path}")
    return lines


async def _gone(deletion: Any) -> str:
    try:
        await deletion
    except NotFoundError:
        return "already gone"
    return "deleted"


async def sandbox_settings(
    settings: Settings, sandbox_url: str, http_timeout: float = 10.0
) -> Settings:
    """``settings`` with the API, auth URL and credentials of the gotosim at ``sandbox_url``."""
    base = sandbox_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProvisionError(f"--sandbox: expected an http(s) URL, got {sandbox_url!r}")
    path = "/_sim/credentials"
    try:
        async with httpx.AsyncClient(timeout=http_timeout) as http:
            response = await http.get(base + path)
    except httpx.HTTPError as exc:
        error = transport_error(exc, method="GET", path=path, host=parts.netloc)
        raise ProvisionError(
            f"cannot reach the sandbox at {base}: {error}; start it with "
            f"`callworker sandbox --port {parts.port or 80}`"
        ) from None
    try:
        data = response.json()
        creds = {
            key: data[key]
            for key in ("clientId", "clientSecret", "refreshToken", "organizationId", "apiUrl")
        }
        numbers = tuple(str(n) for n in data["extensions"])
        if not all(isinstance(v, str) and v for v in creds.values()) or not numbers:
            raise ValueError("empty credential")
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(
            f"GET {path} on {base} (HTTP {response.status_code}) did not return sandbox "
            f"credentials ({type(exc).__name__}: {exc}); is {base} a gotosim?",
            status=response.status_code,
            method="GET",
            path=path,
        ) from None
    return dataclasses.replace(
        settings,
        goto_api_url=creds["apiUrl"].rstrip("/"),
        goto_auth_url=str(data.get("authUrl") or creds["apiUrl"]).rstrip("/"),
        client_id=creds["clientId"],
        client_secret=Secret(creds["clientSecret"]),
        refresh_token=Secret(creds["refreshToken"]),
        organization_id=creds["organizationId"],
        extensions=numbers,
    )
