"""OAuth for the sandbox: authorization codes, refresh tokens, access tokens, bearer checks.

:class:`TokenStore` holds every token it issued and decides, on the injected
clock, whether a bearer token is good for a scope. It does no I/O; the HTTP
side lives in :mod:`gotosim.api_oauth`. Token values are opaque random strings
and never appear in reprs, logs or error messages.

Rules followed (see docs/sandbox.md for sources):

- access tokens expire after ``access_token_lifetime`` (default 3600 s);
- a refresh grant answers ``access_token``, ``expires_in``, ``scope`` and
  ``principal``, plus ``refresh_token`` and ``token_type`` only when it issues
  a new refresh token (rotation: ``never``, ``always`` or ``ttl60`` = after 60%
  of the refresh token's lifetime); a rotated-out refresh token is revoked;
- bearer checks: no token -> 403 ``AUTHZ_INSUFFICIENT_SCOPE`` (checked first),
  a scheme other than Bearer -> 401 ``AUTHN_UNSUPPORTED_SCHEME``, a value that
  is not a token -> 401 ``AUTHN_MALFORMED_TOKEN``, unknown or revoked -> 401
  ``AUTHN_INVALID_TOKEN``, expired -> 401 ``AUTHN_EXPIRED_TOKEN``, lacking the
  scope -> 403 ``AUTHZ_INSUFFICIENT_SCOPE``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gotosim.clock import Clock
from gotosim.errors import (
    AUTHN_EXPIRED_TOKEN,
    AUTHN_INVALID_TOKEN,
    AUTHN_MALFORMED_TOKEN,
    AUTHN_UNSUPPORTED_SCHEME,
    AUTHZ_INSUFFICIENT_SCOPE,
    ApiError,
    OAuthError,
)
from gotosim.model import Rotation

WEBRTC_READ = "webrtc.v1.read"
WEBRTC_WRITE = "webrtc.v1.write"
CHANNEL_READ = "notification-channel.v1.read"
CHANNEL_MANAGE = "notification-channel.v1.manage"
ALL_SCOPES: tuple[str, ...] = (WEBRTC_READ, WEBRTC_WRITE, CHANNEL_READ, CHANNEL_MANAGE)

CODE_LIFETIME = 600.0
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_WWW_AUTHENTICATE = 'Bearer realm="gotosim", error="invalid_token"'


@dataclass
class AccessToken:
    value: str = field(repr=False)
    scopes: frozenset[str]
    principal: str
    issued_at: float
    expires_at: float


@dataclass
class RefreshToken:
    value: str = field(repr=False)
    scopes: frozenset[str]
    principal: str
    issued_at: float
    expires_at: float
    lineage: str
    revoked: bool = False


@dataclass
class AuthCode:
    value: str = field(repr=False)
    scopes: frozenset[str]
    redirect_uri: str | None
    expires_at: float
    used: bool = False


def should_rotate(mode: Rotation, token: RefreshToken, now: float) -> bool:
    """Whether a refresh grant issues a new refresh token."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return now - token.issued_at >= 0.6 * (token.expires_at - token.issued_at)


def parse_scopes(raw: str | None) -> frozenset[str]:
    """A space-separated scope list; empty means every scope; unknown scopes are refused."""
    names = frozenset((raw or "").split())
    unknown = sorted(names - set(ALL_SCOPES))
    if unknown:
        raise OAuthError(400, "invalid_scope", f"unknown scope(s): {', '.join(unknown)}")
    return names or frozenset(ALL_SCOPES)


