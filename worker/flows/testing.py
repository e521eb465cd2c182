"""Try a flow against a scripted caller in the sandbox, in a few lines.

::

    from worker.flows import load_flows
    from worker.flows.testing import FlowSandbox

    flows = load_flows("examples/attendant/flows")
    async with FlowSandbox(tmp_path) as sandbox:
        call = await sandbox.call(flows, "main", script={
            "digits": [{"at": 1.0, "digit": "2"}], "hangup_at": 6.0,
        })
    assert "main.support" in call.result.steps
    print(call.heard.sound())            # when the caller heard something
    print(call.sim_call.outcome)         # COMPLETED, TRANSFERRED, ...

:class:`FlowSandbox` runs gotosim on this event loop with its real WebRTC far
end (:mod:`gotosim.farend`), served over HTTP on 127.0.0.1 with a webhook
receiver, and provisions a channel, a device and its extensions through the
GoTo client, as a node would. :meth:`FlowSandbox.call` places an inbound call
with the caller ``script`` (audio, key presses at media times, hang-up; the
format is in docs/media-session.md), answers it through the API, runs the
flow on a real :class:`~worker.media.session.CallSession` with
:class:`~worker.flows.actions.GoToCallActions`, and returns what happened on
both sides: the :class:`~worker.flows.events.FlowResult`, what the caller
heard (a :class:`~gotosim.farend.HeardReport`, with a WAV) and the
sandbox's view of the call (outcome, transfer target, events).

Everything binds 127.0.0.1 only; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gotosim.app import create_app
from gotosim.farend import AiortcFarEnd, HeardReport, aiortc_far_end_factory
from gotosim.model import SimCall, SimConfig
from gotosim.server import bind, url_of
from gotosim.simulator import Simulator
from worker.config import Secret
from worker.flows.actions import GoToCallActions
from worker.flows.driver import run_flow
from worker.flows.events import FlowCall, FlowResult
from worker.flows.model import FlowSet
from worker.goto.auth import TokenManager
from worker.goto.client import GoToClient
from worker.media.session import CallSession, MediaConfig

LOOPBACK = ("127.0.0.1",)


@dataclass(frozen=True)
class SandboxCall:
    """One call of :meth:`FlowSandbox.call`: both sides of it, after it ended."""

    call_id: str
    result: FlowResult
    heard: HeardReport
    sim_call: SimCall
    session: CallSession


class WebhookReceiver:
    """An ASGI webhook endpoint: answers OPTIONS and POST with 204, keeps the JSON bodies.

    The sandbox's notifications go to one; tests of gotosim serve one too.
    """

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            with contextlib.suppress(ValueError):
                self.bodies.append(json.loads(body))
        headers = [(b"allow", b"OPTIONS, POST"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class _Served:
    """An ASGI app served by uvicorn on this event loop, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            app, log_config=None, lifespan="on", access_log=False, server_header=False
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self, within: float = 15.0) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        async with asyncio.timeout(within):
            # uvicorn exposes "started" only as a flag, not as an event to await.
            while not self.server.started:
                if self.task.done():
                    await self.task
                    raise RuntimeError(f"uvicorn stopped before serving on {self.url}")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()


