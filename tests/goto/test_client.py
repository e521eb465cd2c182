"""Every GoToClient operation over real HTTP against the scripted FakeGoTo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.goto.fakegoto import SDP_ANSWER, FakeGoTo, Reply, error
from tests.helpers import ServerThread
from worker.config import Settings
from worker.goto.client import GoToClient
from worker.goto.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    InsufficientScopeError,
    NotFoundError,
    ProtocolError,
    ServerError,
)

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
WC = "/web-calls/v1"
NC = "/notification-channel/v1"


def bearer(fake: FakeGoTo) -> str:
    return f"Bearer {fake.issued[-1]}"


async def test_channel_lifecycle(fake: FakeGoTo, client: GoToClient) -> None:
    channel = await client.create_webhook_channel(
        "bot@example.com", "http://127.0.0.1:9/webhooks/goto/s3cr3t", lifetime=86400
    )
    (seen,) = fake.seen("POST", f"{NC}/channels/bot@example.com")
    assert seen.body == {
        "channelType": "Webhook",
        "webhookChannelData": {"webhook": {"url": "http://127.0.0.1:9/webhooks/goto/s3cr3t"}},
        "channelLifetime": 86400,
    }
    assert seen.headers["authorization"] == bearer(fake)
    assert channel.channel_id.startswith("Webhook.")
    assert channel.channel_nickname == "bot@example.com"
    assert channel.webhook_url == "http://127.0.0.1:9/webhooks/goto/s3cr3t"
    assert channel.channel_lifetime == 86400
    got = await client.get_channel("bot@example.com", channel.channel_id)
    assert got == channel
    assert await client.refresh_channel_lifetime("bot@example.com", channel.channel_id) == 2592000
    lifetime_path = f"{NC}/channels/bot@example.com/{channel.channel_id}/channel-lifetime"
    assert fake.seen("PUT", lifetime_path)[0].body is None
    assert (
        await client.refresh_channel_lifetime("bot@example.com", channel.channel_id, 3600) == 3600
    )
    assert fake.seen("PUT", lifetime_path)[1].body == {"channelLifetime": 3600}
    assert await client.get_channel_lifetime("bot@example.com", channel.channel_id) == 3600
    await client.delete_channel("bot@example.com", channel.channel_id)
    assert fake.channels == {}
    with pytest.raises(NotFoundError) as info:
        await client.get_channel("bot@example.com", channel.channel_id)
    assert info.value.path == f"{NC}/channels/bot@example.com/{channel.channel_id}"


async def test_list_channels_follows_page_markers(fake: FakeGoTo, client: GoToClient) -> None:
    made = [
        (await client.create_webhook_channel(f"n{i}", f"http://127.0.0.1:9/h/{i}")).channel_id
        for i in range(5)
    ]
    channels = await client.list_channels(page_size=2)
    assert [c.channel_id for c in channels] == made
    pages = fake.seen("GET", f"{NC}/channels")
    assert [p.query for p in pages] == [
        {"pageSize": "2"},
        {"pageMarker": "2", "pageSize": "2"},
        {"pageMarker": "4", "pageSize": "2"},
    ]


async def test_a_repeating_page_marker_stops_the_listing(
    fake: FakeGoTo, client: GoToClient
) -> None:
    page = {"items": [], "nextPageMarker": "same"}
    fake.push("GET", f"{NC}/channels", Reply(200, page), Reply(200, page))
    with pytest.raises(ProtocolError, match="page marker 'same' twice"):
        await client.list_channels()


async def test_device_and_extensions_lifecycle(fake: FakeGoTo, client: GoToClient) -> None:
    device = await client.create_device("1234567809012111116", "Webhook.abc", app_version="2.3.1")
    (seen,) = fake.seen("POST", f"{WC}/devices")
    assert seen.body == {
        "clientInformation": {
            "deviceId": "1234567809012111116",
            "appId": "callworker",
            "appVersion": "2.3.1",
            "platform": "INTEGRATOR",
        },
        "callbackReference": {
            "incomingCallChannelId": "Webhook.abc",
            "sessionManagementChannelId": "Webhook.abc",
        },
    }
    assert device.device_id == "1234567809012111116"
    assert (await client.get_device(device.device_id)) == device
    with pytest.raises(ConflictError) as conflict:
        await client.create_device("1234567809012111116", "Webhook.abc")
    assert conflict.value.status == 409
    result = await client.create_extensions(device.device_id, "org-1", ["0523", "0524"])
    (posted,) = fake.seen("POST", f"{WC}/devices/{device.device_id}/extensions")
    assert posted.body == {
        "organizationId": "org-1",
        "extensions": [{"number": "0523"}, {"number": "0524"}],
    }
    assert [(e.number, e.result_code) for e in result.extensions] == [("0523", 201), ("0524", 201)]
    assert result.failed() == ()
    listed = await client.list_extensions(device.device_id, organization_id="org-1")
    assert sorted(e.number for e in listed) == ["0523", "0524"]
    await client.delete_extensions(
        device.device_id, organization_id="org-1", extension_number="0523"
    )
    deleted = fake.seen("DELETE", f"{WC}/devices/{device.device_id}/extensions")
    assert deleted[0].query == {"organizationId": "org-1", "extensionNumber": "0523"}
    assert [e.number for e in await client.list_extensions(device.device_id)] == ["0524"]
    await client.delete_device(device.device_id)
    with pytest.raises(NotFoundError):
        await client.get_device(device.device_id)


async def test_outbound_call_and_every_call_control(fake: FakeGoTo, client: GoToClient) -> None:
    request = json.loads((SEED / "make_call_request.json").read_text())
    call = await client.make_call(
        device_id=request["deviceId"],
        organization_id=request["organizationId"],
        extension_number=request["extensionNumber"],
        dial_string=request["dialString"],
        in_call_channel_id=request["inCallChannelId"],
        sdp=request["sdp"],
    )
    (seen,) = fake.seen("POST", f"{WC}/calls")
    assert seen.body == request
    assert call.sdp == SDP_ANSWER and call.leg_id and call.status == "CONNECTING"
    base = f"{WC}/calls/{call.id}"
    await client.ringing(
        call.id, in_call_channel_id="Webhook.1", incoming_notification_timestamp="t0"
    )
    await client.hold(call.id)
    await client.unhold(call.id)
    await client.mute(call.id)
    await client.unmute(call.id)
    await client.dtmf(call.id, "12#*")
    await client.blind_transfer(call.id, "+15145550000")
    await client.reject(call.id)
    await client.send_to_voicemail(call.id)
    answered = await client.answer(call.id, sdp="v=0\r\no=me\r\n", in_call_channel_id="Webhook.1")
    assert answered.id == call.id and answered.sdp == SDP_ANSWER
    assert fake.calls[call.id]["actions"] == [
        ("ringing", {"inCallChannelId": "Webhook.1", "incomingNotificationTimestamp": "t0"}),
        ("hold", None),
        ("unhold", None),
        ("mute", None),
        ("unmute", None),
        ("dtmf", {"tone": "12#*"}),
        ("blind-transfer", {"dialString": "+15145550000"}),
        ("reject", {}),
        ("reject", {"action": "SEND_TO_VOICEMAIL"}),
        ("answer", {"sdp": "v=0\r\no=me\r\n", "inCallChannelId": "Webhook.1"}),
    ]
    assert [r.path for r in fake.seen("POST")][-10:-1] == [
        f"{base}/{a}"
        for a in ("ringing", "hold", "unhold", "mute", "unmute", "dtmf", "blind-transfer")
    ] + [f"{base}/reject"] * 2
    await client.hangup(call.id)
    assert fake.seen("DELETE", base)
    with pytest.raises(NotFoundError) as info:
        await client.hold(call.id)
    assert info.value.path == f"{base}/hold"


async def test_seed_reject_body_is_what_send_to_voicemail_sends(
    fake: FakeGoTo, client: GoToClient
) -> None:
    call = await client.make_call(
        device_id="d",
        organization_id="o",
        extension_number="1",
        dial_string="2",
        in_call_channel_id="c",
        sdp="v=0",
    )
    await client.send_to_voicemail(call.id)
    seed = json.loads((SEED / "reject_request.json").read_text())
    assert fake.seen("POST", f"{WC}/calls/{call.id}/reject")[0].body == seed


@pytest.mark.parametrize(
    ("reply", "cls", "fields"),
    [
        (
            error(
                400,
                "BAD_REQUEST",
                "Invalid request",
                constraintViolations=[{"field": "dialString", "constraint": "REQUIRED"}],
            ),
            BadRequestError,
            "dialString REQUIRED",
        ),
        (
            error(
                400,
                "BAD_REQUEST",
                "Invalid request",
                constraints=[{"field": "sdp", "constraint": "Invalid"}],
            ),
            BadRequestError,
            "sdp Invalid",
        ),
        (error(403, "AUTHZ_INSUFFICIENT_SCOPE", "scope"), InsufficientScopeError, "webrtc.v1"),
        (error(403, "UNAUTHORIZED", "nope"), AuthError, "CALLWORKER_CLIENT_ID"),
        (error(401, "AUTHN_INVALID_TOKEN", "bad"), AuthError, "AUTHN_INVALID_TOKEN"),
        (error(404, "NOT_FOUND", "gone"), NotFoundError, "may have been deleted"),
        (error(409, "CONFLICT", "busy"), ConflictError, "conflicting state"),
        (error(500, "UNKNOWN_ERROR", "boom"), ServerError, "try again later"),
    ],
)
async def test_each_error_shape_through_the_client(
    fake: FakeGoTo,
    client: GoToClient,
    reply: Reply,
    cls: type[Exception],
    fields: str,
) -> None:
    fake.push("GET", f"{WC}/devices/d1", reply)
    with pytest.raises(cls) as info:
        await client.get_device("d1")
    exc = info.value
    assert isinstance(
        exc, AuthError | BadRequestError | NotFoundError | ConflictError | ServerError
    )
    assert exc.status == reply.status
    assert exc.error_code == reply.body["errorCode"]
    assert exc.reference == reply.body["reference"]
    assert (exc.method, exc.path) == ("GET", f"{WC}/devices/d1")
    assert fields in str(exc)
    assert len(fake.seen("GET", f"{WC}/devices/d1")) == 1, fake.describe()
    if isinstance(exc, BadRequestError):
        assert len(exc.constraint_violations) == 1


async def test_real_bad_request_from_missing_fields(fake: FakeGoTo, client: GoToClient) -> None:
    fake.push(
        "POST",
        f"{WC}/devices",
        error(
            400, "BAD_REQUEST", "x", constraints=[{"field": "deviceId", "constraint": "REQUIRED"}]
        ),
    )
    with pytest.raises(BadRequestError) as info:
        await client.create_device("d9", "Webhook.1")
    assert [str(v) for v in info.value.constraint_violations] == ["deviceId REQUIRED"]


async def test_expired_token_is_refreshed_once_and_the_request_retried_once(
    fake: FakeGoTo, client: GoToClient
) -> None:
    await client.create_device("d1", "Webhook.1")
    fake.expire_tokens()
    device = await client.get_device("d1")
    assert device.device_id == "d1"
    gets = fake.seen("GET", f"{WC}/devices/d1")
    assert len(gets) == 2
    assert gets[0].headers["authorization"] != gets[1].headers["authorization"]
    assert len(fake.seen("POST", "/oauth/token")) == 2
    # A second expiry reply right after the refresh is not refreshed again.
    fake.push(
        "GET",
        f"{WC}/devices/d1",
        error(401, "AUTHN_EXPIRED_TOKEN"),
        error(401, "AUTHN_EXPIRED_TOKEN"),
    )
    with pytest.raises(AuthError) as info:
        await client.get_device("d1")
    assert info.value.error_code == "AUTHN_EXPIRED_TOKEN"
    assert len(fake.seen("POST", "/oauth/token")) == 3, fake.describe()


async def test_expired_token_retry_is_safe_even_for_make_call(
    fake: FakeGoTo, client: GoToClient
) -> None:
    fake.push("POST", f"{WC}/calls", error(401, "AUTHN_EXPIRED_TOKEN"))
    call = await client.make_call(
        device_id="d",
        organization_id="o",
        extension_number="1",
        dial_string="2",
        in_call_channel_id="c",
        sdp="v=0",
    )
    assert call.id in fake.calls
    assert len(fake.seen("POST", f"{WC}/calls")) == 2


async def test_unreadable_success_reply_is_a_protocol_error(
    fake: FakeGoTo, client: GoToClient
) -> None:
    fake.push("POST", f"{WC}/calls/c1/answer", Reply(200, {"legId": "no id"}))
    with pytest.raises(ProtocolError) as info:
        await client.answer("c1", sdp="v=0", in_call_channel_id="ch")
    assert "succeeded (HTTP 200) but the reply is not a CallInfo" in str(info.value)
    assert "first at id" in str(info.value)


async def test_from_settings_builds_a_working_client(
    fake: FakeGoTo, server: ServerThread, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "CALLWORKER_GOTO_API_URL": server.url,
            "CALLWORKER_GOTO_AUTH_URL": server.url,
            "CALLWORKER_CLIENT_ID": fake.client_id,
            "CALLWORKER_CLIENT_SECRET": fake.client_secret,
            "CALLWORKER_REFRESH_TOKEN": next(iter(fake.refresh_tokens)),
            "CALLWORKER_DATA_DIR": str(tmp_path),
        }
    )
    async with GoToClient.from_settings(settings) as goto:
        channel = await goto.create_webhook_channel("n", "http://127.0.0.1:9/x")
        assert channel.channel_id in fake.channels
        assert fake.client_secret not in repr(goto)


def test_from_settings_names_the_missing_setting(tmp_path: Path) -> None:
    from worker.config import ConfigError

    settings = Settings.from_env(
        {"CALLWORKER_CLIENT_ID": "x", "CALLWORKER_DATA_DIR": str(tmp_path)}
    )
    with pytest.raises(ConfigError, match="CALLWORKER_CLIENT_SECRET"):
        GoToClient.from_settings(settings)
