"""Async client for the GoTo Notification Channel and Devices and Calls (web-calls) APIs.

:class:`GoToClient` is an async context manager with one method per
operation: notification channels, devices, extensions and call control.
Paths follow the reference: web-calls under ``{api_url}/web-calls/v1``,
channels under ``{api_url}/notification-channel/v1``. Every request carries
a bearer token from :class:`~worker.goto.auth.TokenManager`; a 401
``AUTHN_EXPIRED_TOKEN`` makes it refresh once and retry once.

Retries (the decision is the pure :func:`retry_delay`)
------------------------------------------------------
A failed attempt is retried with exponential backoff and jitter, honouring
``Retry-After``, within :class:`RetryPolicy`'s bounds (attempts and total
time), when it is:

* a connection failure before the request was sent (connect error or
  connect timeout), or a 429: nothing happened, any request may be repeated;
* a 502, 503 or 504, a read timeout or a dropped connection, **only** for
  requests that are safe to repeat after they may have taken effect.

Safe to repeat: every GET; every DELETE (channel, device, extensions, hang
up; a 404 on a retry after an attempt that may have worked counts as done);
PUT channel-lifetime; and the state-setting call requests ringing, hold,
unhold, mute and unmute (asking twice asks for the same state).

Not safe to repeat: create channel, create device, create extensions,
make call, answer, reject, DTMF, blind transfer. When one of these was sent
and no definitive reply came back (timeout, dropped connection, 5xx) the
client raises :class:`~worker.goto.errors.AmbiguousResultError`, whose
message says what to check before trying again. A ``POST /calls`` never
dials twice.

The sleep, monotonic clock, wall clock and random source are injectable so
tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from worker.config import ConfigError, Settings
from worker.goto.auth import FileTokenStore, TokenManager, TokenStore, transport_error
from worker.goto.errors import (
    AmbiguousResultError,
    GoToError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    error_from_reply,
    parse_retry_after,
)
from worker.goto.models import (
    AnswerRequest,
    BlindTransferRequest,
    CallbackReference,
    CallInfo,
    Channel,
    ChannelLifetime,
    ChannelPage,
    ClientInformation,
    CreateExtensionsRequest,
    CreateWebhookChannelRequest,
    Device,
    DtmfRequest,
    Extension,
    ExtensionPage,
    ExtensionRequest,
    ExtensionResult,
    GoToModel,
    MakeCallRequest,
    RejectRequest,
    RingingRequest,
    Webhook,
    WebhookChannelData,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

WEB_CALLS = "/web-calls/v1"
CHANNELS = "/notification-channel/v1"
SEND_TO_VOICEMAIL = "SEND_TO_VOICEMAIL"
APP_ID = "callworker"
RETRY_STATUSES = frozenset({502, 503, 504})
EXPIRED = "AUTHN_EXPIRED_TOKEN"


# --- retry policy: pure ---------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop: attempts in all, total seconds, backoff shape."""

    max_attempts: int = 4
    max_elapsed: float = 30.0
    base_delay: float = 0.5
    max_delay: float = 8.0


@dataclass(frozen=True)
class Outcome:
    """One failed attempt: HTTP ``status`` (None: no reply), and whether it may have arrived."""

    status: int | None
    sent: bool
    retry_after: float | None = None

    @property
    def ambiguous(self) -> bool:
        """The request may have taken effect and we do not know whether it did."""
        return self.sent and (self.status is None or self.status >= 500)


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Exponential backoff with equal jitter for the wait after ``attempt`` (1-based)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    return ceiling / 2 + rand * ceiling / 2


def retry_delay(
    policy: RetryPolicy, outcome: Outcome, *, attempt: int, safe: bool, elapsed: float, rand: float
) -> float | None:
    """Seconds to wait before another attempt, or None to give up now."""
    if attempt >= policy.max_attempts:
        return None
    if outcome.status is None:
        retryable = safe or not outcome.sent
    elif outcome.status == 429:
        retryable = True
    else:
        retryable = safe and outcome.status in RETRY_STATUSES
    if not retryable:
        return None
    if outcome.retry_after is not None:
        delay = outcome.retry_after
    else:
        delay = backoff(policy, attempt, rand)
    if elapsed + delay > policy.max_elapsed:
        return None
    return delay


# --- the client -----------------------------------------------------------------------


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id in a request path must not be empty")
    return quote(value, safe="@")


@dataclass(frozen=True)
class _Op:
    """How one request may be retried; ``check`` says what to verify if it may have worked."""

    safe: bool
    check: str = ""
    missing_is_done: bool = False


