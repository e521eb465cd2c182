"""OAuth 2.0 tokens for the GoTo APIs.

:class:`TokenManager` holds the current access token and its expiry, and gets
a new one with the refresh-token grant shortly before it expires (or when the
API says it has: :meth:`TokenManager.renew_after_rejection`). It also does
the authorization-code exchange. Both grants are a form POST to
``{auth_url}/oauth/token`` with HTTP Basic client authentication.

Concurrent callers share one refresh (an :class:`asyncio.Lock`). When the
token endpoint rotates the refresh token (its reply carries
``refresh_token``), the new one is saved through a :class:`TokenStore`; the
default :class:`FileTokenStore` keeps it in a 0600 JSON file in the data
folder. A stored token is only used while the configured refresh token is
the one it descends from, so changing ``CALLWORKER_REFRESH_TOKEN`` wins. The
store is read again before each refresh, so processes sharing it follow
each other's rotations.

Token values live in :class:`~worker.config.Secret` and never reach reprs,
log records or error messages. The clock is injectable (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from worker.config import Secret
from worker.goto.errors import (
    AuthError,
    GoToError,
    ProtocolError,
    TransportError,
    error_from_reply,
    parse_retry_after,
    scrub,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_EXPIRES_IN = 3600.0
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def request_sent(exc: httpx.HTTPError) -> bool:
    """Whether a request that failed with ``exc`` may have reached the server."""
    return not isinstance(exc, _NOT_SENT)


def transport_error(
    exc: httpx.HTTPError, *, method: str, path: str, host: str, secrets: tuple[str, ...] = ()
) -> TransportError:
    """A :class:`TransportError` describing ``exc`` without URLs or secrets."""
    sent = request_sent(exc)
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    when = "after the request was sent" if sent else "before the request was sent"
    detail = scrub(str(exc) or type(exc).__name__, secrets)
    message = (
        f"{method} {path} to {host} {what} {when} ({type(exc).__name__}: {detail}); "
        f"{TransportError.hint}"
    )
    return TransportError(message, sent=sent, method=method, path=path)


def fingerprint(value: str) -> str:
    """A short one-way fingerprint of a secret, to tell tokens apart without storing them."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredRefreshToken:
    """A rotated refresh token and the fingerprint of the configured one it descends from."""

    value: Secret
    origin: str


class TokenStore(Protocol):
    """Where rotated refresh tokens are kept between runs."""

    def load(self) -> StoredRefreshToken | None: ...

    def save(self, token: StoredRefreshToken) -> None: ...


class FileTokenStore:
    """Refresh tokens in a JSON file (mode 0600), one entry per ``key`` (auth URL + client id)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r}, key={self.key!r})"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable token store %s: %s", self.path, type(exc).__name__)
            return {}
        return data if isinstance(data, dict) else {}

    def load(self) -> StoredRefreshToken | None:
        entry = self._read().get(self.key)
        if not isinstance(entry, dict):
            return None
        value, origin = entry.get("refresh_token"), entry.get("origin")
        if not isinstance(value, str) or not value or not isinstance(origin, str):
            return None
        return StoredRefreshToken(Secret(value), origin)

    def save(self, token: StoredRefreshToken) -> None:
        data = self._read()
        data[self.key] = {"refresh_token": token.value.reveal(), "origin": token.origin}
        write_private_json(self.path, data)


def write_private_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AccessToken:
    """An access token; ``refresh_at`` is on the manager's clock."""

    value: Secret
    refresh_at: float
    expires_at: float
    scope: str = ""
    principal: str = ""


