"""The Devices and Calls API (``/web-calls/v1``) of the sandbox.

Devices (create, get, patch, delete), their extensions (create, list,
delete), and calls (make, get, list, hang up, answer, reject, ringing, hold,
unhold, mute, unmute, dtmf, blind transfer, offer). Handlers validate the
request and name every bad field; the behaviour is in
:class:`~gotosim.simulator.Simulator` and :class:`~gotosim.calls.Calls`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gotosim.api_common import Endpoint, guarded, json_body, no_content, reply
from gotosim.calls import REJECT_ACTIONS
from gotosim.clock import iso_zulu
from gotosim.model import Device, SimCall
from gotosim.oauth import WEBRTC_READ, WEBRTC_WRITE
from gotosim.simulator import Simulator
from gotosim.validate import Fields, paginate, query_int

PREFIX = "/web-calls/v1"
READ = (WEBRTC_READ, WEBRTC_WRITE)
WRITE = (WEBRTC_WRITE,)

DEVICE_ID = r"[A-Za-z0-9._~:@-]{1,128}"
EXTENSION = r"[0-9]{1,16}"
DIAL_STRING = r"\+?[0-9*#]{1,32}"
TONES = r"[0-9*#A-Da-d]{1,64}"
MAX_SDP = 65_536
MAX_EXTENSIONS = 20


def device_view(device: Device) -> dict[str, Any]:
    client: dict[str, Any] = {"deviceId": device.device_id}
    for key, value in (
        ("appId", device.app_id),
        ("appVersion", device.app_version),
        ("platform", device.platform),
    ):
        if value is not None:
            client[key] = value
    return {
        "clientInformation": client,
        "callbackReference": {
            "incomingCallChannelId": device.incoming_channel_id,
            "sessionManagementChannelId": device.session_channel_id,
        },
    }


def call_view(call: SimCall) -> dict[str, Any]:
    """A call as make-call replies (the seed's 201 example)."""
    view: dict[str, Any] = {
        "id": call.id,
        "number": call.number,
        "name": call.name,
        "isMuted": call.muted,
        "isOnHold": call.on_hold,
        "hasMedia": call.answer_sdp is not None and not call.ended,
        "ringingInMedia": False,
        "sdp": call.answer_sdp,
        "status": call.state.value,
        "timestamp": iso_zulu(call.created_at),
        "sipCallId": call.sip_call_id,
        "legId": call.leg_id,
    }
    return {k: v for k, v in view.items() if v is not None}


def _sdp(fields: Fields, path: str = "sdp") -> str | None:
    sdp = fields.string(path, required=True, max_length=MAX_SDP)
    if sdp is not None and (not sdp.lstrip().startswith("v=0") or "m=audio" not in sdp):
        fields.invalid(path)
        return None
    return sdp


def _channel_ref(sim: Simulator, fields: Fields, path: str, required: bool) -> str | None:
    channel_id = fields.string(path, required=required, max_length=200)
    if channel_id is not None and sim.directory.channel(channel_id) is None:
        fields.invalid(path)
        return None
    return channel_id


# -- devices ---------------------------------------------------------------------------


@guarded(*WRITE)
async def create_device(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request))
    fields.obj("clientInformation", required=True)
    device_id = fields.string("clientInformation.deviceId", required=True, pattern=DEVICE_ID)
    app_id = fields.string("clientInformation.appId", max_length=200)
    app_version = fields.string("clientInformation.appVersion", max_length=100)
    platform = fields.string("clientInformation.platform", max_length=100)
    fields.obj("callbackReference", required=True)
    incoming = _channel_ref(sim, fields, "callbackReference.incomingCallChannelId", True)
    session = _channel_ref(sim, fields, "callbackReference.sessionManagementChannelId", True)
    fields.check()
    assert device_id is not None and incoming is not None and session is not None
    device = sim.directory.add_device(device_id, app_id, app_version, platform, incoming, session)
    sim.changed()
    return reply(device_view(device), 201)


@guarded(*READ)
async def get_device(request: Request, sim: Simulator) -> Response:
    return reply(device_view(sim.directory.device(request.path_params["device_id"])))


