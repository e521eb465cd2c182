"""Devices and extensions of the sandbox, and the greetings that follow a registration."""

from __future__ import annotations

from typing import Any

import pytest

from gotosim import SimConfig
from tests.gotosim.conftest import Receiver, Sandbox, SandboxFactory, keys_of, seed

DEVICES = "/web-calls/v1/devices"


def device_body(device_id: str, incoming: str, session: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = seed("device_create_request")
    body["clientInformation"]["deviceId"] = device_id
    body["callbackReference"] = {
        "incomingCallChannelId": incoming,
        "sessionManagementChannelId": session or incoming,
    }
    return body


def test_create_echoes_the_device_like_the_seed(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, _ = sandbox.channel(receiver)
    body = device_body("1234567809012111116", channel_id)
    reply = sandbox.api("POST", DEVICES, json=body)
    assert reply.status_code == 201, reply.text
    assert reply.json() == body
    assert keys_of(reply.json()) == keys_of(seed("device_created"))
    got = sandbox.api("GET", f"{DEVICES}/1234567809012111116")
    assert (got.status_code, got.json()) == (200, body)


def test_duplicate_device_id_is_a_conflict(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, _ = sandbox.channel(receiver)
    assert sandbox.api("POST", DEVICES, json=device_body("dev-1", channel_id)).status_code == 201
    again = sandbox.api("POST", DEVICES, json=device_body("dev-1", channel_id))
    assert again.status_code == 409
    assert again.json()["errorCode"] == "CONFLICT"
    assert "dev-1" in again.json()["message"]


def test_patch_updates_and_validates(sandbox: Sandbox, receiver: Receiver) -> None:
    _, first, _ = sandbox.channel(receiver)
    _, second, _ = sandbox.channel(receiver)
    sandbox.api("POST", DEVICES, json=device_body("dev-2", first))
    patched = sandbox.api(
        "PATCH",
        f"{DEVICES}/dev-2",
        json={
            "clientInformation": {"appVersion": "9.9"},
            "callbackReference": {"incomingCallChannelId": second},
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["clientInformation"]["appVersion"] == "9.9"
    assert patched.json()["clientInformation"]["appId"] == "INTEGRATOR_APP_ID"
    assert patched.json()["callbackReference"] == {
        "incomingCallChannelId": second,
        "sessionManagementChannelId": first,
    }
    bad = sandbox.api(
        "PATCH",
        f"{DEVICES}/dev-2",
        json={
            "clientInformation": {"deviceId": "other"},
            "callbackReference": {"sessionManagementChannelId": "Webhook.nope"},
        },
    )
    assert bad.status_code == 400
    assert bad.json()["constraintViolations"] == [
        {"field": "clientInformation.deviceId", "constraint": "INVALID"},
        {"field": "callbackReference.sessionManagementChannelId", "constraint": "INVALID"},
    ]
    assert sandbox.api("PATCH", f"{DEVICES}/unknown", json={}).status_code == 404


def test_delete_device(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, _ = sandbox.channel(receiver)
    sandbox.api("POST", DEVICES, json=device_body("dev-3", channel_id))
    assert sandbox.api("DELETE", f"{DEVICES}/dev-3").status_code == 204
    missing = sandbox.api("GET", f"{DEVICES}/dev-3")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "NOT_FOUND"
    assert sandbox.api("DELETE", f"{DEVICES}/dev-3").status_code == 404


@pytest.mark.parametrize(
    ("body", "violations"),
    [
        (
            {},
            [
                ("clientInformation", "REQUIRED"),
                ("clientInformation.deviceId", "REQUIRED"),
                ("callbackReference", "REQUIRED"),
                ("callbackReference.incomingCallChannelId", "REQUIRED"),
                ("callbackReference.sessionManagementChannelId", "REQUIRED"),
            ],
        ),
        (
            {
                "clientInformation": {"deviceId": "has/slash", "appId": 5},
                "callbackReference": {
                    "incomingCallChannelId": "Webhook.nope",
                    "sessionManagementChannelId": ["x"],
                },
            },
            [
                ("clientInformation.deviceId", "INVALID"),
                ("clientInformation.appId", "INVALID"),
                ("callbackReference.incomingCallChannelId", "INVALID"),
                ("callbackReference.sessionManagementChannelId", "INVALID"),
            ],
        ),
        (
            {"clientInformation": "x", "callbackReference": 3},
            [("clientInformation", "INVALID"), ("callbackReference", "INVALID")],
        ),
    ],
)
def test_create_names_each_bad_field(
    sandbox: Sandbox, body: dict[str, Any], violations: list[tuple[str, str]]
) -> None:
    reply = sandbox.api("POST", DEVICES, json=body)
    assert reply.status_code == 400, reply.text
    got = [(v["field"], v["constraint"]) for v in reply.json()["constraintViolations"]]
    assert got == violations


def test_extensions_are_registered_and_greeted(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = make_sandbox(
        SimConfig(extensions=("0523", "1000"), organization_id="INTEGRATOR_ORG_ID")
    )
    _, incoming, incoming_path = sandbox.channel(receiver)
    _, session, session_path = sandbox.channel(receiver)
    sandbox.api("POST", DEVICES, json=device_body("dev-4", incoming, session))
    request = seed("extensions_create_request")
    request["extensions"].append({"number": "7777"})
    reply = sandbox.api("POST", f"{DEVICES}/dev-4/extensions", json=request)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert keys_of(body["extensions"][0]) == keys_of(seed("extensions_created")["extensions"][0])
    assert body["organizationId"] == "INTEGRATOR_ORG_ID"
    registered, unknown = body["extensions"]
    assert (registered["number"], registered["resultCode"]) == ("0523", 201)
    assert unknown == {"number": "7777", "resultCode": 404}
    (greeting,) = receiver.wait_for(session_path, 1)
    envelope = greeting.json()
    assert keys_of(envelope) == keys_of(seed("greetings"))
    assert envelope["type"] == "greetings"
    assert (envelope["usage"], envelope["ttl"]) == ("BACKGROUND", "120")
    assert envelope["content"] == {
        "sessionId": registered["sessionId"],
        "organizationId": "INTEGRATOR_ORG_ID",
        "extensionNumber": "0523",
    }
    assert receiver.received(incoming_path) == []
    items = sandbox.wait("notification", type="greetings", outcome="delivered")
    assert len(items) == 1
    again = sandbox.api(
        "POST", f"{DEVICES}/dev-4/extensions", json=seed("extensions_create_request")
    )
    assert again.json()["extensions"] == [
        {"number": "0523", "sessionId": registered["sessionId"], "resultCode": 200}
    ]
    receiver.wait_for(session_path, 2)


def test_extension_requests_are_validated(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    where = f"{DEVICES}/{provisioned.device_id}/extensions"
    wrong_org = sandbox.api(
        "POST", where, json={"organizationId": "x", "extensions": [{"number": "1000"}]}
    )
    assert wrong_org.status_code == 403
    assert wrong_org.json()["errorCode"] == "UNAUTHORIZED"
    too_many = {"organizationId": sandbox.org, "extensions": [{"number": "1000"}] * 21}
    assert sandbox.api("POST", where, json=too_many).json()["constraintViolations"] == [
        {"field": "extensions", "constraint": "INVALID"}
    ]
    bad_items = {"organizationId": sandbox.org, "extensions": [{}, "1000", {"number": "12a"}]}
    assert sandbox.api("POST", where, json=bad_items).json()["constraintViolations"] == [
        {"field": "extensions.0.number", "constraint": "REQUIRED"},
        {"field": "extensions.1", "constraint": "INVALID"},
        {"field": "extensions.2.number", "constraint": "INVALID"},
    ]
    empty = sandbox.api("POST", where, json={"extensions": []})
    assert empty.json()["constraintViolations"] == [
        {"field": "organizationId", "constraint": "REQUIRED"},
        {"field": "extensions", "constraint": "REQUIRED"},
    ]
    unknown_device = sandbox.api(
        "POST", f"{DEVICES}/nope/extensions", json={"organizationId": sandbox.org, "extensions": []}
    )
    assert unknown_device.status_code == 404


def test_list_and_delete_extensions(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver, extensions=("1000", "1001"))
    where = f"{DEVICES}/{provisioned.device_id}/extensions"
    first = sandbox.api("GET", where, params={"pageSize": 1}).json()
    assert first["items"] == [{"number": "1000", "sessionId": provisioned.sessions["1000"]}]
    assert first["organizationId"] == sandbox.org
    second = sandbox.api(
        "GET", where, params={"pageSize": 1, "pageMarker": first["nextPageMarker"]}
    )
    assert [e["number"] for e in second.json()["items"]] == ["1001"]
    assert "nextPageMarker" not in second.json()
    only = sandbox.api("GET", where, params={"extensionNumber": "1001"}).json()["items"]
    assert [e["number"] for e in only] == ["1001"]
    assert sandbox.api("GET", where, params={"organizationId": "other"}).status_code == 403
    gone = sandbox.api(
        "DELETE", where, params={"organizationId": sandbox.org, "extensionNumber": "1000"}
    )
    assert gone.status_code == 204
    assert [e["number"] for e in sandbox.api("GET", where).json()["items"]] == ["1001"]
    refused = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+15550001111"})
    assert refused.status_code == 409
    assert "1000" in refused.json()["message"]
    assert sandbox.api("DELETE", where).status_code == 204
    assert sandbox.api("GET", where).json()["items"] == []


def test_deleting_a_device_ends_its_calls(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    placed = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+15550001111"})
    call_id = placed.json()["id"]
    sandbox.wait("notification", type="incoming", callId=call_id, outcome="delivered")
    assert sandbox.api("DELETE", f"{DEVICES}/{provisioned.device_id}").status_code == 204
    call = sandbox.call(call_id)
    assert (call["state"], call["reasonCode"]) == ("ENDED", "UNREGISTERED")