@dataclass(frozen=True)
class _Failed:
    """An attempt that got no HTTP reply from the API."""

    error: GoToError
    outcome: Outcome


_GET = _Op(safe=True)
_DELETE = _Op(safe=True, missing_is_done=True)
_STATE = _Op(safe=True)


class GoToClient:
    """The GoTo REST APIs. Use ``async with``; see the module docstring for retries."""

    def __init__(
        self,
        *,
        api_url: str,
        tokens: TokenManager,
        http: httpx.AsyncClient | None = None,
        policy: RetryPolicy | None = None,
        timeout: httpx.Timeout | float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout or default_timeout())
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._rand = rand

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: TokenStore | None = None,
        timeout: httpx.Timeout | float | None = None,
        **kwargs: Any,
    ) -> GoToClient:
        """A client for ``settings``; rotated refresh tokens go to data_dir/oauth-tokens.json."""
        for name, value in (
            ("CALLWORKER_CLIENT_ID", settings.client_id),
            ("CALLWORKER_CLIENT_SECRET", settings.client_secret),
            ("CALLWORKER_REFRESH_TOKEN", settings.refresh_token),
        ):
            if not value:
                raise ConfigError(
                    name, "is required to call the GoTo API; see docs/configuration.md"
                )
        http = httpx.AsyncClient(timeout=timeout or default_timeout())
        if store is None:
            store = FileTokenStore(
                settings.data_dir / "oauth-tokens.json",
                key=f"{settings.goto_auth_url} {settings.client_id}",
            )
        tokens = TokenManager(
            auth_url=settings.goto_auth_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            store=store,
            http=http,
        )
        client = cls(api_url=settings.goto_api_url, tokens=tokens, http=http, **kwargs)
        client._own_http = True
        return client

    def __repr__(self) -> str:
        return f"GoToClient(api_url={self.api_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.tokens.aclose()
        if self._own_http:
            await self._http.aclose()

    # --- notification channels ---------------------------------------------------------

    async def create_webhook_channel(
        self, nickname: str, url: str, *, lifetime: int | None = None
    ) -> Channel:
        """``POST /channels/{nickname}``: a Webhook channel delivering to ``url``."""
        body = CreateWebhookChannelRequest(
            channel_type="Webhook",
            webhook_channel_data=WebhookChannelData(webhook=Webhook(url=url)),
            **({"channel_lifetime": lifetime} if lifetime is not None else {}),
        )
        check = (
            f"the channel may have been created: list the channels (nickname {nickname!r}) "
            "and delete or reuse it before creating another"
        )
        response = await self._request(
            "POST", f"{CHANNELS}/channels/{_segment(nickname)}", body=body, op=_Op(False, check)
        )
        return self._parse(Channel, response)

    async def get_channel(self, nickname: str, channel_id: str) -> Channel:
        response = await self._request("GET", self._channel_path(nickname, channel_id), op=_GET)
        return self._parse(Channel, response)

    async def list_channels_page(
        self, *, page_marker: str | None = None, page_size: int | None = None
    ) -> ChannelPage:
        params = _params(pageMarker=page_marker, pageSize=page_size)
        response = await self._request("GET", f"{CHANNELS}/channels", params=params, op=_GET)
        return self._parse(ChannelPage, response)

    async def list_channels(self, *, page_size: int | None = None) -> list[Channel]:
        """Every channel of this user, following ``nextPageMarker`` across pages."""
        channels: list[Channel] = []
        marker: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_channels_page(page_marker=marker, page_size=page_size)
            channels.extend(page.items)
            marker = page.next_page_marker
            if not marker:
                return channels
            _check_marker(marker, seen, f"{CHANNELS}/channels")

    async def delete_channel(self, nickname: str, channel_id: str) -> None:
        await self._request("DELETE", self._channel_path(nickname, channel_id), op=_DELETE)

    async def refresh_channel_lifetime(
        self, nickname: str, channel_id: str, lifetime: int | None = None
    ) -> int:
        """``PUT .../channel-lifetime``: extend the channel; returns the lifetime in seconds."""
        path = self._channel_path(nickname, channel_id) + "/channel-lifetime"
        body = ChannelLifetime(channel_lifetime=lifetime) if lifetime is not None else None
        response = await self._request("PUT", path, body=body, op=_STATE)
        return self._parse(ChannelLifetime, response).channel_lifetime

    async def get_channel_lifetime(self, nickname: str, channel_id: str) -> int:
        path = self._channel_path(nickname, channel_id) + "/channel-lifetime"
        response = await self._request("GET", path, op=_GET)
        return self._parse(ChannelLifetime, response).channel_lifetime

    @staticmethod
    def _channel_path(nickname: str, channel_id: str) -> str:
        return f"{CHANNELS}/channels/{_segment(nickname)}/{_segment(channel_id)}"

    # --- devices and extensions --------------------------------------------------------

    async def create_device(
        self,
        device_id: str,
        incoming_call_channel_id: str,
        session_management_channel_id: str | None = None,
        *,
        app_id: str = APP_ID,
        app_version: str = "",
        platform: str = "INTEGRATOR",
    ) -> Device:
        """``POST /devices``: both callback ids default to the same channel."""
        from worker import __version__

        body = Device(
            client_information=ClientInformation(
                device_id=device_id,
                app_id=app_id,
                app_version=app_version or __version__,
                platform=platform,
            ),
            callback_reference=CallbackReference(
                incoming_call_channel_id=incoming_call_channel_id,
                session_management_channel_id=session_management_channel_id
                or incoming_call_channel_id,
            ),
        )
        check = (
            f"the device may have been created: GET {WEB_CALLS}/devices/{device_id} "
            "before creating it again"
        )
        response = await self._request(
            "POST", f"{WEB_CALLS}/devices", body=body, op=_Op(False, check)
        )
        return self._parse(Device, response)

    async def get_device(self, device_id: str) -> Device:
        response = await self._request("GET", f"{WEB_CALLS}/devices/{_segment(device_id)}", op=_GET)
        return self._parse(Device, response)

    async def delete_device(self, device_id: str) -> None:
        await self._request("DELETE", f"{WEB_CALLS}/devices/{_segment(device_id)}", op=_DELETE)

    async def create_extensions(
        self, device_id: str, organization_id: str, numbers: Sequence[str]
    ) -> ExtensionResult:
        """``POST /devices/{deviceId}/extensions``; see :meth:`ExtensionResult.failed`."""
        body = CreateExtensionsRequest(
            organization_id=organization_id,
            extensions=tuple(ExtensionRequest(number=n) for n in numbers),
        )
        path = f"{WEB_CALLS}/devices/{_segment(device_id)}/extensions"
        check = f"the extensions may have been created: GET {path} before creating them again"
        response = await self._request("POST", path, body=body, op=_Op(False, check))
        return self._parse(ExtensionResult, response)

    async def list_extensions(
        self,
        device_id: str,
        *,
        organization_id: str | None = None,
        extension_number: str | None = None,
        page_size: int | None = None,
    ) -> list[Extension]:
        """The device's extensions, following ``nextPageMarker`` across pages."""
        path = f"{WEB_CALLS}/devices/{_segment(device_id)}/extensions"
        found: list[Extension] = []
        marker: str | None = None
        seen: set[str] = set()
        while True:
            params = _params(
                organizationId=organization_id,
                extensionNumber=extension_number,
                pageMarker=marker,
                pageSize=page_size,
            )
            response = await self._request("GET", path, params=params, op=_GET)
            page = self._parse(ExtensionPage, response)
            found.extend(page.all)
            marker = page.next_page_marker
            if not marker:
                return found
            _check_marker(marker, seen, path)

    async def delete_extensions(
        self,
        device_id: str,
        *,
        organization_id: str | None = None,
        extension_number: str | None = None,
    ) -> None:
        """``DELETE /devices/{deviceId}/extensions``, narrowed by organization and number."""
        path = f"{WEB_CALLS}/devices/{_segment(device_id)}/extensions"
        params = _params(organizationId=organization_id, extensionNumber=extension_number)
        await self._request("DELETE", path, params=params, op=_DELETE)

    # --- calls -------------------------------------------------------------------------

    async def make_call(
        self,
        *,
        device_id: str,
        organization_id: str,
        extension_number: str,
        dial_string: str,
        in_call_channel_id: str,
        sdp: str,
    ) -> CallInfo:
        """``POST /calls``: dial ``dial_string``; the reply's ``sdp`` is the SDP answer.

        Never retried once sent: a timeout raises AmbiguousResultError.
        """
        body = MakeCallRequest(
            device_id=device_id,
            organization_id=organization_id,
            extension_number=extension_number,
            dial_string=dial_string,
            in_call_channel_id=in_call_channel_id,
            sdp=sdp,
        )
        check = (
            "the call may have been placed: check the call list / wait for notifications on "
            f"in-call channel {in_call_channel_id} before dialing {dial_string} again"
        )
        response = await self._request(
            "POST", f"{WEB_CALLS}/calls", body=body, op=_Op(False, check)
        )
        return self._parse(CallInfo, response)

    async def answer(self, call_id: str, *, sdp: str, in_call_channel_id: str) -> CallInfo:
        """``POST /calls/{callId}/answer`` with our SDP; the reply carries the far end's SDP."""
        body = AnswerRequest(sdp=sdp, in_call_channel_id=in_call_channel_id)
        check = (
            f"call {call_id} may have been answered: wait for its notifications before "
            "answering again"
        )
        response = await self._request(
            "POST", self._call_path(call_id, "answer"), body=body, op=_Op(False, check)
        )
        return self._parse(CallInfo, response)

    async def reject(
        self, call_id: str, *, action: str | None = None, destination: str | None = None
    ) -> None:
        """``POST /calls/{callId}/reject``; ``action=SEND_TO_VOICEMAIL`` sends it to voicemail."""
        body = RejectRequest(
            **({"action": action} if action else {}),
            **({"destination": destination} if destination else {}),
        )
        check = f"call {call_id} may have been rejected: wait for its ended notification"
        await self._request(
            "POST", self._call_path(call_id, "reject"), body=body, op=_Op(False, check)
        )

    async def send_to_voicemail(self, call_id: str) -> None:
        await self.reject(call_id, action=SEND_TO_VOICEMAIL)

    async def hangup(self, call_id: str) -> None:
        """``DELETE /calls/{callId}``."""
        await self._request("DELETE", self._call_path(call_id), op=_DELETE)

    async def ringing(
        self,
        call_id: str,
        *,
        in_call_channel_id: str | None = None,
        incoming_notification_timestamp: str | None = None,
    ) -> None:
        """``POST /calls/{callId}/ringing``: echo the incoming notification's timestamp."""
        fields: dict[str, Any] = {}
        if in_call_channel_id:
            fields["in_call_channel_id"] = in_call_channel_id
        if incoming_notification_timestamp:
            fields["incoming_notification_timestamp"] = incoming_notification_timestamp
        await self._request(
            "POST", self._call_path(call_id, "ringing"), body=RingingRequest(**fields), op=_STATE
        )

    async def hold(self, call_id: str) -> None:
        await self._request("POST", self._call_path(call_id, "hold"), op=_STATE)

    async def unhold(self, call_id: str) -> None:
        await self._request("POST", self._call_path(call_id, "unhold"), op=_STATE)

    async def mute(self, call_id: str) -> None:
        await self._request("POST", self._call_path(call_id, "mute"), op=_STATE)

    async def unmute(self, call_id: str) -> None:
        await self._request("POST", self._call_path(call_id, "unmute"), op=_STATE)

    async def dtmf(self, call_id: str, tones: str) -> None:
        """``POST /calls/{callId}/dtmf``: send ``tones`` (digits, ``*``, ``#``)."""
        check = f"tones may have been sent on call {call_id}; sending again would repeat them"
        await self._request(
            "POST",
            self._call_path(call_id, "dtmf"),
            body=DtmfRequest(tone=tones),
            op=_Op(False, check),
        )

    async def blind_transfer(self, call_id: str, dial_string: str) -> None:
        """``POST /calls/{callId}/blind-transfer`` to ``dial_string``."""
        check = (
            f"call {call_id} may have been transferred to {dial_string}: wait for its "
            "notifications before transferring again"
        )
        await self._request(
            "POST",
            self._call_path(call_id, "blind-transfer"),
            body=BlindTransferRequest(dial_string=dial_string),
            op=_Op(False, check),
        )

    @staticmethod
    def _call_path(call_id: str, action: str = "") -> str:
        path = f"{WEB_CALLS}/calls/{_segment(call_id)}"
        return f"{path}/{action}" if action else path

    # --- the request loop --------------------------------------------------------------

    def _full_path(self, path: str) -> str:
        return (urlsplit(self.api_url).path or "") + path

    async def _request(
        self,
        method: str,
        path: str,
        *,
        op: _Op,
        body: GoToModel | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        shown = self._full_path(path)
        payload = body.dump() if body is not None else None
        started = self._clock()
        attempt = 0
        renewed = False
        maybe_done = False
        while True:
            attempt += 1
            sent = await self._send(method, path, payload, params)
            if isinstance(sent, _Failed):
                failure, outcome = sent.error, sent.outcome
            else:
                token, response = sent
                status = response.status_code
                logger.debug("GoTo %s %s -> %d (attempt %d)", method, shown, status, attempt)
                if status < 400:
                    return response
                reply = _json_or_none(response)
                if status == 404 and op.missing_is_done and maybe_done:
                    logger.info("%s %s: gone on retry; an earlier attempt worked", method, shown)
                    return response
                if status == 401 and _error_code(reply) == EXPIRED and not renewed:
                    renewed = True  # refresh once, retry once; this attempt does not count
                    logger.info("GoTo said the access token expired; refreshing it once")
                    await self.tokens.renew_after_rejection(token)
                    attempt -= 1
                    continue
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._now())
                outcome = Outcome(status, sent=True, retry_after=retry_after)
                failure = error_from_reply(
                    status,
                    reply,
                    method=method,
                    path=shown,
                    secrets=self.tokens.secrets(),
                    retry_after=retry_after,
                    attempts=attempt,
                )
            delay = retry_delay(
                self.policy,
                outcome,
                attempt=attempt,
                safe=op.safe,
                elapsed=self._clock() - started,
                rand=self._rand(),
            )
            if delay is None:
                if outcome.ambiguous and not op.safe:
                    raise _ambiguous(failure, outcome, op, method, shown) from None
                if attempt > 1 and outcome.status is None:
                    failure.args = (f"{failure}; gave up after {attempt} attempts",)
                raise failure
            maybe_done = maybe_done or outcome.ambiguous
            logger.info(
                "%s; retrying in %.2f s (attempt %d of %d)",
                str(failure).split("; ")[0],
                delay,
                attempt + 1,
                self.policy.max_attempts,
            )
            await self._sleep(delay)

    async def _send(
        self, method: str, path: str, payload: Any, params: dict[str, str] | None
    ) -> tuple[str, httpx.Response] | _Failed:
        """One attempt: a token, then the request. Failures without an HTTP reply are returned."""
        try:
            token = await self.tokens.token()
        except (TransportError, RateLimitedError, ServerError) as exc:
            # Getting a token failed, so the API request itself was never sent.
            return _Failed(exc, Outcome(exc.status, sent=False, retry_after=_retry_after(exc)))
        try:
            response = await self._http.request(
                method,
                self.api_url + path,
                json=payload,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            lost = transport_error(
                exc,
                method=method,
                path=self._full_path(path),
                host=urlsplit(self.api_url).netloc,
                secrets=self.tokens.secrets(),
            )
            return _Failed(lost, Outcome(None, sent=lost.sent))
        return token, response

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        request = response.request
        shown = request.url.path
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            detail = (
                f"{exc.error_count()} invalid field(s), first at "
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc']) or 'top level'}"
                if isinstance(exc, ValidationError)
                else "not JSON"
            )
            raise ProtocolError(
                f"{request.method} {shown} succeeded (HTTP {response.status_code}) but the reply "
                f"is not a {model.__name__}: {detail}; {ProtocolError.hint}",
                status=response.status_code,
                method=request.method,
                path=shown,
            ) from None


def default_timeout() -> httpx.Timeout:
    """Connect fast, give GoTo 15 s to answer."""
    return httpx.Timeout(15.0, connect=5.0)


def _ambiguous(
    failure: GoToError, outcome: Outcome, op: _Op, method: str, path: str
) -> AmbiguousResultError:
    if outcome.status is None:
        what = "timed out" if "timed out" in str(failure) else "lost its connection"
        happened = f"{method} {path} {what} after the request was sent"
    else:
        code = f" {failure.error_code}" if failure.error_code else ""
        ref = f" (reference {failure.reference})" if failure.reference else ""
        happened = (
            f"{method} {path} got HTTP {outcome.status}{code}{ref} after the request was sent"
        )
    check = op.check or "the request may have taken effect: check before repeating it"
    return AmbiguousResultError(
        f"{happened}; {check}",
        check=check,
        status=outcome.status,
        error_code=failure.error_code,
        reference=failure.reference,
        method=method,
        path=path,
    )


def _retry_after(exc: GoToError) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitedError) else None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(reply: Any) -> str:
    return str(reply.get("errorCode", "")) if isinstance(reply, dict) else ""


def _params(**values: str | int | None) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _check_marker(marker: str, seen: set[str], path: str) -> None:
    if marker in seen:
        raise ProtocolError(
            f"GET {path}: GoTo returned the page marker {marker!r} twice; stopping to avoid a loop",
            method="GET",
            path=path,
        )
    seen.add(marker)


__all__ = [
    "CHANNELS",
    "SEND_TO_VOICEMAIL",
    "WEB_CALLS",
    "GoToClient",
    "Outcome",
    "RetryPolicy",
    "backoff",
    "default_timeout",
    "retry_delay",
]