@guarded(*WRITE)
async def patch_device(request: Request, sim: Simulator) -> Response:
    device = sim.directory.device(request.path_params["device_id"])
    fields = Fields(await json_body(request))
    fields.obj("clientInformation")
    fields.obj("callbackReference")
    device_id = fields.string("clientInformation.deviceId", pattern=DEVICE_ID)
    if device_id is not None and device_id != device.device_id:
        fields.invalid("clientInformation.deviceId")
    app_id = fields.string("clientInformation.appId", max_length=200)
    app_version = fields.string("clientInformation.appVersion", max_length=100)
    platform = fields.string("clientInformation.platform", max_length=100)
    incoming = _channel_ref(sim, fields, "callbackReference.incomingCallChannelId", False)
    session = _channel_ref(sim, fields, "callbackReference.sessionManagementChannelId", False)
    fields.check()
    device.app_id = app_id if app_id is not None else device.app_id
    device.app_version = app_version if app_version is not None else device.app_version
    device.platform = platform if platform is not None else device.platform
    device.incoming_channel_id = incoming or device.incoming_channel_id
    device.session_channel_id = session or device.session_channel_id
    sim.changed()
    return reply(device_view(device))


@guarded(*WRITE)
async def delete_device(request: Request, sim: Simulator) -> Response:
    sim.delete_device(request.path_params["device_id"])
    return no_content()


# -- extensions ------------------------------------------------------------------------


@guarded(*WRITE)
async def create_extensions(request: Request, sim: Simulator) -> Response:
    device_id: str = request.path_params["device_id"]
    sim.directory.device(device_id)
    fields = Fields(await json_body(request))
    organization_id = fields.string("organizationId", required=True, max_length=200)
    items = fields.array("extensions", required=True, min_items=1, max_items=MAX_EXTENSIONS) or []
    numbers: list[tuple[str, str | None]] = []
    for index in range(len(items)):
        path = f"extensions.{index}"
        if not isinstance(items[index], dict):
            fields.invalid(path)
            continue
        item = Fields(items[index])
        number = item.string("number", required=True, pattern=EXTENSION)
        key = item.string("impersonateeUserKey", max_length=200)
        for violation in item.violations:
            fields.add(f"{path}.{violation.field}", violation.constraint)
        if number is not None:
            numbers.append((number, key))
    fields.check()
    assert organization_id is not None
    results = sim.add_extensions(device_id, organization_id, numbers)
    extensions: list[dict[str, Any]] = []
    for number, code, registration in results:
        entry: dict[str, Any] = {"number": number}
        if registration is not None:
            entry["sessionId"] = registration.session_id
        entry["resultCode"] = code
        extensions.append(entry)
    return reply({"organizationId": organization_id, "extensions": extensions}, 201)


@guarded(*READ)
async def list_extensions(request: Request, sim: Simulator) -> Response:
    device_id: str = request.path_params["device_id"]
    sim.directory.device(device_id)
    params = request.query_params
    organization_id = params.get("organizationId")
    if organization_id is not None:
        sim.directory.check_organization(organization_id)
    size = query_int(params.get("pageSize"), "pageSize", default=100, minimum=1, maximum=100)
    registrations = sim.directory.registrations_of(device_id, params.get("extensionNumber"))
    page, marker = paginate(registrations, params.get("pageMarker"), size)
    body: dict[str, Any] = {
        "organizationId": sim.directory.organization_id,
        "items": [{"number": r.number, "sessionId": r.session_id} for r in page],
        "pageSize": size,
    }
    if marker is not None:
        body["nextPageMarker"] = marker
    return reply(body)


@guarded(*WRITE)
async def delete_extensions(request: Request, sim: Simulator) -> Response:
    params = request.query_params
    sim.delete_extensions(
        request.path_params["device_id"],
        params.get("organizationId"),
        params.get("extensionNumber"),
    )
    return no_content()


# -- calls -----------------------------------------------------------------------------


@guarded(*WRITE)
async def make_call(request: Request, sim: Simulator) -> Response:
    fields = Fields(await json_body(request))
    device_id = fields.string("deviceId", required=True, pattern=DEVICE_ID)
    organization_id = fields.string("organizationId", required=True, max_length=200)
    extension = fields.string("extensionNumber", required=True, pattern=EXTENSION)
    dial_string = fields.string("dialString", required=True, pattern=DIAL_STRING)
    channel_id = fields.string("inCallChannelId", required=True, max_length=200)
    sdp = _sdp(fields)
    fields.check()
    assert device_id and organization_id and extension and dial_string and channel_id and sdp
    call = await sim.calls.make_call(
        device_id=device_id,
        organization_id=organization_id,
        extension_number=extension,
        dial_string=dial_string,
        in_call_channel_id=channel_id,
        sdp=sdp,
    )
    sim.changed()
    return reply(call_view(call), 201)


