"""The seed document's JSON examples round-trip through the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from worker.goto import events, models

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"

REST_FIXTURES: dict[str, type[models.GoToModel]] = {
    "channel_create_request.json": models.CreateWebhookChannelRequest,
    "channel_created.json": models.Channel,
    "device_create_request.json": models.Device,
    "device_created.json": models.Device,
    "extensions_create_request.json": models.CreateExtensionsRequest,
    "extensions_created.json": models.ExtensionResult,
    "answer_request.json": models.AnswerRequest,
    "reject_request.json": models.RejectRequest,
    "make_call_request.json": models.MakeCallRequest,
    "call_created.json": models.CallInfo,
}
NOTIFICATION_FIXTURES = ["greetings.json", "incoming.json", "ended.json"]


def load(name: str) -> Any:
    return json.loads((SEED / name).read_text())


def key_paths(data: Any, prefix: str = "") -> set[str]:
    """Every key path in nested JSON data, e.g. ``webhookChannelData.webhook.url``."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            found |= key_paths(value, path)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found |= key_paths(value, f"{prefix}[{index}]")
    return found


def test_every_seed_example_is_a_fixture() -> None:
    assert sorted(p.name for p in SEED.glob("*.json")) == sorted(
        [*REST_FIXTURES, *NOTIFICATION_FIXTURES]
    )


@pytest.mark.parametrize("name", sorted(REST_FIXTURES))
def test_rest_fixture_round_trips(name: str) -> None:
    original = load(name)
    model = REST_FIXTURES[name]
    parsed = model.model_validate(original)
    dumped = parsed.dump()
    assert model.model_validate(dumped) == parsed
    assert key_paths(original) <= key_paths(dumped)
    assert json.loads(json.dumps(dumped)) == dumped


@pytest.mark.parametrize("name", NOTIFICATION_FIXTURES)
def test_notification_fixture_round_trips(name: str) -> None:
    original = load(name)
    parsed = events.parse_notification(original)
    dumped = events.dump_notification(parsed)
    assert events.parse_notification(dumped) == parsed
    assert key_paths(original) <= key_paths(dumped)


def test_seed_values_land_in_typed_fields() -> None:
    channel = models.Channel.model_validate(load("channel_created.json"))
    assert channel.channel_id == "Webhook.6050752e-78dd-47af-8e22-552d3d6e3326"
    assert channel.webhook_url == "https://webhook.site/d1d3332b-f33b-4cc2-b754-72fb2d0863d0"
    assert channel.channel_lifetime == 2147483647
    assert channel.resource_url is not None and channel.resource_url.endswith(channel.channel_id)
    device = models.Device.model_validate(load("device_created.json"))
    assert device.device_id == "1234567809012111116"
    assert device.callback_reference is not None
    assert device.callback_reference.session_management_channel_id == channel.channel_id
    result = models.ExtensionResult.model_validate(load("extensions_created.json"))
    assert [(e.number, e.result_code) for e in result.extensions] == [("0523", 201)]
    assert result.failed() == ()
    call = models.CallInfo.model_validate(load("call_created.json"))
    assert call.leg_id == "dd6a5d9a-da87-469c-b76f-1d45bc214588"
    assert call.status == "CONNECTING"
    assert call.sdp is not None and call.sdp.startswith("v=0\r\n")
    assert call.is_on_hold is False
    reject = models.RejectRequest.model_validate(load("reject_request.json"))
    assert reject.action == "SEND_TO_VOICEMAIL"
    greetings = events.parse_notification(load("greetings.json"))
    assert isinstance(greetings, events.GreetingsNotification)
    assert greetings.ttl == 120
    assert greetings.content.extension_number == "0523"


def test_unknown_fields_are_kept_and_dumped() -> None:
    data = load("call_created.json") | {"brandNewField": {"nested": [1, 2]}}
    call = models.CallInfo.model_validate(data)
    assert call.dump()["brandNewField"] == {"nested": [1, 2]}


def test_models_are_frozen_and_python_names_build_goto_names() -> None:
    request = models.MakeCallRequest(
        device_id="d1",
        organization_id="o1",
        extension_number="0523",
        dial_string="+15145550000",
        in_call_channel_id="Webhook.1",
        sdp="v=0\r\n",
    )
    assert request.dump() == {
        "deviceId": "d1",
        "organizationId": "o1",
        "extensionNumber": "0523",
        "dialString": "+15145550000",
        "inCallChannelId": "Webhook.1",
        "sdp": "v=0\r\n",
    }
    with pytest.raises(ValidationError):
        request.dial_string = "+1"  # type: ignore[misc]


def test_secret_bearing_fields_stay_out_of_repr() -> None:
    channel = models.Channel.model_validate(load("channel_created.json"))
    assert "webhook.site/d1d3332b" not in repr(channel)
    assert "Webhook.6050752e" in repr(channel)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (models.Channel, {"channelNickname": "x"}),
        (models.CallInfo, {"id": ""}),
        (models.DtmfRequest, {"tone": "12x"}),
        (models.CreateExtensionsRequest, {"organizationId": "o", "extensions": []}),
    ],
)
def test_invalid_shapes_are_refused(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)
