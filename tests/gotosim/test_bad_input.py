"""Malformed input gets a GoTo error body, never a 500 or a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gotosim import SimCall, Simulator
from gotosim.media import FarEnd
from tests.gotosim.conftest import OFFER, Receiver, Sandbox, SandboxFactory

BODIES: list[bytes] = [
    b"",
    b"{",
    b'{"a":',
    b"[]",
    b"null",
    b'"text"',
    b"12",
    b"true",
    b"\xff\xfe\x00garbage",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"sdp": "' + b"x" * 70_000 + b'"}',
    json.dumps({"a": {"b": {"c": [1, 2, {"d": None}]}}}).encode(),
]

WRONG_TYPES: list[Any] = [None, 0, -1, 1.5, True, "", " ", "x" * 5000, [], {}, ["x"], {"x": 1}]

FIELDS = [
    "deviceId",
    "organizationId",
    "extensionNumber",
    "dialString",
    "inCallChannelId",
    "sdp",
    "action",
    "destination",
    "tone",
    "channelType",
    "channelLifetime",
    "webhookChannelData",
    "clientInformation",
    "callbackReference",
    "extensions",
    "incomingNotificationTimestamp",
]


def endpoints(sandbox: Sandbox, receiver: Receiver) -> list[tuple[str, str]]:
    provisioned = sandbox.provision(receiver)
    placed = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+1555"})
    call_id = placed.json()["id"]
    nick, channel = provisioned.nickname, provisioned.channel_id
    dev = f"/web-calls/v1/devices/{provisioned.device_id}"
    call = f"/web-calls/v1/calls/{call_id}"
    chan = f"/notification-channel/v1/channels/{nick}/{channel}"
    return [
        ("POST", f"/notification-channel/v1/channels/{nick}"),
        ("GET", "/notification-channel/v1/channels"),
        ("GET", chan),
        ("PUT", f"{chan}/channel-lifetime"),
        ("GET", f"{chan}/channel-lifetime"),
        ("POST", "/web-calls/v1/devices"),
        ("PATCH", dev),
        ("POST", f"{dev}/extensions"),
        ("GET", f"{dev}/extensions"),
        ("POST", "/web-calls/v1/calls"),
        ("GET", "/web-calls/v1/calls"),
        ("POST", f"{call}/ringing"),
        ("POST", f"{call}/answer"),
        ("POST", f"{call}/reject"),
        ("POST", f"{call}/hold"),
        ("POST", f"{call}/mute"),
        ("POST", f"{call}/dtmf"),
        ("POST", f"{call}/blind-transfer"),
        ("PUT", f"{call}/offer"),
        ("POST", "/_sim/calls"),
        ("PUT", "/_sim/numbers/+1555"),
        ("POST", "/_sim/faults"),
        ("PUT", "/_sim/settings"),
        ("POST", "/_sim/tokens"),
        ("POST", "/_sim/clock/advance"),
    ]


def assert_goto_error(reply: Any, where: str) -> None:
    assert reply.status_code != 500 and reply.status_code < 600, f"{where}: {reply.text[:300]}"
    if reply.status_code >= 400:
        body = reply.json()
        assert {"reference", "errorCode", "message"} <= set(body), f"{where}: {body}"
        assert "Traceback" not in reply.text


def test_malformed_bodies_never_reach_a_500(sandbox: Sandbox, receiver: Receiver) -> None:
    for method, path in endpoints(sandbox, receiver):
        for raw in BODIES:
            reply = sandbox.api(
                method, path, content=raw, headers={"Content-Type": "application/json"}
            )
            assert_goto_error(reply, f"{method} {path} {raw[:20]!r}")
    statuses = {r["status"] for r in sandbox.ctl("GET", "/requests").json()["items"]}
    assert 500 not in statuses
    assert 400 in statuses


def test_wrong_types_in_every_field_never_reach_a_500(sandbox: Sandbox, receiver: Receiver) -> None:
    targets = endpoints(sandbox, receiver)
    for method, path in targets:
        for value in WRONG_TYPES:
            body = {name: value for name in FIELDS}
            body["webhookChannelData"] = {"webhook": {"url": value}, "channelType": value}
            body["clientInformation"] = {"deviceId": value, "appId": value}
            body["extensions"] = [{"number": value}, value]
            reply = sandbox.api(method, path, json=body)
            assert_goto_error(reply, f"{method} {path} {value!r}")
    statuses = {r["status"] for r in sandbox.ctl("GET", "/requests").json()["items"]}
    assert 500 not in statuses


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/notification-channel/v1/channels", {"pageSize": "-1"}),
        ("/notification-channel/v1/channels", {"pageSize": "9" * 40}),
        ("/notification-channel/v1/channels", {"pageMarker": "\u00e9\u00e9"}),
        ("/web-calls/v1/calls/" + "x" * 3000, {}),
        ("/web-calls/v1/devices/%00%ff", {}),
        ("/notification-channel/v1/channels/" + "n" * 300 + "/Webhook.x", {}),
        ("/_sim/wait", {"kind": "nothing"}),
        ("/_sim/wait", {"kind": "call", "timeout": "soon"}),
        ("/_sim/requests", {"status": "abc"}),
    ],
)
def test_bad_paths_and_queries(sandbox: Sandbox, path: str, params: dict[str, str]) -> None:
    reply = sandbox.api("GET", path, params=params)
    assert reply.status_code in (400, 404, 200), reply.text
    assert_goto_error(reply, path)


def test_unknown_routes_and_methods_get_goto_errors(sandbox: Sandbox) -> None:
    missing = sandbox.api("GET", "/web-calls/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "NOT_FOUND"
    wrong = sandbox.api("PUT", "/web-calls/v1/calls")
    assert wrong.status_code == 405
    assert wrong.json()["errorCode"] == "METHOD_NOT_ALLOWED"


def test_oversized_body_is_refused(sandbox: Sandbox) -> None:
    reply = sandbox.api("POST", "/web-calls/v1/calls", content=b"{" + b" " * 1_100_000 + b"}")
    assert reply.status_code == 413
    assert reply.json()["errorCode"] == "PAYLOAD_TOO_LARGE"


def test_malformed_token_form_never_reaches_a_500(sandbox: Sandbox) -> None:
    creds = (sandbox.creds["clientId"], sandbox.creds["clientSecret"])
    for raw in [b"\xff\xfe", b"grant_type=refresh_token&refresh_token=%ZZ", b"&&&===", b""]:
        reply = sandbox.http.post(
            "/oauth/token",
            content=raw,
            auth=creds,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code in (400, 401), reply.text
        assert "error" in reply.json()
    for header in ["Basic", "Basic !!!", "Basic bm9jb2xvbg==", "Bearer x"]:
        reply = sandbox.http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token"},
            headers={"Authorization": header},
        )
        assert reply.status_code == 401
        assert reply.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://[::1/x",
        "http://host:99999/",
        "http://h\u0000st/",
        "https://",
        "http:///path",
        "http://a%zz/",
        "javascript:alert(1)",
    ],
)
def test_unusable_webhook_urls_are_invalid_fields(sandbox: Sandbox, url: str) -> None:
    body = {"channelType": "Webhook", "webhookChannelData": {"webhook": {"url": url}}}
    reply = sandbox.api("POST", "/notification-channel/v1/channels/n", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["constraintViolations"] == [
        {"field": "webhookChannelData.webhook.url", "constraint": "INVALID"}
    ]


def test_odd_authorize_and_basic_values(sandbox: Sandbox) -> None:
    params = {
        "response_type": "code",
        "client_id": sandbox.creds["clientId"],
        "redirect_uri": "http://[::1",
    }
    reply = sandbox.http.get("/oauth/authorize", params=params)
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_request")
    for header in [b"Basic \xe9\xe9", b"Basic /w==", b"Basic " + b"A" * 10_000]:
        reply = sandbox.http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token"},
            headers=[(b"Authorization", header)],
        )
        assert (reply.status_code, reply.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "call", "timeout": "nan"},
        {"kind": "call", "timeout": "inf"},
        {"kind": "call", "timeout": "-1"},
        {"kind": "call", "count": "0"},
        {"kind": "call", "count": "1.5"},
    ],
)
def test_wait_refuses_odd_numbers(sandbox: Sandbox, params: dict[str, str]) -> None:
    reply = sandbox.ctl("GET", "/wait", params=params)
    assert reply.status_code == 400
    assert reply.json()["errorCode"] == "BAD_REQUEST"


def test_wait_times_out_showing_what_was_seen(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.provision(receiver)
    reply = sandbox.ctl(
        "GET", "/wait", params={"kind": "notification", "type": "ended", "timeout": "0.2"}
    )
    assert reply.status_code == 408
    body = reply.json()
    assert body["errorCode"] == "TIMEOUT"
    assert [n["type"] for n in body["seen"]] == ["greetings"]


class BrokenFarEnd:
    """A far end with a bug: the catch-all must turn it into a GoTo 500."""

    async def answer(self, call: SimCall, offer_sdp: str) -> str:
        raise RuntimeError("far end bug with a secret-looking detail")

    async def hangup(self, call: SimCall) -> None:
        return None

    async def close(self) -> None:
        return None


def broken(sim: Simulator) -> FarEnd:
    return BrokenFarEnd()


def test_an_unexpected_failure_is_a_goto_500_without_details(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = make_sandbox(far_end_factory=broken)
    provisioned = sandbox.provision(receiver)
    placed = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+1555"})
    call_id = placed.json()["id"]
    reply = sandbox.api(
        "POST",
        f"/web-calls/v1/calls/{call_id}/answer",
        json={"sdp": OFFER, "inCallChannelId": provisioned.channel_id},
    )
    assert reply.status_code == 500
    body = reply.json()
    assert body["errorCode"] == "UNKNOWN_ERROR"
    assert "secret-looking" not in reply.text and "Traceback" not in reply.text
    assert sandbox.call(call_id)["state"] == "INCOMING"
    logged = sandbox.ctl("GET", "/requests", params={"status": "500"}).json()["items"]
    assert len(logged) == 1