class FlowSandbox:
    """gotosim with a real far end on this event loop, provisioned; see the module docstring."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        extensions: tuple[str, ...] = ("1000",),
        voicemail_number: str | None = None,
        script_root: str | Path | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.extensions = extensions
        self.voicemail_number = voicemail_number
        self.recordings_dir = self.workdir / "recordings"
        self.sim = Simulator(
            SimConfig(extensions=extensions, webhook_retry_delay=0.05),
            far_end_factory=aiortc_far_end_factory(
                self.workdir / "heard", candidate_addresses=LOOPBACK, script_root=script_root
            ),
        )
        self.receiver = WebhookReceiver()
        self._served_receiver: _Served | None = None
        self._served_sim: _Served | None = None
        self._client: GoToClient | None = None
        self._http: httpx.AsyncClient | None = None
        self.channel_id = ""

    @property
    def url(self) -> str:
        """The sandbox's base URL (API, OAuth and ``/_sim`` control)."""
        assert self._served_sim is not None, "the sandbox is not started"
        return self._served_sim.url

    @property
    def client(self) -> GoToClient:
        assert self._client is not None, "the sandbox is not started"
        return self._client

    @property
    def far_end(self) -> AiortcFarEnd:
        far_end = self.sim.far_end
        assert isinstance(far_end, AiortcFarEnd)
        return far_end

    async def __aenter__(self) -> FlowSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._served_receiver = _Served(self.receiver)
        await self._served_receiver.start()
        self._served_sim = _Served(create_app(self.sim))
        await self._served_sim.start()
        self._http = httpx.AsyncClient(trust_env=False, timeout=30.0)
        creds = self.sim.credentials(self.url)
        tokens = TokenManager(
            auth_url=self.url,
            client_id=str(creds["clientId"]),
            client_secret=Secret(str(creds["clientSecret"])),
            refresh_token=Secret(str(creds["refreshToken"])),
        )
        self._client = GoToClient(api_url=self.url, tokens=tokens)
        nickname = f"flows-{uuid.uuid4().hex[:8]}"
        channel = await self._client.create_webhook_channel(
            nickname, f"{self._served_receiver.url}/hook"
        )
        self.channel_id = channel.channel_id
        device_id = uuid.uuid4().hex
        await self._client.create_device(device_id, channel.channel_id)
        await self._client.create_extensions(
            device_id, str(creds["organizationId"]), list(self.extensions)
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._http is not None:
            await self._http.aclose()
        for served in (self._served_sim, self._served_receiver):
            if served is not None:
                await served.stop()

    async def call(
        self,
        flows: FlowSet,
        start_flow: str,
        *,
        script: dict[str, Any] | None = None,
        caller: str = "+15145550199",
        name: str = "Test Caller",
        extension: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        start_step: str | None = None,
        http: httpx.AsyncClient | None = None,
        voicemail_number: str | None = None,
        deadline: float = 60.0,
    ) -> SandboxCall:
        """Place an inbound call with ``script``, run the flow on it, return both sides."""
        assert self._http is not None and self._client is not None, "the sandbox is not started"
        extension = extension or self.extensions[0]
        reply = await self._http.post(
            f"{self.url}/_sim/calls",
            json={"extension": extension, "number": caller, "name": name, "script": script},
        )
        if reply.status_code != 201:
            raise RuntimeError(f"the sandbox refused the call: {reply.status_code} {reply.text}")
        call_id = str(reply.json()["id"])
        session = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id=call_id)
        try:
            async with asyncio.timeout(deadline):
                offer = await session.create_offer()
                answered = await self._client.answer(
                    call_id, sdp=offer, in_call_channel_id=self.channel_id
                )
                if not answered.sdp:
                    raise RuntimeError(f"the sandbox answered call {call_id} without SDP")
                await session.accept_answer(answered.sdp)
                await session.wait_connected()
                result = await run_flow(
                    flows,
                    start_flow,
                    session=session,
                    actions=GoToCallActions(
                        self._client,
                        call_id,
                        voicemail_number=voicemail_number or self.voicemail_number,
                    ),
                    recordings_dir=self.recordings_dir,
                    call=FlowCall(call_id, caller, name, extension),
                    http=http or self._http,
                    now=now,
                    start_step=start_step,
                )
                sim_call = self.sim.calls.get(call_id)
                if not sim_call.ended:  # the flow always ends the call; clean up if not
                    await self._client.hangup(call_id)
                await self.sim.wait_for(lambda: sim_call.ended or None, within=deadline)
                await self.far_end.leg(call_id).closed.wait()
        finally:
            await session.close()
        return SandboxCall(call_id, result, self.far_end.heard(call_id), sim_call, session)


__all__ = ["FlowSandbox", "SandboxCall", "WebhookReceiver"]
