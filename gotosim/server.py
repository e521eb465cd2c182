"""Run the sandbox as a process: bind, serve with uvicorn, stop cleanly on SIGTERM/SIGINT.

:func:`run` binds the socket itself (so a busy port is an ``OSError`` with a
clear message before anything starts, and port 0 picks a free one), serves
:func:`~gotosim.app.create_app` with uvicorn, calls ``on_ready(url)`` once
it accepts connections, and returns after a graceful shutdown (lifespan
closed, webhooks and timers stopped). A SIGTERM or SIGINT ends it with exit
status 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from gotosim.app import create_app
from gotosim.media import FarEndFactory
from gotosim.model import SimConfig
from gotosim.simulator import Simulator


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises ``OSError`` naming both."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(
    sim: Simulator,
    sock: socket.socket,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``sim`` on an already bound socket until uvicorn is told to exit."""
    config = uvicorn.Config(
        create_app(sim),
        log_level=log_level,
        log_config=None,  # the application configures logging (worker.logs)
        lifespan="on",
        access_log=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn exposes "started" only as a flag, not as an event to await.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started and on_ready is not None:
        on_ready(url_of(sock))
    await task


def _exit_quietly(signum: int, frame: FrameType | None) -> Any:
    raise SystemExit(0)


def run(
    host: str = "127.0.0.1",
    port: int = 8911,
    *,
    config: SimConfig | None = None,
    far_end_factory: FarEndFactory | None = None,
    on_ready: Callable[[Simulator, str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Run a sandbox until SIGTERM/SIGINT; ``on_ready(sim, url)`` once it listens."""
    sock = bind(host, port)
    sim = Simulator(config, far_end_factory=far_end_factory)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal that stopped it once it has shut down;
        # these handlers turn that into a clean exit instead of a kill.
        signal.signal(signal.SIGTERM, _exit_quietly)
        signal.signal(signal.SIGINT, _exit_quietly)

    def ready(url: str) -> None:
        if on_ready is not None:
            on_ready(sim, url)

    try:
        asyncio.run(serve(sim, sock, on_ready=ready, log_level=log_level))
    finally:
        sock.close()
