"""Webhook delivery to a real receiver: envelope, order, retries, unreachable, faults."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.gotosim.conftest import Receiver, Sandbox, SandboxFactory, keys_of, seed
from worker.goto.events import (
    EndedNotification,
    GreetingsNotification,
    IncomingNotification,
    parse_notification_json,
)

CHANNELS = "/notification-channel/v1/channels"
DEVICES = "/web-calls/v1/devices"


def device_on(sandbox: Sandbox, channel_id: str, device_id: str = "dev") -> str:
    body = {
        "clientInformation": {"deviceId": device_id},
        "callbackReference": {
            "incomingCallChannelId": channel_id,
            "sessionManagementChannelId": channel_id,
        },
    }
    assert sandbox.api("POST", DEVICES, json=body).status_code == 201
    return device_id


def register(sandbox: Sandbox, device_id: str, *numbers: str) -> None:
    body = {"organizationId": sandbox.org, "extensions": [{"number": n} for n in numbers]}
    reply = sandbox.api("POST", f"{DEVICES}/{device_id}/extensions", json=body)
    assert reply.status_code == 201, reply.text


def statuses(record: dict[str, Any]) -> list[int | None]:
    return [a.get("status") for a in record["attempts"]]


def test_envelopes_match_the_seed_and_parse_with_the_worker_models(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    provisioned = sandbox.provision(receiver)
    placed = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+15143334444"})
    sandbox.ctl("POST", f"/calls/{placed.json()['id']}/hangup")
    greetings, incoming, ended = receiver.wait_for(provisioned.hook_path, 3)
    for received, name, model in (
        (greetings, "greetings", GreetingsNotification),
        (incoming, "incoming", IncomingNotification),
        (ended, "ended", EndedNotification),
    ):
        body = received.json()
        example = seed(name)
        assert keys_of(body) == keys_of(example), name
        assert (body["source"], body["type"], body["usage"], body["ttl"]) == (
            example["source"],
            example["type"],
            example["usage"],
            example["ttl"],
        )
        assert datetime.fromisoformat(body["timestamp"]).utcoffset() is not None
        assert received.headers["content-type"] == "application/json"
        assert isinstance(parse_notification_json(received.body), model)
        assert "authorization" not in received.headers


def test_two_quick_retries_on_5xx_then_drop(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, path = sandbox.channel(receiver)
    receiver.script(path, 500, 502, 503, 204)
    register(sandbox, device_on(sandbox, channel_id), "1000", "1001")
    (dropped,) = sandbox.wait("notification", channelId=channel_id, outcome="dropped")
    (delivered,) = sandbox.wait("notification", channelId=channel_id, outcome="delivered")
    assert statuses(dropped) == [500, 502, 503]
    assert "3 attempt(s)" in dropped["reason"]
    assert statuses(delivered) == [204]
    assert dropped["body"]["content"]["extensionNumber"] == "1000"
    assert delivered["body"]["content"]["extensionNumber"] == "1001"
    posts = receiver.received(path)
    assert len(posts) == 4
    assert [p.json()["content"]["extensionNumber"] for p in posts] == ["1000"] * 3 + ["1001"]


def test_a_5xx_then_success_is_delivered_on_the_retry(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, path = sandbox.channel(receiver)
    receiver.script(path, 503)
    register(sandbox, device_on(sandbox, channel_id), "1000")
    (record,) = sandbox.wait("notification", channelId=channel_id, outcome="delivered")
    assert statuses(record) == [503, 204]
    assert len(receiver.received(path)) == 2


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_mark_the_channel_unreachable_until_a_2xx(
    sandbox: Sandbox, receiver: Receiver, status: int
) -> None:
    nickname, channel_id, path = sandbox.channel(receiver)
    receiver.script(path, status)
    device = device_on(sandbox, channel_id)
    register(sandbox, device, "1000")
    (failed,) = sandbox.wait("notification", channelId=channel_id, outcome="failed")
    assert statuses(failed) == [status]
    assert "unreachable" in failed["reason"]
    channel = sandbox.api("GET", f"{CHANNELS}/{nickname}/{channel_id}").json()
    stamp = channel["webhookChannelData"]["unreachableTimestamp"]
    assert datetime.fromisoformat(stamp).utcoffset() is not None
    register(sandbox, device, "1001")
    sandbox.wait("notification", channelId=channel_id, outcome="delivered")
    channel = sandbox.api("GET", f"{CHANNELS}/{nickname}/{channel_id}").json()
    assert "unreachableTimestamp" not in channel["webhookChannelData"]


def test_refused_connections_count_as_failed_attempts(
    make_sandbox: SandboxFactory, closed_port: int
) -> None:
    sandbox = make_sandbox(webhook_check="record")
    url = f"http://127.0.0.1:{closed_port}/hook"
    body = {"channelType": "Webhook", "webhookChannelData": {"webhook": {"url": url}}}
    channel_id = sandbox.api("POST", f"{CHANNELS}/n", json=body).json()["channelId"]
    register(sandbox, device_on(sandbox, channel_id), "1000")
    (record,) = sandbox.wait("notification", channelId=channel_id, outcome="dropped")
    assert len(record["attempts"]) == 3
    assert all("ConnectError" in a["error"] for a in record["attempts"])


def test_other_4xx_is_dropped_without_retry(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, path = sandbox.channel(receiver)
    receiver.script(path, 400)
    register(sandbox, device_on(sandbox, channel_id), "1000")
    (record,) = sandbox.wait("notification", channelId=channel_id, outcome="dropped")
    assert statuses(record) == [400]
    assert len(receiver.received(path)) == 1


def test_deliveries_keep_their_order_per_channel(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    receiver.wait_for(provisioned.hook_path, 1)
    receiver.script(provisioned.hook_path, 503, 204, 503)
    placed = []
    for i in range(5):
        body = {"extension": "1000", "number": f"+1555000000{i}"}
        placed.append(sandbox.ctl("POST", "/calls", json=body).json()["id"])
    sandbox.wait("notification", type="incoming", outcome="delivered", count=5)
    bodies = [r.json() for r in receiver.received(provisioned.hook_path)[1:]]
    delivered_order: list[str] = []
    for body in bodies:
        call_id = body["content"]["callId"]
        if not delivered_order or delivered_order[-1] != call_id:
            delivered_order.append(call_id)
    assert delivered_order == placed


def test_notification_to_a_deleted_channel_is_dropped(sandbox: Sandbox, receiver: Receiver) -> None:
    nickname, channel_id, path = sandbox.channel(receiver)
    device = device_on(sandbox, channel_id)
    assert sandbox.api("DELETE", f"{CHANNELS}/{nickname}/{channel_id}").status_code == 204
    register(sandbox, device, "1000")
    (record,) = sandbox.wait("notification", channelId=channel_id, outcome="dropped")
    assert record["attempts"] == []
    assert "channel does not exist" in record["reason"]
    assert receiver.received(path) == []


def test_webhook_fault_with_a_status_fails_an_attempt_without_sending(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    _, channel_id, path = sandbox.channel(receiver)
    fault = sandbox.ctl("POST", "/faults", json={"type": "webhook", "status": 503, "count": 1})
    assert fault.status_code == 201, fault.text
    register(sandbox, device_on(sandbox, channel_id), "1000")
    (record,) = sandbox.wait("notification", channelId=channel_id, outcome="delivered")
    assert statuses(record) == [503, 204]
    assert record["attempts"][0]["simulated"] is True
    assert len(receiver.received(path)) == 1
    assert sandbox.ctl("GET", "/faults").json()["items"] == []


def test_webhook_fault_drop_and_duplicate(sandbox: Sandbox, receiver: Receiver) -> None:
    _, channel_id, path = sandbox.channel(receiver)
    device = device_on(sandbox, channel_id)
    sandbox.ctl("POST", "/faults", json={"type": "webhook", "drop": True, "count": 1})
    register(sandbox, device, "1000")
    sandbox.wait("notification", channelId=channel_id, outcome="dropped")
    sandbox.ctl("POST", "/faults", json={"type": "webhook", "duplicate": True, "count": 1})
    register(sandbox, device, "1001")
    copies = sandbox.wait("notification", channelId=channel_id, outcome="delivered", count=2)
    assert copies[0]["body"] == copies[1]["body"]
    posts = receiver.wait_for(path, 2)
    assert [p.body for p in posts] == [posts[0].body] * 2
    assert posts[0].json()["content"]["extensionNumber"] == "1001"


def test_webhook_fault_can_target_one_channel(sandbox: Sandbox, receiver: Receiver) -> None:
    _, first, first_path = sandbox.channel(receiver)
    _, second, second_path = sandbox.channel(receiver)
    sandbox.ctl("POST", "/faults", json={"type": "webhook", "drop": True, "channelId": second})
    register(sandbox, device_on(sandbox, first, "d1"), "1000")
    register(sandbox, device_on(sandbox, second, "d2"), "1000")
    sandbox.wait("notification", channelId=first, outcome="delivered")
    sandbox.wait("notification", channelId=second, outcome="dropped")
    assert len(receiver.received(first_path)) == 1
    assert receiver.received(second_path) == []