class TokenStore:
    """Every token the sandbox issued, judged on ``clock``."""

    SANDBOX_LINEAGE = "sandbox"

    def __init__(
        self,
        clock: Clock,
        *,
        client_id: str,
        client_secret: str,
        principal: str,
        access_lifetime: int,
        refresh_lifetime: int,
        rotation: Rotation,
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self._client_secret = client_secret
        self.principal = principal
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.rotation: Rotation = rotation
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict[str, AuthCode] = {}
        self._current: dict[str, str] = {}

    # -- client authentication -------------------------------------------------

    def client_secret_matches(self, client_id: str, client_secret: str) -> bool:
        id_ok = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        return id_ok and secret_ok

    # -- issuing ----------------------------------------------------------------

    def seed_refresh_token(self, value: str) -> RefreshToken:
        """Register the sandbox's own refresh token (all scopes)."""
        return self._new_refresh(frozenset(ALL_SCOPES), self.SANDBOX_LINEAGE, value)

    def current_refresh_token(self, lineage: str = SANDBOX_LINEAGE) -> str:
        return self._current[lineage]

    def _new_refresh(
        self, scopes: frozenset[str], lineage: str, value: str | None = None
    ) -> RefreshToken:
        now = self.clock.time()
        token = RefreshToken(
            value=value or secrets.token_urlsafe(48),
            scopes=scopes,
            principal=self.principal,
            issued_at=now,
            expires_at=now + self.refresh_lifetime,
            lineage=lineage,
        )
        self._refresh[token.value] = token
        self._current[lineage] = token.value
        return token

    def new_access(self, scopes: frozenset[str], lifetime: float | None = None) -> AccessToken:
        now = self.clock.time()
        self._prune(now)
        token = AccessToken(
            value=secrets.token_urlsafe(32),
            scopes=scopes,
            principal=self.principal,
            issued_at=now,
            expires_at=now + (self.access_lifetime if lifetime is None else lifetime),
        )
        self._access[token.value] = token
        return token

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._access.items() if t.expires_at < now - 86_400]
        for key in stale:
            del self._access[key]

    def create_code(self, scopes: frozenset[str], redirect_uri: str | None) -> str:
        code = AuthCode(
            value=secrets.token_urlsafe(24),
            scopes=scopes,
            redirect_uri=redirect_uri,
            expires_at=self.clock.time() + CODE_LIFETIME,
        )
        self._codes[code.value] = code
        return code.value

    def exchange_code(self, code: str, redirect_uri: str | None) -> dict[str, Any]:
        """The authorization-code grant: a new access token and refresh token."""
        grant = self._codes.get(code)
        if grant is None or grant.used or grant.expires_at <= self.clock.time():
            raise OAuthError(400, "invalid_grant", "the authorization code is invalid or expired")
        if grant.redirect_uri is not None and redirect_uri != grant.redirect_uri:
            raise OAuthError(
                400, "invalid_grant", "redirect_uri differs from the one sent to /oauth/authorize"
            )
        grant.used = True
        refresh = self._new_refresh(grant.scopes, lineage=secrets.token_hex(8))
        access = self.new_access(grant.scopes)
        return {
            "access_token": access.value,
            "token_type": "Bearer",
            "refresh_token": refresh.value,
            "expires_in": self.access_lifetime,
            "scope": " ".join(sorted(access.scopes)),
            "principal": access.principal,
        }

    def refresh(self, value: str) -> dict[str, Any]:
        """The refresh-token grant; rotates the refresh token per ``self.rotation``."""
        now = self.clock.time()
        token = self._refresh.get(value)
        if token is None or token.revoked or token.expires_at <= now:
            raise OAuthError(400, "invalid_grant", "the refresh token is invalid or expired")
        access = self.new_access(token.scopes)
        reply: dict[str, Any] = {
            "access_token": access.value,
            "expires_in": self.access_lifetime,
            "scope": " ".join(sorted(access.scopes)),
            "principal": access.principal,
        }
        if should_rotate(self.rotation, token, now):
            token.revoked = True
            fresh = self._new_refresh(token.scopes, token.lineage)
            reply["refresh_token"] = fresh.value
            reply["token_type"] = "Bearer"  # noqa: S105
        return reply

    def expire_all_access(self) -> int:
        """Make every access token expired now; returns how many were live."""
        now = self.clock.time()
        live = 0
        for token in self._access.values():
            if token.expires_at > now:
                live += 1
                token.expires_at = now
        return live

    # -- checking ---------------------------------------------------------------

    def check_bearer(self, authorization: str | None, scopes: Iterable[str]) -> AccessToken:
        """The access token in an ``Authorization`` header, if it grants any of ``scopes``."""
        wanted = tuple(scopes)
        if authorization is None or not authorization.strip():
            raise ApiError(
                403,
                AUTHZ_INSUFFICIENT_SCOPE,
                "no access token: send Authorization: Bearer <access token> "
                f"with scope {' or '.join(wanted)}",
            )
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(
                401,
                AUTHN_UNSUPPORTED_SCHEME,
                f"authorization scheme {scheme[:20]!r} is not supported; use Bearer",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        credentials = credentials.strip()
        if not credentials or len(credentials) > 4096 or not _TOKEN.fullmatch(credentials):
            raise ApiError(
                401,
                AUTHN_MALFORMED_TOKEN,
                "the bearer token is malformed",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        token = self._access.get(credentials)
        if token is None:
            raise ApiError(
                401,
                AUTHN_INVALID_TOKEN,
                "the access token is not valid; get a new one from /oauth/token",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        if token.expires_at <= self.clock.time():
            raise ApiError(
                401,
                AUTHN_EXPIRED_TOKEN,
                "the access token has expired; refresh it at /oauth/token",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        if wanted and not token.scopes.intersection(wanted):
            raise ApiError(
                403,
                AUTHZ_INSUFFICIENT_SCOPE,
                f"the access token lacks scope {' or '.join(wanted)}",
            )
        return token