@guarded(*READ)
async def list_calls(request: Request, sim: Simulator) -> Response:
    return reply({"items": [call_view(c) for c in sim.calls.active()]})


@guarded(*READ)
async def get_call(request: Request, sim: Simulator) -> Response:
    return reply(call_view(sim.calls.get(request.path_params["call_id"])))


@guarded(*WRITE)
async def hang_up(request: Request, sim: Simulator) -> Response:
    sim.calls.hangup(request.path_params["call_id"])
    return no_content()


@guarded(*WRITE)
async def answer(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request))
    sdp = _sdp(fields)
    channel_id = fields.string("inCallChannelId", required=True, max_length=200)
    fields.check()
    assert sdp is not None and channel_id is not None
    call = await sim.calls.answer(call_id, sdp, channel_id)
    return reply(call_view(call))


@guarded(*WRITE)
async def reject(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request, optional=True))
    action = fields.string("action", choices=REJECT_ACTIONS)
    destination = fields.string("destination", pattern=DIAL_STRING)
    fields.check()
    sim.calls.reject(call_id, action, destination)
    return no_content()


@guarded(*WRITE)
async def ringing(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request, optional=True))
    channel_id = fields.string("inCallChannelId", max_length=200)
    fields.string("incomingNotificationTimestamp", max_length=100)
    fields.check()
    sim.calls.ringing(call_id, channel_id)
    return no_content()


def _toggle(action: str) -> Endpoint:
    @guarded(*WRITE)
    async def endpoint(request: Request, sim: Simulator) -> Response:
        call_id: str = request.path_params["call_id"]
        if action in ("hold", "unhold"):
            sim.calls.set_hold(call_id, action == "hold")
        else:
            sim.calls.set_mute(call_id, action == "mute")
        return no_content()

    return endpoint


@guarded(*WRITE)
async def dtmf(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request))
    tone = fields.string("tone", required=True, pattern=TONES)
    fields.check()
    assert tone is not None
    sim.calls.dtmf(call_id, tone)
    return no_content()


@guarded(*WRITE)
async def blind_transfer(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request))
    dial_string = fields.string("dialString", required=True, pattern=DIAL_STRING)
    fields.check()
    assert dial_string is not None
    sim.calls.blind_transfer(call_id, dial_string)
    return no_content()


@guarded(*WRITE)
async def offer(request: Request, sim: Simulator) -> Response:
    call_id: str = request.path_params["call_id"]
    sim.calls.get(call_id)
    fields = Fields(await json_body(request))
    sdp = _sdp(fields)
    fields.check()
    assert sdp is not None
    return reply(call_view(await sim.calls.offer(call_id, sdp)))


CALL = PREFIX + "/calls/{call_id}"

routes = [
    Route(PREFIX + "/devices", create_device, methods=["POST"]),
    Route(PREFIX + "/devices/{device_id}", get_device, methods=["GET"]),
    Route(PREFIX + "/devices/{device_id}", patch_device, methods=["PATCH"]),
    Route(PREFIX + "/devices/{device_id}", delete_device, methods=["DELETE"]),
    Route(PREFIX + "/devices/{device_id}/extensions", create_extensions, methods=["POST"]),
    Route(PREFIX + "/devices/{device_id}/extensions", list_extensions, methods=["GET"]),
    Route(PREFIX + "/devices/{device_id}/extensions", delete_extensions, methods=["DELETE"]),
    Route(PREFIX + "/calls", make_call, methods=["POST"]),
    Route(PREFIX + "/calls", list_calls, methods=["GET"]),
    Route(CALL, get_call, methods=["GET"]),
    Route(CALL, hang_up, methods=["DELETE"]),
    Route(CALL + "/answer", answer, methods=["POST"]),
    Route(CALL + "/reject", reject, methods=["POST"]),
    Route(CALL + "/ringing", ringing, methods=["POST"]),
    Route(CALL + "/hold", _toggle("hold"), methods=["POST"]),
    Route(CALL + "/unhold", _toggle("unhold"), methods=["POST"]),
    Route(CALL + "/mute", _toggle("mute"), methods=["POST"]),
    Route(CALL + "/unmute", _toggle("unmute"), methods=["POST"]),
    Route(CALL + "/dtmf", dtmf, methods=["POST"]),
    Route(CALL + "/blind-transfer", blind_transfer, methods=["POST"]),
    Route(CALL + "/offer", offer, methods=["PUT"]),
]
