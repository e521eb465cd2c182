"""Shared pieces of the sandbox's HTTP handlers: bearer-guarded endpoints, JSON replies.

:func:`guarded` wraps a handler ``(request, sim) -> Response`` so the bearer
token is checked (scope first, as GoTo does) before the handler runs. The
exception handlers turn :class:`~gotosim.errors.ApiError`,
:class:`~gotosim.errors.OAuthError` and Starlette's routing errors into
GoTo-shaped bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gotosim.errors import (
    BAD_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    ApiError,
    OAuthError,
    error_body,
)
from gotosim.validate import parse_json_object

if TYPE_CHECKING:
    from gotosim.simulator import Simulator

Handler = Callable[[Request, "Simulator"], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def sim_of(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


def base_url(request: Request) -> str:
    """The sandbox's own base URL as the client reached it (any host works)."""
    return str(request.base_url).rstrip("/")


async def json_body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    return parse_json_object(await request.body(), optional=optional)


def guarded(*scopes: str) -> Callable[[Handler], Endpoint]:
    """Require a bearer token with any of ``scopes`` before running the handler."""

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            sim = sim_of(request)
            sim.tokens.check_bearer(request.headers.get("authorization"), scopes)
            return await handler(request, sim)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


def control(handler: Handler) -> Endpoint:
    """A ``/_sim`` endpoint: no bearer token needed."""

    async def endpoint(request: Request) -> Response:
        return await handler(request, sim_of(request))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def reply(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def no_content() -> Response:
    return Response(status_code=204)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="gotosim"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        body = error_body(NOT_FOUND, f"no such endpoint: {where}")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        body = error_body(METHOD_NOT_ALLOWED, f"{where} is not allowed; use {allowed}")
    else:
        body = error_body(BAD_REQUEST, f"{where}: {exc.detail}")
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
