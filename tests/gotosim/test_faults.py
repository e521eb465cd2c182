"""Injected faults on API requests: 429 with Retry-After, 5xx, latency, lost replies."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.gotosim.conftest import OFFER, Receiver, Sandbox

CALLS = "/web-calls/v1/calls"


def test_429_for_the_next_n_requests(sandbox: Sandbox) -> None:
    sandbox.token()
    fault = sandbox.ctl("POST", "/faults", json={"type": "rate-limit", "count": 2, "retryAfter": 7})
    assert fault.status_code == 201
    for _ in range(2):
        limited = sandbox.api("GET", CALLS)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
        assert limited.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert sandbox.api("GET", CALLS).status_code == 200
    assert sandbox.ctl("GET", "/credentials").status_code == 200
    log = sandbox.ctl("GET", "/requests", params={"path": CALLS}).json()["items"]
    assert [r["status"] for r in log] == [429, 429, 200]
    assert log[0]["faults"] == ["rate-limit"]


def test_rate_limit_per_second_on_the_manual_clock(manual: Sandbox) -> None:
    manual.token()
    manual.ctl("POST", "/faults", json={"type": "rate-limit", "perSecond": 2, "path": CALLS})
    assert [manual.api("GET", CALLS).status_code for _ in range(2)] == [200, 200]
    limited = manual.api("GET", CALLS)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert manual.api("GET", "/notification-channel/v1/channels").status_code == 200
    manual.advance(1.0)
    assert manual.api("GET", CALLS).status_code == 200


@pytest.mark.parametrize(("status", "code"), [(500, "UNKNOWN_ERROR"), (503, "UNAVAILABLE")])
def test_server_errors_for_matching_requests(sandbox: Sandbox, status: int, code: str) -> None:
    sandbox.token()
    body = {"type": "server-error", "status": status, "count": 1, "method": "GET", "path": CALLS}
    assert sandbox.ctl("POST", "/faults", json=body).status_code == 201
    assert sandbox.api("GET", "/notification-channel/v1/channels").status_code == 200
    failed = sandbox.api("GET", CALLS)
    assert failed.status_code == status
    assert failed.json()["errorCode"] == code
    assert sandbox.api("GET", CALLS).status_code == 200


def test_added_latency(sandbox: Sandbox) -> None:
    sandbox.token()
    sandbox.ctl("POST", "/faults", json={"type": "latency", "seconds": 0.3, "count": 1})
    started = time.monotonic()
    assert sandbox.api("GET", CALLS).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert sandbox.ctl("GET", "/faults").json()["items"] == []


def test_lost_reply_after_the_call_was_made(sandbox: Sandbox, receiver: Receiver) -> None:
    """A POST /calls whose reply is lost still dialled: what a client must not repeat."""
    provisioned = sandbox.provision(receiver)
    sandbox.ctl(
        "POST",
        "/faults",
        json={
            "type": "server-error",
            "status": 502,
            "afterEffect": True,
            "path": CALLS,
            "count": 1,
        },
    )
    body = {
        "deviceId": provisioned.device_id,
        "organizationId": sandbox.org,
        "extensionNumber": "1000",
        "dialString": "+15550001234",
        "inCallChannelId": provisioned.channel_id,
        "sdp": OFFER,
    }
    lost = sandbox.api("POST", CALLS, json=body)
    assert lost.status_code == 502
    calls = sandbox.ctl("GET", "/calls").json()["items"]
    assert [c["number"] for c in calls] == ["+15550001234"]


def test_client_timeout_after_the_effect(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    sandbox.ctl(
        "POST",
        "/faults",
        json={"type": "latency", "seconds": 2.0, "afterEffect": True, "path": CALLS, "count": 1},
    )
    body = {
        "deviceId": provisioned.device_id,
        "organizationId": sandbox.org,
        "extensionNumber": "1000",
        "dialString": "+15550004321",
        "inCallChannelId": provisioned.channel_id,
        "sdp": OFFER,
    }
    with pytest.raises(httpx.ReadTimeout):
        sandbox.api("POST", CALLS, json=body, timeout=0.5)
    calls = sandbox.wait("call", number="+15550004321")
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["type"]),
        ({"type": "volcano"}, ["type"]),
        ({"type": "latency"}, ["seconds"]),
        ({"type": "latency", "seconds": -1}, ["seconds"]),
        ({"type": "server-error", "status": 404}, ["status"]),
        ({"type": "rate-limit", "count": 0}, ["count"]),
        ({"type": "rate-limit", "count": 2, "perSecond": 3}, ["perSecond"]),
        ({"type": "webhook"}, ["status"]),
        ({"type": "webhook", "drop": True, "status": 500}, ["status"]),
        (
            {"type": "latency", "seconds": 1, "method": "GET /x", "path": "no-slash"},
            ["method", "path"],
        ),
    ],
)
def test_fault_requests_are_validated(
    sandbox: Sandbox, body: dict[str, object], fields: list[str]
) -> None:
    reply = sandbox.ctl("POST", "/faults", json=body)
    assert reply.status_code == 400, reply.text
    assert [v["field"] for v in reply.json()["constraintViolations"]] == fields
    assert sandbox.ctl("GET", "/faults").json()["items"] == []


def test_faults_are_listed_and_cleared(sandbox: Sandbox) -> None:
    one = sandbox.ctl("POST", "/faults", json={"type": "latency", "seconds": 0.01}).json()
    sandbox.ctl("POST", "/faults", json={"type": "rate-limit", "count": 5})
    listed = sandbox.ctl("GET", "/faults").json()["items"]
    assert [f["type"] for f in listed] == ["latency", "rate-limit"]
    assert listed[1]["remaining"] == 5
    assert sandbox.ctl("DELETE", f"/faults/{one['id']}").status_code == 204
    assert sandbox.ctl("DELETE", f"/faults/{one['id']}").status_code == 404
    assert sandbox.ctl("DELETE", "/faults").status_code == 204
    assert sandbox.ctl("GET", "/faults").json()["items"] == []
