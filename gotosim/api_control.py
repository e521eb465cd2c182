"""The control API under ``/_sim``: drive and inspect the sandbox (no bearer token).

Credentials and settings, minted and expired tokens, the manual clock, inbound
calls and far-end hang-ups, dialled-number behaviour, faults, and read-outs
of calls (with event logs), requests, notifications and resources.
``GET /_sim/wait`` blocks until something has happened, so tests need no
polling loops. Errors use the GoTo error body. docs/sandbox.md lists it all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gotosim.api_common import base_url, control, json_body, no_content, reply
from gotosim.calls import NumberBehaviour
from gotosim.clock import ManualClock, iso_offset
from gotosim.errors import BAD_REQUEST, INVALID, TIMEOUT, ApiError, conflict, error_body, not_found
from gotosim.faults import parse_fault
from gotosim.model import BEHAVIOURS, ROTATIONS, WEBHOOK_CHECKS, Behaviour, SimCall, SimConfig
from gotosim.oauth import ALL_SCOPES
from gotosim.simulator import Simulator
from gotosim.validate import Fields

P = "/_sim"
DIAL = r"\+?[0-9*#]{1,32}"


def sim_call_view(call: SimCall, *, sdp: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": call.id,
        "direction": call.direction.value,
        "state": call.state.value,
        "number": call.number,
        "name": call.name,
        "organizationId": call.organization_id,
        "extensionNumber": call.extension_number,
        "deviceId": call.device_id,
        "sessionId": call.session_id,
        "inCallChannelId": call.in_call_channel_id,
        "legId": call.leg_id,
        "muted": call.muted,
        "onHold": call.on_hold,
        "createdAt": iso_offset(call.created_at),
        "answeredAt": iso_offset(call.answered_at) if call.answered_at else None,
        "endedAt": iso_offset(call.ended_at) if call.ended_at else None,
        "reasonCode": call.reason_code,
        "outcome": call.outcome,
        "dtmf": list(call.dtmf),
        "transferTarget": call.transfer_target,
        "script": call.script,
        "events": [e.as_json() for e in call.events],
    }
    if sdp:
        view["offerSdp"] = call.offer_sdp
        view["answerSdp"] = call.answer_sdp
    return {k: v for k, v in view.items() if v is not None}


def settings_view(config: SimConfig) -> dict[str, Any]:
    return {
        "accessTokenLifetime": config.access_token_lifetime,
        "refreshTokenLifetime": config.refresh_token_lifetime,
        "refreshRotation": config.refresh_rotation,
        "ringTimeout": config.ring_timeout,
        "webhookCheck": config.webhook_check,
        "webhookTimeout": config.webhook_timeout,
        "webhookRetryDelay": config.webhook_retry_delay,
        "defaultBehaviour": config.default_behaviour,
        "extensions": list(config.extensions),
        "principal": config.principal,
    }


# -- credentials, settings, tokens, clock ------------------------------------------------


@control
async def credentials(request: Request, sim: Simulator) -> Response:
    return reply(sim.credentials(base_url(request)))


@control
async def get_settings(request: Request, sim: Simulator) -> Response:
    return reply(settings_view(sim.config))


@control
async def put_settings(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request))
    changes: dict[str, Any] = {}
    for key, name in (
        ("accessTokenLifetime", "access_token_lifetime"),
        ("refreshTokenLifetime", "refresh_token_lifetime"),
    ):
        value = fields.integer(key, minimum=1, maximum=100_000_000)
        if value is not None:
            changes[name] = value
    for key, name, top in (
        ("ringTimeout", "ring_timeout", 86_400.0),
        ("webhookTimeout", "webhook_timeout", 120.0),
        ("webhookRetryDelay", "webhook_retry_delay", 60.0),
    ):
        number = fields.number(key, minimum=0.0, maximum=top)
        if number is not None:
            changes[name] = number
    for key, name, choices in (
        ("refreshRotation", "refresh_rotation", ROTATIONS),
        ("webhookCheck", "webhook_check", WEBHOOK_CHECKS),
        ("defaultBehaviour", "default_behaviour", BEHAVIOURS),
    ):
        text = fields.string(key, choices=choices)
        if text is not None:
            changes[name] = text
    extensions = fields.array("extensions", min_items=1, max_items=1000)
    if extensions is not None:
        for index in range(len(extensions)):
            fields.string(f"extensions.{index}", required=True, pattern=r"[0-9]{1,16}")
        changes["extensions"] = tuple(str(e) for e in extensions)
    fields.check()
    config = sim.update_config(**changes)
    sim.deliveries.timeout = config.webhook_timeout
    sim.deliveries.retry_delay = config.webhook_retry_delay
    return reply(settings_view(config))


@control
async def mint_token(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request, optional=True))
    scopes = fields.array("scopes", max_items=20)
    if scopes is not None:
        for index, scope in enumerate(scopes):
            if scope not in ALL_SCOPES:
                fields.invalid(f"scopes.{index}")
    lifetime = fields.integer("lifetime", minimum=0, maximum=100_000_000)
    refresh = fields.boolean("refresh")
    fields.check()
    granted = frozenset(scopes) if scopes is not None else frozenset(ALL_SCOPES)
    access = sim.tokens.new_access(granted, lifetime)
    body: dict[str, Any] = {
        "access_token": access.value,
        "token_type": "Bearer",
        "expires_in": int(access.expires_at - access.issued_at),
        "scope": " ".join(sorted(granted)),
        "principal": access.principal,
    }
    if refresh:
        code = sim.tokens.create_code(granted, None)
        body["refresh_token"] = sim.tokens.exchange_code(code, None)["refresh_token"]
    return reply(body, 201)


@control
async def expire_tokens(request: Request, sim: Simulator) -> Response:
    return reply({"expired": sim.tokens.expire_all_access()})


@control
async def advance_clock(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request))
    seconds = fields.number("seconds", required=True, minimum=0.0, maximum=1e9)
    fields.check()
    if not isinstance(sim.clock, ManualClock):
        raise conflict("the sandbox runs on the system clock; start it with a ManualClock")
    sim.clock.advance(seconds or 0.0)
    sim.changed()
    return reply({"time": iso_offset(sim.clock.time())})


# -- state read-outs -----------------------------------------------------------------------


@control
async def state(request: Request, sim: Simulator) -> Response:
    directory = sim.directory
    channels = []
    for channel in directory.live_channels():
        item: dict[str, Any] = {
            "channelId": channel.channel_id,
            "nickname": channel.nickname,
            "url": channel.url,
            "lifetime": channel.lifetime,
            "expiresAt": iso_offset(min(channel.expires_at, 32_503_680_000.0)),
        }
        if channel.unreachable_since is not None:
            item["unreachableSince"] = iso_offset(channel.unreachable_since)
        if channel.check is not None:
            item["optionsCheck"] = channel.check.as_json()
        channels.append(item)
    devices = [
        {
            "deviceId": d.device_id,
            "incomingCallChannelId": d.incoming_channel_id,
            "sessionManagementChannelId": d.session_channel_id,
            "extensions": [
                {"number": r.number, "sessionId": r.session_id}
                for r in directory.registrations_of(d.device_id)
            ],
        }
        for d in directory.devices.values()
    ]
    return reply(
        {
            "organizationId": directory.organization_id,
            "extensions": list(directory.extensions),
            "channels": channels,
            "devices": devices,
            "failedWebhookChecks": [c.as_json() for c in sim.check_failures],
            "numbers": {n: b.as_json() for n, b in sim.numbers.items()},
        }
    )


def _match_calls(sim: Simulator, q: QueryParams) -> list[dict[str, Any]]:
    out = []
    for call in sim.calls.calls.values():
        if q.get("callId") not in (None, call.id) or q.get("state") not in (None, call.state):
            continue
        if q.get("direction") not in (None, call.direction):
            continue
        if q.get("extension") not in (None, call.extension_number):
            continue
        if q.get("number") not in (None, call.number):
            continue
        out.append(sim_call_view(call))
    return out


def _match_notifications(sim: Simulator, q: QueryParams) -> list[dict[str, Any]]:
    out = []
    for record in sim.deliveries.records:
        if q.get("type") not in (None, record.type) or q.get("callId") not in (
            None,
            record.call_id,
        ):
            continue
        if q.get("channelId") not in (None, record.channel_id):
            continue
        if q.get("outcome") not in (None, record.outcome):
            continue
        out.append(record.as_json())
    return out


def _match_requests(sim: Simulator, q: QueryParams) -> list[dict[str, Any]]:
    out = []
    for record in sim.requests.records:
        if q.get("method") not in (None, record.method):
            continue
        if q.get("path") is not None and not record.path.startswith(q["path"]):
            continue
        if q.get("status") not in (None, str(record.status)) or record.status == 0:
            continue
        out.append(record.as_json())
    return out


MATCHERS: dict[str, Callable[[Simulator, QueryParams], list[dict[str, Any]]]] = {
    "call": _match_calls,
    "notification": _match_notifications,
    "request": _match_requests,
}


@control
async def list_calls(request: Request, sim: Simulator) -> Response:
    return reply({"items": _match_calls(sim, request.query_params)})


@control
async def get_call(request: Request, sim: Simulator) -> Response:
    return reply(sim_call_view(sim.calls.get(request.path_params["call_id"]), sdp=True))


@control
async def get_heard(request: Request, sim: Simulator) -> Response:
    """What the caller of a call heard (real far end only); ``?energy=0`` drops the envelope."""
    call_id = request.path_params["call_id"]
    sim.calls.get(call_id)  # 404 for an unknown call
    heard = getattr(sim.far_end, "heard", None)
    if heard is None:
        raise ApiError(
            404, "NOT_FOUND", "this sandbox's far end records nothing (--far-end static)"
        )
    try:
        report = heard(call_id).as_json()
    except KeyError:
        raise not_found("far-end leg of call", call_id) from None
    if request.query_params.get("energy", "1") == "0":
        report.pop("energy", None)
    return reply(report)


@control
async def list_requests(request: Request, sim: Simulator) -> Response:
    return reply({"items": _match_requests(sim, request.query_params)})


@control
async def list_notifications(request: Request, sim: Simulator) -> Response:
    return reply({"items": _match_notifications(sim, request.query_params)})


@control
async def wait(request: Request, sim: Simulator) -> Response:
    """Block until ``count`` items of ``kind`` match the other query parameters."""
    q = request.query_params
    kind = q.get("kind", "")
    matcher = MATCHERS.get(kind)
    if matcher is None:
        raise ApiError(400, BAD_REQUEST, "kind must be call, notification or request")
    try:
        timeout = float(q.get("timeout", "10"))
        count = int(q.get("count", "1"))
    except ValueError:
        timeout = count = -1
    if not 0 <= timeout <= 120 or not 1 <= count <= 100_000:
        raise ApiError(
            400, BAD_REQUEST, "timeout must be 0-120 seconds and count 1-100000 (whole number)"
        )

    def probe() -> list[dict[str, Any]] | None:
        found = matcher(sim, q)
        return found if len(found) >= count else None

    found = await sim.wait_for(probe, timeout)
    if found is None:
        seen = matcher(sim, QueryParams())[-20:]
        body = error_body(
            TIMEOUT, f"timed out after {timeout}s waiting for {count} {kind}(s) matching {q}"
        )
        body["seen"] = seen
        return reply(body, 408)
    return reply({"items": found})


# -- calls, numbers, faults, reset ---------------------------------------------------------


@control
async def place_call(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request))
    extension = fields.string("extension", required=True, pattern=r"[0-9]{1,16}")
    number = fields.string("number", required=True, pattern=DIAL)
    name = fields.string("name", max_length=200)
    ring_timeout = fields.number("ringTimeout", minimum=0.0, maximum=86_400.0)
    fields.check()
    assert extension is not None and number is not None
    call = sim.place_call(extension, number, name or "", fields.raw("script"), ring_timeout)
    return reply(sim_call_view(call), 201)


@control
async def hangup_call(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request, optional=True))
    reason = fields.string("reasonCode", pattern=r"[A-Z_]{1,40}")
    fields.check()
    call = sim.calls.far_end_hangup(request.path_params["call_id"], reason)
    return reply(sim_call_view(call))


@control
async def list_numbers(request: Request, sim: Simulator) -> Response:
    return reply({"items": [{"number": n, **b.as_json()} for n, b in sim.numbers.items()]})


@control
async def put_number(request: Request, sim: Simulator) -> Response:
    number: str = request.path_params["number"]
    fields = Fields(await json_body(request))
    key = (
        "behavior"
        if fields.present("behavior") and not fields.present("behaviour")
        else "behaviour"
    )
    behaviour = fields.string(key, required=True, choices=BEHAVIOURS)
    after_key = "after_seconds" if fields.present("after_seconds") else "afterSeconds"
    after = fields.number(after_key, minimum=0.0, maximum=86_400.0)
    if not re.fullmatch(DIAL, number):
        fields.add("number", INVALID)
    fields.check()
    assert behaviour is not None
    plan = NumberBehaviour(cast(Behaviour, behaviour), after, fields.raw("script"))
    sim.numbers[number] = plan
    return reply({"number": number, **plan.as_json()})


@control
async def delete_number(request: Request, sim: Simulator) -> Response:
    if sim.numbers.pop(request.path_params["number"], None) is None:
        raise not_found("number behaviour", request.path_params["number"])
    return no_content()


@control
async def list_faults(request: Request, sim: Simulator) -> Response:
    return reply({"items": [f.as_json() for f in sim.faults.list()]})


@control
async def add_fault(request: Request, sim: Simulator) -> Response:
    fault = sim.faults.add(parse_fault(await json_body(request)))
    return reply(fault.as_json(), 201)


@control
async def clear_faults(request: Request, sim: Simulator) -> Response:
    sim.faults.clear()
    return no_content()


@control
async def delete_fault(request: Request, sim: Simulator) -> Response:
    if not sim.faults.remove(request.path_params["fault_id"]):
        raise not_found("fault", request.path_params["fault_id"])
    return no_content()


@control
async def reset(request: Request, sim: Simulator) -> Response:
    await sim.reset()
    return no_content()


routes = [
    Route(P + "/credentials", credentials, methods=["GET"]),
    Route(P + "/settings", get_settings, methods=["GET"]),
    Route(P + "/settings", put_settings, methods=["PUT"]),
    Route(P + "/tokens", mint_token, methods=["POST"]),
    Route(P + "/tokens/expire", expire_tokens, methods=["POST"]),
    Route(P + "/clock/advance", advance_clock, methods=["POST"]),
    Route(P + "/state", state, methods=["GET"]),
    Route(P + "/calls", list_calls, methods=["GET"]),
    Route(P + "/calls", place_call, methods=["POST"]),
    Route(P + "/calls/{call_id}", get_call, methods=["GET"]),
    Route(P + "/calls/{call_id}/hangup", hangup_call, methods=["POST"]),
    Route(P + "/calls/{call_id}/heard", get_heard, methods=["GET"]),
    Route(P + "/numbers", list_numbers, methods=["GET"]),
    Route(P + "/numbers/{number}", put_number, methods=["PUT"]),
    Route(P + "/numbers/{number}", delete_number, methods=["DELETE"]),
    Route(P + "/faults", list_faults, methods=["GET"]),
    Route(P + "/faults", add_fault, methods=["POST"]),
    Route(P + "/faults", clear_faults, methods=["DELETE"]),
    Route(P + "/faults/{fault_id}", delete_fault, methods=["DELETE"]),
    Route(P + "/requests", list_requests, methods=["GET"]),
    Route(P + "/notifications", list_notifications, methods=["GET"]),
    Route(P + "/wait", wait, methods=["GET"]),
    Route(P + "/reset", reset, methods=["POST"]),
]
