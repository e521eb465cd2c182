"""Calls in the sandbox: outbound behaviours, inbound calls, call control and state checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gotosim import SimCall, Simulator
from gotosim.media import FarEnd, build_answer_sdp, parse_offer
from tests.gotosim.conftest import (
    OFFER,
    Provisioned,
    Receiver,
    Sandbox,
    SandboxFactory,
    keys_of,
    seed,
)

CALLS = "/web-calls/v1/calls"


def make_call(
    sandbox: Sandbox, provisioned: Provisioned, dial: str = "+13142797222", **override: Any
) -> Any:
    body = seed("make_call_request")
    body.update(
        deviceId=provisioned.device_id,
        organizationId=sandbox.org,
        extensionNumber="1000",
        dialString=dial,
        inCallChannelId=provisioned.channel_id,
    )
    body.update(override)
    return sandbox.api("POST", CALLS, json=body)


def place(sandbox: Sandbox, **extra: Any) -> str:
    body = {"extension": "1000", "number": "+15143334444", "name": "Bob", **extra}
    reply = sandbox.ctl("POST", "/calls", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def answer(sandbox: Sandbox, provisioned: Provisioned, call_id: str) -> Any:
    return sandbox.api(
        "POST",
        f"{CALLS}/{call_id}/answer",
        json={"sdp": OFFER, "inCallChannelId": provisioned.channel_id},
    )


def ended(sandbox: Sandbox, receiver: Receiver, provisioned: Provisioned, call_id: str) -> Any:
    items = sandbox.wait("notification", type="ended", callId=call_id, outcome="delivered")
    bodies = [r.json() for r in receiver.received(provisioned.hook_path)]
    (body,) = [b for b in bodies if b["type"] == "ended" and b["content"]["callId"] == call_id]
    assert items[0]["body"] == body
    return body


# -- outbound ---------------------------------------------------------------------------------


def test_make_call_answers_like_the_seed_and_connects(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    reply = make_call(sandbox, provisioned)
    assert reply.status_code == 201, reply.text
    call = reply.json()
    assert keys_of(call) == keys_of(seed("call_created"))
    assert (call["status"], call["number"], call["name"]) == ("CONNECTING", "+13142797222", "-")
    assert call["timestamp"].endswith("Z")
    answer_sdp = parse_offer(call["sdp"])
    assert answer_sdp.opus_pt == 111 and answer_sdp.telephone_event_pt is None
    assert "a=ice-lite" in call["sdp"] and "a=setup:passive" in call["sdp"]
    sandbox.wait("call", callId=call["id"], state="CONNECTED")
    got = sandbox.api("GET", f"{CALLS}/{call['id']}").json()
    assert got["status"] == "CONNECTED" and got["legId"] == call["legId"]
    listed = sandbox.api("GET", CALLS).json()["items"]
    assert [c["id"] for c in listed] == [call["id"]]
    assert sandbox.api("DELETE", f"{CALLS}/{call['id']}").status_code == 204
    body = ended(sandbox, receiver, provisioned, call["id"])
    assert body["content"]["reasonCode"] == "BYE"
    assert body["content"]["sessionId"] == provisioned.sessions["1000"]
    again = sandbox.api("DELETE", f"{CALLS}/{call['id']}")
    assert again.status_code == 409
    assert "it is ENDED" in again.json()["message"]
    assert sandbox.api("GET", CALLS).json()["items"] == []


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("busy", "BUSY"), ("reject", "REJECTED"), ("no-answer", "NO_ANSWER")],
)
def test_destination_behaviours_end_the_call(
    sandbox: Sandbox, receiver: Receiver, behaviour: str, reason: str
) -> None:
    provisioned = sandbox.provision(receiver)
    put = sandbox.ctl(
        "PUT", "/numbers/+15557654321", json={"behaviour": behaviour, "after_seconds": 0.1}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {"number": "+15557654321", "behaviour": behaviour, "afterSeconds": 0.1}
    call = make_call(sandbox, provisioned, dial="+15557654321").json()
    body = ended(sandbox, receiver, provisioned, call["id"])
    assert body["content"]["reasonCode"] == reason
    state = sandbox.call(call["id"])
    assert (state["state"], state["outcome"]) == ("ENDED", reason)
    assert sandbox.ctl("GET", "/numbers").json()["items"][0]["behaviour"] == behaviour


def test_answer_after_a_delay_on_the_manual_clock(manual: Sandbox, receiver: Receiver) -> None:
    provisioned = manual.provision(receiver)
    manual.ctl("PUT", "/numbers/+15550000001", json={"behavior": "answer", "afterSeconds": 5})
    call = make_call(manual, provisioned, dial="+15550000001").json()
    manual.wait("call", callId=call["id"], state="RINGING")
    manual.advance(4.9)
    assert manual.api("GET", f"{CALLS}/{call['id']}").json()["status"] == "RINGING"
    manual.advance(0.1)
    manual.wait("call", callId=call["id"], state="CONNECTED")


@pytest.mark.parametrize(
    ("override", "status", "field"),
    [
        ({"deviceId": "no-such-device"}, 400, "deviceId"),
        ({"extensionNumber": "1001"}, 400, "extensionNumber"),
        ({"inCallChannelId": "Webhook.none"}, 400, "inCallChannelId"),
        ({"dialString": "call me"}, 400, "dialString"),
        ({"sdp": "hello"}, 400, "sdp"),
        ({"sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"}, 400, "sdp"),
        ({"organizationId": "another-org"}, 403, None),
    ],
)
def test_make_call_refuses_bad_references(
    sandbox: Sandbox, receiver: Receiver, override: dict[str, str], status: int, field: str | None
) -> None:
    provisioned = sandbox.provision(receiver)
    reply = make_call(sandbox, provisioned, **override)
    assert reply.status_code == status, reply.text
    if field is not None:
        assert reply.json()["constraintViolations"] == [{"field": field, "constraint": "INVALID"}]
    assert sandbox.ctl("GET", "/calls").json()["items"] == []


# -- inbound ----------------------------------------------------------------------------------


def test_inbound_call_full_cycle(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    call_id = place(sandbox)
    (incoming,) = sandbox.wait("notification", type="incoming", outcome="delivered")
    envelope = incoming["body"]
    assert keys_of(envelope) == keys_of(seed("incoming"))
    assert (envelope["usage"], envelope["ttl"]) == ("VOIP", "30")
    assert envelope["content"] == {
        "sessionId": provisioned.sessions["1000"],
        "organizationId": sandbox.org,
        "extensionNumber": "1000",
        "callId": call_id,
        "name": "Bob",
        "number": "+15143334444",
    }
    ring = sandbox.api(
        "POST",
        f"{CALLS}/{call_id}/ringing",
        json={
            "inCallChannelId": provisioned.channel_id,
            "incomingNotificationTimestamp": envelope["timestamp"],
        },
    )
    assert ring.status_code == 204
    assert sandbox.call(call_id)["state"] == "RINGING"
    answered = answer(sandbox, provisioned, call_id)
    assert answered.status_code == 200, answered.text
    assert keys_of(answered.json()) == keys_of(seed("call_created"))
    assert answered.json()["status"] == "CONNECTED"
    assert parse_offer(answered.json()["sdp"]).telephone_event_pt == 101
    for action, flag, value in [
        ("hold", "isOnHold", True),
        ("unhold", "isOnHold", False),
        ("mute", "isMuted", True),
        ("unmute", "isMuted", False),
    ]:
        assert sandbox.api("POST", f"{CALLS}/{call_id}/{action}").status_code == 204
        assert sandbox.api("GET", f"{CALLS}/{call_id}").json()[flag] is value
    assert sandbox.api("POST", f"{CALLS}/{call_id}/dtmf", json={"tone": "12#"}).status_code == 204
    assert sandbox.api("POST", f"{CALLS}/{call_id}/dtmf", json={"tone": "x"}).status_code == 400
    offered = sandbox.api("PUT", f"{CALLS}/{call_id}/offer", json={"sdp": OFFER})
    assert offered.status_code == 200 and offered.json()["sdp"] != answered.json()["sdp"]
    hangup = sandbox.ctl("POST", f"/calls/{call_id}/hangup")
    assert hangup.status_code == 200 and hangup.json()["state"] == "ENDED"
    body = ended(sandbox, receiver, provisioned, call_id)
    assert keys_of(body) == keys_of(seed("ended"))
    assert (body["usage"], body["ttl"], body["content"]["reasonCode"]) == ("ALERT", "3600", "BYE")
    record = sandbox.call(call_id)
    assert record["dtmf"] == ["12#"]
    assert record["outcome"] == "COMPLETED"
    events = [e["event"] for e in record["events"]]
    for expected in (
        "created",
        "notification",
        "hold",
        "unhold",
        "mute",
        "unmute",
        "dtmf",
        "ended",
    ):
        assert expected in events, events
    assert record["answerSdp"] == offered.json()["sdp"]
    assert sandbox.ctl("POST", f"/calls/{call_id}/hangup").status_code == 409


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"action": "SEND_TO_VOICEMAIL"}, "VOICEMAIL"),
        ({}, "REJECTED"),
        ({"destination": "+15550009999"}, "FORWARDED"),
    ],
)
def test_reject(sandbox: Sandbox, receiver: Receiver, body: dict[str, str], outcome: str) -> None:
    provisioned = sandbox.provision(receiver)
    call_id = place(sandbox)
    reply = sandbox.api("POST", f"{CALLS}/{call_id}/reject", json=body)
    assert reply.status_code == 204, reply.text
    assert ended(sandbox, receiver, provisioned, call_id)["content"]["reasonCode"] == "REJECTED"
    assert sandbox.call(call_id)["outcome"] == outcome


def test_reject_refuses_unknown_actions(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.provision(receiver)
    call_id = place(sandbox)
    reply = sandbox.api("POST", f"{CALLS}/{call_id}/reject", json={"action": "HANG_UP"})
    assert reply.json()["constraintViolations"] == [{"field": "action", "constraint": "INVALID"}]
    assert sandbox.call(call_id)["state"] == "INCOMING"


def test_state_checks_name_the_state(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    call_id = place(sandbox)
    hold = sandbox.api("POST", f"{CALLS}/{call_id}/hold")
    assert hold.status_code == 409
    assert hold.json()["errorCode"] == "CONFLICT"
    assert f"cannot hold call {call_id}: it is INCOMING" in hold.json()["message"]
    sandbox.ctl("POST", f"/calls/{call_id}/hangup")
    late = answer(sandbox, provisioned, call_id)
    assert late.status_code == 409
    assert f"cannot answer call {call_id}: it is ENDED" in late.json()["message"]
    outbound = make_call(sandbox, provisioned).json()
    wrong_way = answer(sandbox, provisioned, outbound["id"])
    assert wrong_way.status_code == 409 and "outbound" in wrong_way.json()["message"]


def test_caller_hanging_up_while_ringing_is_a_cancel(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    call_id = place(sandbox)
    sandbox.ctl("POST", f"/calls/{call_id}/hangup")
    assert ended(sandbox, receiver, provisioned, call_id)["content"]["reasonCode"] == "CANCEL"


def test_ring_timeout_on_the_manual_clock(manual: Sandbox, receiver: Receiver) -> None:
    provisioned = manual.provision(receiver)
    call_id = place(manual)
    manual.wait("notification", type="incoming", outcome="delivered")
    manual.advance(29)
    assert manual.call(call_id)["state"] == "INCOMING"
    manual.advance(1)
    assert ended(manual, receiver, provisioned, call_id)["content"]["reasonCode"] == "NO_ANSWER"
    assert manual.call(call_id)["outcome"] == "MISSED"


def test_blind_transfer_ends_the_leg(sandbox: Sandbox, receiver: Receiver) -> None:
    provisioned = sandbox.provision(receiver)
    call_id = place(sandbox)
    assert answer(sandbox, provisioned, call_id).status_code == 200
    missing = sandbox.api("POST", f"{CALLS}/{call_id}/blind-transfer", json={})
    assert missing.json()["constraintViolations"] == [
        {"field": "dialString", "constraint": "REQUIRED"}
    ]
    moved = sandbox.api(
        "POST", f"{CALLS}/{call_id}/blind-transfer", json={"dialString": "+15551112222"}
    )
    assert moved.status_code == 204
    assert ended(sandbox, receiver, provisioned, call_id)["content"]["reasonCode"] == "TRANSFERRED"
    assert sandbox.call(call_id)["transferTarget"] == "+15551112222"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/answer", {"sdp": OFFER, "inCallChannelId": "x"}),
        ("POST", "/reject", {}),
        ("POST", "/ringing", {}),
        ("POST", "/hold", None),
        ("POST", "/unhold", None),
        ("POST", "/mute", None),
        ("POST", "/unmute", None),
        ("POST", "/dtmf", {"tone": "1"}),
        ("POST", "/blind-transfer", {"dialString": "+1555"}),
        ("PUT", "/offer", {"sdp": OFFER}),
    ],
)
def test_unknown_call_is_404(
    sandbox: Sandbox, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    reply = sandbox.api(method, f"{CALLS}/no-such-call{suffix}", json=body)
    assert reply.status_code == 404, reply.text
    assert reply.json()["errorCode"] == "NOT_FOUND"
    assert "no-such-call" in reply.json()["message"]


def test_control_api_refuses_calls_to_unregistered_extensions(sandbox: Sandbox) -> None:
    reply = sandbox.ctl("POST", "/calls", json={"extension": "1000", "number": "+15550001111"})
    assert reply.status_code == 409
    assert "not registered on any device" in reply.json()["message"]
    bad = sandbox.ctl("POST", "/calls", json={"number": "abc"})
    assert bad.json()["constraintViolations"] == [
        {"field": "extension", "constraint": "REQUIRED"},
        {"field": "number", "constraint": "INVALID"},
    ]
    assert sandbox.ctl("GET", "/calls/none").status_code == 404


def test_every_registered_device_is_offered_the_call(sandbox: Sandbox, receiver: Receiver) -> None:
    first = sandbox.provision(receiver)
    second = sandbox.provision(receiver)
    call_id = place(sandbox)
    offers = sandbox.wait("notification", type="incoming", outcome="delivered", count=2)
    by_channel = {o["channelId"]: o["body"]["content"] for o in offers}
    assert by_channel[first.channel_id]["sessionId"] == first.sessions["1000"]
    assert by_channel[second.channel_id]["sessionId"] == second.sessions["1000"]
    assert {c["callId"] for c in by_channel.values()} == {call_id}
    assert answer(sandbox, second, call_id).status_code == 200
    assert sandbox.call(call_id)["deviceId"] == second.device_id


# -- the far end ----------------------------------------------------------------------------


class ScriptedFarEnd:
    """Records what it is given; hangs up by itself when the script says so."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.scripts: dict[str, Any] = {}
        self.hangups: list[str] = []

    async def answer(self, call: SimCall, offer_sdp: str) -> str:
        self.scripts[call.id] = call.script
        after = (call.script or {}).get("hangupAfter")
        if after is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(after, self.sim.far_end_hangup, call.id)
            self.sim.log_call_event(call.id, "far-end-script", hangupAfter=after)
        return build_answer_sdp(parse_offer(offer_sdp))

    async def hangup(self, call: SimCall) -> None:
        self.hangups.append(call.id)

    async def close(self) -> None:
        return None


