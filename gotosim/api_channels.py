"""The Notification Channel API (``/notification-channel/v1``) of the sandbox.

Webhook channels only: create (with GoTo's OPTIONS check of the URL), list
with page markers, get, delete, and read or restart the channel lifetime.
Replies follow the seed's 201 example; ``unreachableTimestamp`` appears in
``webhookChannelData`` while the webhook is marked unreachable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gotosim.api_common import base_url, guarded, json_body, no_content, reply
from gotosim.clock import iso_offset
from gotosim.directory import MAX_LIFETIME
from gotosim.errors import INVALID, REQUIRED, bad_field
from gotosim.model import Channel
from gotosim.oauth import CHANNEL_MANAGE, CHANNEL_READ
from gotosim.simulator import Simulator
from gotosim.validate import Fields, paginate, query_int
from gotosim.webhooks import webhook_url_ok

PREFIX = "/notification-channel/v1/channels"
READ = (CHANNEL_READ, CHANNEL_MANAGE)
MANAGE = (CHANNEL_MANAGE,)


def channel_view(channel: Channel, base: str) -> dict[str, Any]:
    webhook: dict[str, Any] = {"webhook": {"url": channel.url}, "channelType": "Webhook"}
    if channel.unreachable_since is not None:
        webhook["unreachableTimestamp"] = iso_offset(channel.unreachable_since)
    return {
        "channelId": channel.channel_id,
        "channelNickname": channel.nickname,
        "webhookChannelData": webhook,
        "channelLifetime": channel.lifetime,
        "resourceURL": f"{base}{PREFIX}/{quote(channel.nickname, safe='@')}/{channel.channel_id}",
        "doNotDisturbAware": channel.do_not_disturb_aware,
    }


def _nickname(request: Request) -> str:
    nickname: str = request.path_params["nickname"]
    if len(nickname) > 255 or not nickname.strip():
        raise bad_field("channelNickname", INVALID, "the channel nickname must be 1-255 characters")
    return nickname


@guarded(*MANAGE)
async def create_channel(request: Request, sim: Simulator) -> Response:
    nickname = _nickname(request)
    fields = Fields(await json_body(request))
    kinds = [
        (path, fields.raw(path))
        for path in ("channelType", "webhookChannelData.channelType")
        if fields.raw(path) is not None
    ]
    if not kinds:
        fields.add("channelType", REQUIRED)
    for path, kind in kinds:
        if kind == "WebSockets":
            raise bad_field(
                path, INVALID, f"{path}: the sandbox serves Webhook channels only, not WebSockets"
            )
        if kind != "Webhook":
            fields.invalid(path)
    url = fields.string(
        "webhookChannelData.webhook.url", required=True, pattern=r"https?://\S+", max_length=2048
    )
    if url is not None and not webhook_url_ok(url):
        fields.invalid("webhookChannelData.webhook.url")
        url = None
    lifetime = fields.integer("channelLifetime", minimum=1, maximum=MAX_LIFETIME)
    dnd = fields.boolean("doNotDisturbAware")
    secret = fields.string("webhookChannelData.signature.sharedSecret") or fields.string(
        "signature.sharedSecret"
    )
    fields.check()
    assert url is not None
    channel = await sim.create_channel(nickname, url, lifetime, bool(dnd), secret is not None)
    return reply(channel_view(channel, base_url(request)), 201)


@guarded(*READ)
async def list_channels(request: Request, sim: Simulator) -> Response:
    size = query_int(
        request.query_params.get("pageSize"), "pageSize", default=100, minimum=1, maximum=100
    )
    channels = sorted(sim.directory.live_channels(), key=lambda c: c.created_at)
    page, marker = paginate(channels, request.query_params.get("pageMarker"), size)
    base = base_url(request)
    body: dict[str, Any] = {"items": [channel_view(c, base) for c in page], "pageSize": size}
    if marker is not None:
        body["nextPageMarker"] = marker
    return reply(body)


@guarded(*READ)
async def get_channel(request: Request, sim: Simulator) -> Response:
    channel = sim.directory.channel_at(_nickname(request), request.path_params["channel_id"])
    return reply(channel_view(channel, base_url(request)))


@guarded(*MANAGE)
async def delete_channel(request: Request, sim: Simulator) -> Response:
    sim.directory.delete_channel(_nickname(request), request.path_params["channel_id"])
    sim.changed()
    return no_content()


@guarded(*READ)
async def get_lifetime(request: Request, sim: Simulator) -> Response:
    channel = sim.directory.channel_at(_nickname(request), request.path_params["channel_id"])
    return reply({"channelLifetime": sim.directory.remaining_lifetime(channel)})


@guarded(*MANAGE)
async def put_lifetime(request: Request, sim: Simulator) -> Response:
    channel = sim.directory.channel_at(_nickname(request), request.path_params["channel_id"])
    fields = Fields(await json_body(request, optional=True))
    lifetime = fields.integer("channelLifetime", minimum=1, maximum=MAX_LIFETIME)
    fields.check()
    return reply({"channelLifetime": sim.directory.refresh_lifetime(channel, lifetime)})


routes = [
    Route(PREFIX, list_channels, methods=["GET"]),
    Route(PREFIX + "/{nickname}", create_channel, methods=["POST"]),
    Route(PREFIX + "/{nickname}/{channel_id}", get_channel, methods=["GET"]),
    Route(PREFIX + "/{nickname}/{channel_id}", delete_channel, methods=["DELETE"]),
    Route(PREFIX + "/{nickname}/{channel_id}/channel-lifetime", get_lifetime, methods=["GET"]),
    Route(PREFIX + "/{nickname}/{channel_id}/channel-lifetime", put_lifetime, methods=["PUT"]),
]