class TokenManager:
    """Keeps a valid access token; refreshes it before expiry; shares one refresh."""

    def __init__(
        self,
        *,
        auth_url: str,
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret | None = None,
        store: TokenStore | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        margin: float = 60.0,
        timeout: float = 15.0,
    ) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._configured = refresh_token or Secret("")
        self._origin = fingerprint(self._configured.reveal())
        self._store = store
        self._refresh_token = self._configured
        self._adopt_stored()
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._clock = clock
        self._margin = margin
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def __repr__(self) -> str:
        state = "valid" if self._valid(self._token) else "none"
        return (
            f"TokenManager(auth_url={self.auth_url!r}, client_id={self.client_id!r}, token={state})"
        )

    def _adopt_stored(self) -> None:
        """Use the store's refresh token if it descends from the configured one.

        Called before every refresh grant, so processes sharing a store pick up
        a token another one rotated.
        """
        stored = self._store.load() if self._store is not None else None
        if stored is not None and stored.origin == self._origin:
            self._refresh_token = stored.value

    @property
    def current(self) -> AccessToken | None:
        return self._token

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this manager knows, for scrubbing text."""
        values = [self._client_secret.reveal(), self._configured.reveal()]
        values.append(self._refresh_token.reveal())
        if self._token is not None:
            values.append(self._token.value.reveal())
        return tuple(v for v in values if v)

    def _valid(self, token: AccessToken | None) -> bool:
        return token is not None and self._clock() < token.refresh_at

    async def token(self) -> str:
        """A valid access token, refreshed first if it is missing or about to expire."""
        token = self._token
        if token is not None and self._valid(token):
            return token.value.reveal()
        async with self._lock:
            token = self._token
            if token is None or not self._valid(token):
                token = await self._refresh_locked()
            return token.value.reveal()

    async def renew_after_rejection(self, rejected: str) -> str:
        """The API refused ``rejected`` as expired: refresh, unless another caller already did."""
        async with self._lock:
            token = self._token
            if token is None or token.value.reveal() == rejected or not self._valid(token):
                token = await self._refresh_locked()
            return token.value.reveal()

    async def refresh(self) -> AccessToken:
        """Get a new access token with the refresh-token grant now."""
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> AccessToken:
        self._adopt_stored()
        if not self._refresh_token:
            raise AuthError(
                "no OAuth refresh token: set CALLWORKER_REFRESH_TOKEN (or run the "
                "authorization-code exchange first)",
                method="POST",
                path=self._token_path,
            )
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token.reveal()}
        token = await self._grant(form, "refresh-token")
        self.refreshes += 1
        return token

    async def exchange_code(self, code: str, redirect_uri: str) -> AccessToken:
        """Exchange an authorization code for tokens; the refresh token is kept and stored."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
        }
        async with self._lock:
            return await self._grant(form, "authorization-code", secret_inputs=(code,))

    @property
    def _token_path(self) -> str:
        return (urlsplit(self.auth_url).path or "") + "/oauth/token"

    async def _grant(
        self, form: dict[str, str], grant: str, secret_inputs: tuple[str, ...] = ()
    ) -> AccessToken:
        path = self._token_path
        secrets = self.secrets() + secret_inputs
        started = self._clock()
        try:
            response = await self._http.post(
                f"{self.auth_url}/oauth/token",
                data=form,
                auth=httpx.BasicAuth(self.client_id, self._client_secret.reveal()),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise transport_error(
                exc, method="POST", path=path, host=urlsplit(self.auth_url).netloc, secrets=secrets
            ) from None
        body = _json_or_none(response)
        if response.status_code >= 400:
            raise _grant_error(response, body, grant, path, secrets)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ProtocolError(
                f"POST {path}: the {grant} grant reply (HTTP {response.status_code}) has no "
                f"access_token; {ProtocolError.hint}",
                status=response.status_code,
                method="POST",
                path=path,
            )
        expires_in = _seconds(body.get("expires_in"), DEFAULT_EXPIRES_IN)
        refresh_in = max(expires_in - self._margin, expires_in / 2)
        token = AccessToken(
            value=Secret(body["access_token"]),
            refresh_at=started + refresh_in,
            expires_at=started + expires_in,
            scope=str(body.get("scope", "") or ""),
            principal=str(body.get("principal", "") or ""),
        )
        self._token = token
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token.reveal():
            self._refresh_token = Secret(rotated)
            if self._store is not None:
                self._store.save(StoredRefreshToken(self._refresh_token, self._origin))
            logger.info("GoTo issued a new refresh token; saved it")
        logger.debug(
            "got an access token with the %s grant; expires in %.0f s; scope %r",
            grant,
            expires_in,
            token.scope,
        )
        return token

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _seconds(value: Any, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def _grant_error(
    response: httpx.Response, body: Any, grant: str, path: str, secrets: tuple[str, ...]
) -> GoToError:
    status = response.status_code
    if isinstance(body, dict) and "error" in body and status in (400, 401, 403):
        code = scrub(str(body.get("error", "")), secrets)
        description = scrub(str(body.get("error_description", "") or ""), secrets)
        detail = f"{code} ({description})" if description else code
        return AuthError(
            f"POST {path}: the OAuth server refused the {grant} grant: HTTP {status} {detail}; "
            f"{AuthError.hint}",
            status=status,
            error_code=code,
            method="POST",
            path=path,
        )
    error = error_from_reply(
        status,
        body,
        method="POST",
        path=path,
        secrets=secrets,
        retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC)),
    )
    if status in (400, 401, 403) and not isinstance(error, AuthError):
        return AuthError(
            str(error),
            status=status,
            error_code=error.error_code,
            reference=error.reference,
            method="POST",
            path=path,
        )
    return error


__all__ = [
    "AccessToken",
    "FileTokenStore",
    "StoredRefreshToken",
    "TokenManager",
    "TokenStore",
    "fingerprint",
    "request_sent",
    "transport_error",
    "write_private_json",
]
