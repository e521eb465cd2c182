"""A scripted GoTo-like server for client tests, served for real on 127.0.0.1.

:class:`FakeGoTo` records every request and answers from a script first
(``fake.push("POST", "/web-calls/v1/calls", Reply(503))``), else from a small
in-memory model of the OAuth token endpoint, notification channels, devices,
extensions and calls. Error replies use GoTo's body shape. Webhook channels
get an OPTIONS check on creation and a ``greetings`` POST after each
extension is created, as GoTo does. :meth:`FakeGoTo.describe` lists what was
received, for assertion messages.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_SECRET = "CLIENT-SECRET-c1c2c3c4"
REFRESH_TOKEN = "REFRESH-SECRET-r1r2r3r4"
SDP_ANSWER = (
    "v=0\r\no=fake 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
)


@dataclass(frozen=True)
class Reply:
    """A scripted reply; ``stall`` holds the request open until the fake is released."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    form: dict[str, str]

    def __str__(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else ""
        return f"{self.method} {self.path}{query}"


def error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    """A reply with GoTo's error body; ``extra`` adds e.g. ``constraintViolations``."""
    body = {"reference": f"ref-{uuid.uuid4().hex[:8]}", "errorCode": code, "message": message}
    body.update(extra)
    return Reply(status, body, headers or {})


class FakeGoTo:
    def __init__(
        self,
        *,
        client_id: str = "cw-client",
        client_secret: str = CLIENT_SECRET,
        refresh_token: str = REFRESH_TOKEN,
        expires_in: int = 3600,
        rotate: bool = False,
        organization_id: str = "org-1",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.expires_in = expires_in
        self.rotate = rotate
        self.organization_id = organization_id
        self.greet = True
        self.codes: dict[str, str] = {}
        self.valid_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.issued: list[str] = []
        self.requests: list[Seen] = []
        self.script: dict[tuple[str, str], list[Reply]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.extensions: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.deliveries: list[tuple[str, int | str]] = []
        self._counter = itertools.count(1)
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._handle,
                    methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
                )
            ]
        )

    # --- for tests -------------------------------------------------------------------

    def push(self, method: str, path: str, *replies: Reply) -> None:
        with self._lock:
            self.script.setdefault((method, path), []).extend(replies)

    def expire_tokens(self) -> None:
        """Every access token issued so far now gets 401 AUTHN_EXPIRED_TOKEN."""
        self.expired_tokens |= self.valid_tokens
        self.valid_tokens.clear()

    def release(self) -> None:
        self._release.set()

    def seen(self, method: str, path: str | None = None) -> list[Seen]:
        return [r for r in self.requests if r.method == method and path in (None, r.path)]

    def describe(self) -> str:
        return "requests received:\n" + "\n".join(f"  {r}" for r in self.requests)

    # --- dispatch --------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        body: Any = None
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form"):
            form = dict(parse_qsl(raw.decode()))
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        seen = Seen(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            form,
        )
        self.requests.append(seen)
        with self._lock:
            queue = self.script.get((seen.method, seen.path))
            scripted = queue.pop(0) if queue else None
        if scripted is not None:
            if scripted.stall:
                await asyncio.to_thread(self._release.wait, 10)
            if scripted.body is None:
                return Response(status_code=scripted.status, headers=scripted.headers)
            return JSONResponse(scripted.body, scripted.status, headers=scripted.headers)
        reply = await self._default(seen)
        if reply.body is None:
            return Response(status_code=reply.status, headers=reply.headers)
        return JSONResponse(reply.body, reply.status, headers=reply.headers)

    async def _default(self, seen: Seen) -> Reply:
        if seen.path == "/oauth/token" and seen.method == "POST":
            return self._token(seen)
        denied = self._check_bearer(seen)
        if denied is not None:
            return denied
        parts = seen.path.strip("/").split("/")
        if parts[:3] == ["notification-channel", "v1", "channels"]:
            return await self._channels(seen, parts[3:])
        if parts[:3] == ["web-calls", "v1", "devices"]:
            return await self._devices(seen, parts[3:])
        if parts[:3] == ["web-calls", "v1", "calls"]:
            return self._calls(seen, parts[3:])
        return error(404, "NOT_FOUND", f"no route {seen}")

    def _token(self, seen: Seen) -> Reply:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if seen.headers.get("authorization") != f"Basic {expected}":
            return Reply(401, {"error": "invalid_client", "error_description": "bad client"})
        grant = seen.form.get("grant_type")
        if grant == "refresh_token":
            if seen.form.get("refresh_token") not in self.refresh_tokens:
                return Reply(400, {"error": "invalid_grant", "error_description": "unknown token"})
        elif grant == "authorization_code":
            if self.codes.get(seen.form.get("code", "")) != seen.form.get("redirect_uri"):
                return Reply(400, {"error": "invalid_grant", "error_description": "bad code"})
            del self.codes[seen.form["code"]]
        else:
            return Reply(400, {"error": "unsupported_grant_type"})
        token = f"ACCESS-SECRET-{next(self._counter)}-{uuid.uuid4().hex}"
        self.issued.append(token)
        self.valid_tokens.add(token)
        reply: dict[str, Any] = {
            "access_token": token,
            "expires_in": self.expires_in,
            "scope": "webrtc.v1.read webrtc.v1.write notification-channel.v1.manage",
            "principal": "bot@example.com",
        }
        if self.rotate or grant == "authorization_code":
            new = f"REFRESH-SECRET-{uuid.uuid4().hex}"
            if grant == "refresh_token":
                self.refresh_tokens.discard(seen.form["refresh_token"])
            self.refresh_tokens.add(new)
            reply.update(refresh_token=new, token_type="Bearer")
        return Reply(200, reply)

    def _check_bearer(self, seen: Seen) -> Reply | None:
        header = seen.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return error(403, "AUTHZ_INSUFFICIENT_SCOPE", "no token")
        token = header.removeprefix("Bearer ")
        if token in self.expired_tokens:
            return error(401, "AUTHN_EXPIRED_TOKEN", "token expired")
        if token not in self.valid_tokens:
            return error(401, "AUTHN_INVALID_TOKEN", "unknown token")
        return None

    # --- channels --------------------------------------------------------------------

    async def _channels(self, seen: Seen, rest: list[str]) -> Reply:
        if seen.method == "GET" and not rest:
            items = list(self.channels.values())
            size = int(seen.query.get("pageSize", "100"))
            start = int(seen.query.get("pageMarker", "0"))
            page: dict[str, Any] = {"items": items[start : start + size], "pageSize": size}
            if start + size < len(items):
                page["nextPageMarker"] = str(start + size)
            return Reply(200, page)
        if seen.method == "POST" and len(rest) == 1:
            url = ((seen.body or {}).get("webhookChannelData") or {}).get("webhook", {}).get("url")
            if (seen.body or {}).get("channelType") != "Webhook" or not url:
                return error(
                    400,
                    "BAD_REQUEST",
                    "Invalid request",
                    constraintViolations=[
                        {"field": "webhookChannelData", "constraint": "REQUIRED"}
                    ],
                )
            await self._deliver(url, None, method="OPTIONS")
            channel_id = f"Webhook.{uuid.uuid4()}"
            channel = {
                "channelId": channel_id,
                "channelNickname": rest[0],
                "webhookChannelData": {"webhook": {"url": url}, "channelType": "Webhook"},
                "channelLifetime": seen.body.get("channelLifetime", 2147483647),
                "resourceURL": f"http://fake/channels/{rest[0]}/{channel_id}",
                "doNotDisturbAware": False,
            }
            self.channels[channel_id] = channel
            return Reply(201, channel)
        if len(rest) >= 2:
            channel = self.channels.get(rest[1])
            if channel is None or channel["channelNickname"] != rest[0]:
                return error(404, "NOT_FOUND", "no such channel")
            if len(rest) == 2 and seen.method == "GET":
                return Reply(200, channel)
            if len(rest) == 2 and seen.method == "DELETE":
                del self.channels[rest[1]]
                return Reply(204)
            if rest[2:] == ["channel-lifetime"] and seen.method in ("GET", "PUT"):
                if seen.method == "PUT":
                    channel["channelLifetime"] = (seen.body or {}).get("channelLifetime", 2592000)
                return Reply(200, {"channelLifetime": channel["channelLifetime"]})
        return error(404, "NOT_FOUND", f"no route {seen}")

    async def _deliver(self, url: str, body: Any, method: str = "POST") -> None:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                response = await http.request(method, url, json=body)
            self.deliveries.append((f"{method} {url}", response.status_code))
        except httpx.HTTPError as exc:
            self.deliveries.append((f"{method} {url}", type(exc).__name__))

    # --- devices and extensions ------------------------------------------------------

    async def _devices(self, seen: Seen, rest: list[str]) -> Reply:
        if seen.method == "POST" and not rest:
            info = (seen.body or {}).get("clientInformation") or {}
            if not info.get("deviceId"):
                return error(
                    400,
                    "BAD_REQUEST",
                    "Invalid request",
                    constraints=[{"field": "clientInformation.deviceId", "constraint": "REQUIRED"}],
                )
            if info["deviceId"] in self.devices:
                return error(409, "CONFLICT", "device exists")
            self.devices[info["deviceId"]] = seen.body
            self.extensions[info["deviceId"]] = {}
            return Reply(201, seen.body)
        device = self.devices.get(rest[0]) if rest else None
        if device is None:
            return error(404, "NOT_FOUND", "no such device")
        if len(rest) == 1 and seen.method == "GET":
            return Reply(200, device)
        if len(rest) == 1 and seen.method == "DELETE":
            del self.devices[rest[0]]
            del self.extensions[rest[0]]
            return Reply(204)
        if rest[1:] == ["extensions"]:
            return await self._extensions(seen, rest[0], device)
        return error(404, "NOT_FOUND", f"no route {seen}")

    async def _extensions(self, seen: Seen, device_id: str, device: dict[str, Any]) -> Reply:
        mine = self.extensions[device_id]
        if seen.method == "POST":
            org = (seen.body or {}).get("organizationId")
            made = []
            for item in (seen.body or {}).get("extensions", []):
                ext = {"number": item["number"], "sessionId": uuid.uuid4().hex, "resultCode": 201}
                mine[item["number"]] = {**ext, "organizationId": org}
                made.append(ext)
            reply = Reply(201, {"organizationId": org, "extensions": made})
            channel = self.channels.get(device["callbackReference"]["sessionManagementChannelId"])
            if channel is not None and self.greet:
                for ext in made:
                    greetings = {
                        "source": "WebRTC",
                        "type": "greetings",
                        "timestamp": datetime.now(UTC).isoformat(),
                        "usage": "BACKGROUND",
                        "ttl": 1800,
                        "content": {
                            "sessionId": ext["sessionId"],
                            "organizationId": org,
                            "extensionNumber": ext["number"],
                        },
                    }
                    url = channel["webhookChannelData"]["webhook"]["url"]
                    asyncio.get_running_loop().create_task(self._deliver(url, greetings))
            return reply
        number = seen.query.get("extensionNumber")
        chosen = [e for n, e in mine.items() if number in (None, n)]
        if seen.method == "GET":
            return Reply(200, {"items": chosen, "pageSize": 100})
        if seen.method == "DELETE":
            for ext in chosen:
                del mine[ext["number"]]
            return Reply(204)
        return error(404, "NOT_FOUND", f"no route {seen}")

    # --- calls -----------------------------------------------------------------------

    def _calls(self, seen: Seen, rest: list[str]) -> Reply:
        if seen.method == "POST" and not rest:
            body = seen.body or {}
            missing = [
                {"field": f, "constraint": "REQUIRED"}
                for f in ("deviceId", "organizationId", "extensionNumber", "dialString", "sdp")
                if not body.get(f)
            ]
            if missing:
                return error(400, "BAD_REQUEST", "Invalid request", constraintViolations=missing)
            call_id = uuid.uuid4().hex
            call = {
                "id": call_id,
                "legId": str(uuid.uuid4()),
                "number": body["dialString"],
                "name": "-",
                "isMuted": False,
                "isOnHold": False,
                "hasMedia": True,
                "sdp": SDP_ANSWER,
                "status": "CONNECTING",
                "timestamp": datetime.now(UTC).isoformat(),
                "actions": [],
            }
            self.calls[call_id] = call
            return Reply(201, {k: v for k, v in call.items() if k != "actions"})
        call = self.calls.get(rest[0]) if rest else None
        if call is None:
            return error(404, "NOT_FOUND", "no such call")
        if len(rest) == 1 and seen.method == "DELETE":
            call["status"] = "ENDED"
            del self.calls[rest[0]]
            return Reply(204)
        if len(rest) == 2 and seen.method == "POST":
            call["actions"].append((rest[1], seen.body))
            if rest[1] == "answer":
                call["status"] = "ANSWERED"
                return Reply(200, {"id": call["id"], "legId": call["legId"], "sdp": SDP_ANSWER})
            return Reply(204)
        return error(404, "NOT_FOUND", f"no route {seen}")