def scripted(sim: Simulator) -> FarEnd:
    return ScriptedFarEnd(sim)


def test_far_end_gets_the_script_and_can_hang_up(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = make_sandbox(far_end_factory=scripted)
    provisioned = sandbox.provision(receiver)
    script = {"audio": "hello.wav", "digits": [{"at": 1.0, "digits": "1"}], "hangupAfter": 0.05}
    call_id = place(sandbox, script=script)
    assert answer(sandbox, provisioned, call_id).status_code == 200
    assert ended(sandbox, receiver, provisioned, call_id)["content"]["reasonCode"] == "BYE"
    far_end = sandbox.sim.far_end
    assert isinstance(far_end, ScriptedFarEnd)
    assert far_end.scripts[call_id] == script
    assert far_end.hangups == [call_id]
    record = sandbox.call(call_id)
    assert record["script"] == script
    assert "far-end-script" in [e["event"] for e in record["events"]]


def test_number_script_reaches_the_far_end_of_outbound_calls(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = make_sandbox(far_end_factory=scripted)
    provisioned = sandbox.provision(receiver)
    script = {"say": "survey answers", "digits": "2"}
    sandbox.ctl("PUT", "/numbers/+15550002222", json={"behaviour": "answer", "script": script})
    call = make_call(sandbox, provisioned, dial="+15550002222").json()
    far_end = sandbox.sim.far_end
    assert isinstance(far_end, ScriptedFarEnd)
    assert far_end.scripts[call["id"]] == script
    assert sandbox.api("DELETE", f"{CALLS}/{call['id']}").status_code == 204
    ended(sandbox, receiver, provisioned, call["id"])
    assert far_end.hangups == [call["id"]]
