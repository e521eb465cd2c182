"""The sandbox's OAuth endpoints: ``POST /oauth/token`` and ``GET /oauth/authorize``.

The token endpoint takes a form body and HTTP Basic client authentication,
like GoTo's ``authentication.logmeininc.com/oauth/token``, and serves the
``authorization_code`` and ``refresh_token`` grants. ``/oauth/authorize``
approves at once (there is no user to ask) and redirects back with a code (or,
for ``response_type=token``, an access token in the fragment). Errors use the
RFC 6749 body ``{"error", "error_description"}``.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gotosim.api_common import sim_of
from gotosim.errors import OAuthError
from gotosim.oauth import parse_scopes

UNSUPPORTED_KNOWN_GRANTS = ("client_credentials", "password", "implicit")


def _client(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise OAuthError(
            401,
            "invalid_client",
            "client authentication failed: send Authorization: Basic base64(client_id:secret)",
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, non-ASCII, not UTF-8
        raise OAuthError(401, "invalid_client", "the Basic credentials are not base64") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(401, "invalid_client", "the Basic credentials lack a ':'")
    return client_id, secret


def _form(raw: bytes, content_type: str) -> dict[str, str]:
    if "application/x-www-form-urlencoded" not in content_type.lower():
        raise OAuthError(
            400, "invalid_request", "send the token request as application/x-www-form-urlencoded"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "the form body is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


async def token(request: Request) -> Response:
    sim = sim_of(request)
    client_id, secret = _client(request)
    if not sim.tokens.client_secret_matches(client_id, secret):
        raise OAuthError(401, "invalid_client", "unknown client or wrong client secret")
    form = _form(await request.body(), request.headers.get("content-type", ""))
    grant = form.get("grant_type", "")
    if grant == "refresh_token":
        value = form.get("refresh_token", "")
        if not value:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        data = sim.tokens.refresh(value)
    elif grant == "authorization_code":
        code = form.get("code", "")
        if not code:
            raise OAuthError(400, "invalid_request", "code is required")
        data = sim.tokens.exchange_code(code, form.get("redirect_uri") or None)
    elif not grant:
        raise OAuthError(400, "invalid_request", "grant_type is required")
    elif grant in UNSUPPORTED_KNOWN_GRANTS:
        raise OAuthError(401, "unauthorized_client", "Unauthorized grant type")
    else:
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant[:40]!r} is unknown")
    return JSONResponse(data, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def authorize(request: Request) -> Response:
    sim = sim_of(request)
    params = request.query_params
    response_type = params.get("response_type", "")
    if response_type not in ("code", "token"):
        raise OAuthError(400, "unsupported_response_type", "response_type must be code or token")
    if params.get("client_id", "") != sim.tokens.client_id:
        raise OAuthError(400, "invalid_client", "unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    try:
        parts = urlsplit(redirect_uri)
    except ValueError:
        raise OAuthError(400, "invalid_request", "redirect_uri is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OAuthError(400, "invalid_request", "redirect_uri must be an http(s) URL")
    scopes = parse_scopes(params.get("scope"))
    state = params.get("state")
    if response_type == "code":
        query = {"code": sim.tokens.create_code(scopes, redirect_uri)}
        if state is not None:
            query["state"] = state
        joiner = "&" if parts.query else "?"
        return RedirectResponse(f"{redirect_uri}{joiner}{urlencode(query)}", status_code=302)
    access = sim.tokens.new_access(scopes)
    fragment = {
        "access_token": access.value,
        "token_type": "Bearer",
        "expires_in": str(sim.tokens.access_lifetime),
        "scope": " ".join(sorted(scopes)),
    }
    if state is not None:
        fragment["state"] = state
    return RedirectResponse(f"{redirect_uri}#{urlencode(fragment)}", status_code=302)


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/authorize", authorize, methods=["GET"]),
]
