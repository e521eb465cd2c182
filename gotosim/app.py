"""The sandbox as an ASGI app: :func:`create_app` puts a :class:`Simulator` behind HTTP.

One app serves everything on any host name: the OAuth endpoints
(``/oauth/...``), the Notification Channel API, the Devices and Calls API,
and the control API (``/_sim/...``). The app's lifespan starts and closes the
simulator, so serve it with lifespan enabled (uvicorn does by default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from gotosim import api_channels, api_control, api_oauth, api_webcalls
from gotosim.api_common import api_error, http_error, oauth_error
from gotosim.clock import Clock
from gotosim.edge import Edge
from gotosim.errors import ApiError, OAuthError
from gotosim.media import FarEndFactory
from gotosim.model import SimConfig
from gotosim.simulator import Simulator


def create_app(
    sim: Simulator | None = None,
    *,
    config: SimConfig | None = None,
    clock: Clock | None = None,
    far_end_factory: FarEndFactory | None = None,
) -> Starlette:
    """The sandbox app around ``sim`` (or a new :class:`Simulator` built from the options)."""
    if sim is not None and (config is not None or clock is not None or far_end_factory):
        raise ValueError("pass either a Simulator or the options to build one, not both")
    simulator = sim or Simulator(config, clock=clock, far_end_factory=far_end_factory)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.close()

    app = Starlette(
        routes=[
            *api_oauth.routes,
            *api_channels.routes,
            *api_webcalls.routes,
            *api_control.routes,
        ],
        middleware=[Middleware(Edge, sim=simulator)],
        exception_handlers={
            ApiError: api_error,
            OAuthError: oauth_error,
            HTTPException: http_error,
        },
        lifespan=lifespan,
    )
    app.state.sim = simulator
    return app
