"""The Notification Channel API of the sandbox, with the OPTIONS check against a real receiver."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gotosim.conftest import Receiver, Sandbox, SandboxFactory, keys_of, seed

CHANNELS = "/notification-channel/v1/channels"


def webhook_body(url: str, **extra: Any) -> dict[str, Any]:
    return {"channelType": "Webhook", "webhookChannelData": {"webhook": {"url": url}}, **extra}


def test_create_answers_like_the_seed_after_an_options_check(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    path = receiver.new_path()
    request = seed("channel_create_request")
    request["webhookChannelData"]["webhook"]["url"] = receiver.url(path)
    reply = sandbox.api("POST", f"{CHANNELS}/me@email.webhook.site", json=request)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert keys_of(body) == keys_of(seed("channel_created"))
    assert body["channelId"].startswith("Webhook.")
    assert body["channelNickname"] == "me@email.webhook.site"
    assert body["webhookChannelData"] == {
        "webhook": {"url": receiver.url(path)},
        "channelType": "Webhook",
    }
    assert body["channelLifetime"] == 2147483647
    assert (
        body["resourceURL"] == f"{sandbox.url}{CHANNELS}/me@email.webhook.site/{body['channelId']}"
    )
    assert body["doNotDisturbAware"] is False
    assert len(receiver.received(path, "OPTIONS")) == 1
    state = sandbox.ctl("GET", "/state").json()
    (channel,) = state["channels"]
    assert channel["optionsCheck"]["ok"] is True
    assert channel["optionsCheck"]["status"] == 204


def test_create_with_lifetime_secret_and_inner_channel_type(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    body = {
        "channelLifetime": 600,
        "doNotDisturbAware": True,
        "webhookChannelData": {
            "channelType": "Webhook",
            "webhook": {"url": receiver.url(receiver.new_path())},
            "signature": {"sharedSecret": "do-not-echo-me"},
        },
    }
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=body)
    assert reply.status_code == 201, reply.text
    assert reply.json()["channelLifetime"] == 600
    assert reply.json()["doNotDisturbAware"] is True
    assert "do-not-echo-me" not in reply.text


def test_list_pages_with_markers(sandbox: Sandbox, receiver: Receiver) -> None:
    made = [sandbox.channel(receiver)[1] for _ in range(3)]
    first = sandbox.api("GET", CHANNELS, params={"pageSize": 2})
    assert first.status_code == 200
    page = first.json()
    assert page["pageSize"] == 2
    assert [c["channelId"] for c in page["items"]] == made[:2]
    second = sandbox.api(
        "GET", CHANNELS, params={"pageSize": 2, "pageMarker": page["nextPageMarker"]}
    ).json()
    assert [c["channelId"] for c in second["items"]] == made[2:]
    assert "nextPageMarker" not in second
    everything = sandbox.api("GET", CHANNELS).json()
    assert everything["pageSize"] == 100 and len(everything["items"]) == 3
    assert "nextPageMarker" not in everything


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "101"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"pageMarker": "not-a-marker"}, "pageMarker"),
        ({"pageMarker": "999"}, "pageMarker"),
    ],
)
def test_list_refuses_bad_paging(sandbox: Sandbox, params: dict[str, str], field: str) -> None:
    reply = sandbox.api("GET", CHANNELS, params=params)
    assert reply.status_code == 400
    assert reply.json()["constraintViolations"] == [{"field": field, "constraint": "INVALID"}]


def test_get_and_delete(sandbox: Sandbox, receiver: Receiver) -> None:
    nickname, channel_id, _ = sandbox.channel(receiver)
    got = sandbox.api("GET", f"{CHANNELS}/{nickname}/{channel_id}")
    assert got.status_code == 200
    assert got.json()["channelId"] == channel_id
    wrong_nickname = sandbox.api("GET", f"{CHANNELS}/someone-else/{channel_id}")
    assert wrong_nickname.status_code == 404
    assert wrong_nickname.json()["errorCode"] == "NOT_FOUND"
    assert sandbox.api("DELETE", f"{CHANNELS}/{nickname}/{channel_id}").status_code == 204
    assert sandbox.api("GET", f"{CHANNELS}/{nickname}/{channel_id}").status_code == 404
    again = sandbox.api("DELETE", f"{CHANNELS}/{nickname}/{channel_id}")
    assert again.status_code == 404
    assert channel_id in again.json()["message"]


def test_lifetime_counts_down_and_is_restarted(manual: Sandbox, receiver: Receiver) -> None:
    path = receiver.new_path()
    created = manual.api(
        "POST", f"{CHANNELS}/n", json=webhook_body(receiver.url(path), channelLifetime=600)
    ).json()
    where = f"{CHANNELS}/n/{created['channelId']}/channel-lifetime"
    assert manual.api("GET", where).json() == {"channelLifetime": 600}
    manual.advance(100)
    assert manual.api("GET", where).json() == {"channelLifetime": 500}
    assert manual.api("PUT", where).json() == {"channelLifetime": 600}
    assert manual.api("GET", where).json() == {"channelLifetime": 600}
    assert manual.api("PUT", where, json={"channelLifetime": 1200}).json() == {
        "channelLifetime": 1200
    }
    bad = manual.api("PUT", where, json={"channelLifetime": -5})
    assert bad.json()["constraintViolations"] == [
        {"field": "channelLifetime", "constraint": "INVALID"}
    ]
    manual.advance(1200)
    assert manual.api("GET", where).status_code == 404
    assert manual.api("GET", f"{CHANNELS}/n/{created['channelId']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "violations"),
    [
        (
            {},
            [
                {"field": "channelType", "constraint": "REQUIRED"},
                {"field": "webhookChannelData.webhook.url", "constraint": "REQUIRED"},
            ],
        ),
        (
            {"channelType": "Email", "webhookChannelData": {"webhook": {"url": "http://x/"}}},
            [{"field": "channelType", "constraint": "INVALID"}],
        ),
        (
            {"channelType": "Webhook", "webhookChannelData": {"webhook": {"url": "ftp://x/y"}}},
            [{"field": "webhookChannelData.webhook.url", "constraint": "INVALID"}],
        ),
        (
            {"channelType": "Webhook", "webhookChannelData": {"webhook": "http://x/"}},
            [{"field": "webhookChannelData.webhook", "constraint": "INVALID"}],
        ),
        (
            {"channelType": "Webhook", "webhookChannelData": {"webhook": {"url": 7}}},
            [{"field": "webhookChannelData.webhook.url", "constraint": "INVALID"}],
        ),
        (
            {
                "channelType": "Webhook",
                "channelLifetime": "long",
                "webhookChannelData": {"webhook": {"url": "http://x/"}},
            },
            [{"field": "channelLifetime", "constraint": "INVALID"}],
        ),
        (
            {"channelType": "WebSockets"},
            [{"field": "channelType", "constraint": "INVALID"}],
        ),
    ],
)
def test_create_names_each_bad_field(
    sandbox: Sandbox, body: dict[str, Any], violations: list[dict[str, str]]
) -> None:
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["errorCode"] == "BAD_REQUEST"
    assert reply.json()["constraintViolations"] == violations
    for violation in violations:
        assert violation["field"] in reply.json()["message"]


@pytest.mark.parametrize("status", [404, 500])
def test_failing_options_check_refuses_the_channel(
    sandbox: Sandbox, receiver: Receiver, status: int
) -> None:
    path = receiver.new_path() + "/secret-part"
    receiver.options_status[path] = status
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=webhook_body(receiver.url(path)))
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["constraintViolations"] == [
        {"field": "webhookChannelData.webhook.url", "constraint": "INVALID"}
    ]
    assert receiver.base in body["message"] and f"HTTP {status}" in body["message"]
    assert "secret-part" not in body["message"]
    assert sandbox.api("GET", CHANNELS).json()["items"] == []
    failed = sandbox.ctl("GET", "/state").json()["failedWebhookChecks"]
    assert [f["status"] for f in failed] == [status]


def test_unreachable_url_refuses_the_channel(sandbox: Sandbox, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/hook"
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=webhook_body(url))
    assert reply.status_code == 400
    assert "OPTIONS request failed" in reply.json()["message"]


def test_record_mode_accepts_and_records_a_failed_check(
    make_sandbox: SandboxFactory, closed_port: int
) -> None:
    sandbox = make_sandbox(webhook_check="record")
    url = f"http://127.0.0.1:{closed_port}/hook"
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=webhook_body(url))
    assert reply.status_code == 201
    (channel,) = sandbox.ctl("GET", "/state").json()["channels"]
    assert channel["optionsCheck"]["ok"] is False
    assert "ConnectError" in channel["optionsCheck"]["error"]


def test_options_405_that_allows_post_passes(sandbox: Sandbox, receiver: Receiver) -> None:
    """A POST-only route answers OPTIONS with 405 and ``Allow: POST``: POST is allowed."""
    path = receiver.new_path()
    receiver.options_status[path] = 405
    reply = sandbox.api("POST", f"{CHANNELS}/nick", json=webhook_body(receiver.url(path)))
    assert reply.status_code == 201, reply.text
