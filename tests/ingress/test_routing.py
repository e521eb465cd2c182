"""Pure routing and dedup-key decisions, with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.ingress import notifications as n
from worker.config import ConfigError, Secret, Settings
from worker.goto.events import NotificationError, notification_call_id, parse_notification
from worker.ingress.app import create_app
from worker.ingress.dedup import dedup_key
from worker.ingress.intake import parse_body
from worker.ingress.routing import (
    Drop,
    Enqueue,
    FollowUp,
    RecordGreetings,
    classify,
    route_follow_up,
)

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


def test_incoming_expires_before_its_ttl_runs_out() -> None:
    sent = NOW - timedelta(seconds=2)
    decision = classify(parse_notification(n.incoming("c1", timestamp=sent)), NOW)
    assert decision == Enqueue("tasks.calls.on_incoming", "calls", pytest.approx(23.0))


def test_incoming_without_ttl_assumes_30_seconds() -> None:
    body = n.incoming("c1", timestamp=NOW)
    del body["ttl"]
    decision = classify(parse_notification(body), NOW)
    assert isinstance(decision, Enqueue)
    assert decision.expires == pytest.approx(25.0)


@pytest.mark.parametrize(("age", "stale"), [(29.0, False), (31.0, True), (3000.0, True)])
def test_stale_when_older_than_ttl(age: float, stale: bool) -> None:
    body = n.incoming("c1", timestamp=NOW - timedelta(seconds=age))
    decision = classify(parse_notification(body), NOW)
    assert isinstance(decision, Drop)
    assert ("stale" in decision.reason) is stale
    assert ("too late" in decision.reason) is not stale


def test_ended_follows_its_owner_or_goes_to_the_shared_queue() -> None:
    decision = classify(parse_notification(n.ended("c9", timestamp=NOW)), NOW)
    assert isinstance(decision, FollowUp)
    owned = route_follow_up(decision, "node-a@host")
    assert owned == Enqueue("tasks.calls.on_call_event", "node-a@host.dq2", 60.0, "node-a@host")
    unowned = route_follow_up(decision, None)
    assert unowned == Enqueue("tasks.calls.on_call_event", "calls", 3600.0)


def test_unknown_types_route_only_for_owned_calls() -> None:
    decision = classify(parse_notification(n.other("hold", call_id="c3", timestamp=NOW)), NOW)
    assert isinstance(decision, FollowUp)
    assert route_follow_up(decision, "node-b@h") == Enqueue(
        "tasks.calls.on_call_event", "node-b@h.dq2", 60.0, "node-b@h"
    )
    assert isinstance(route_follow_up(decision, None), Drop)
    assert isinstance(classify(parse_notification(n.other("hold", timestamp=NOW)), NOW), Drop)


def test_greetings_and_foreign_sources() -> None:
    decision = classify(parse_notification(n.greetings(timestamp=NOW)), NOW)
    assert decision == RecordGreetings(n.ORG, n.EXTENSION, NOW.isoformat(), 3600)
    foreign = {**n.incoming("c1", timestamp=NOW), "source": "Presence"}
    assert isinstance(classify(parse_notification(foreign), NOW), Drop)


def test_dedup_key_identifies_a_notification_across_spellings() -> None:
    body = n.incoming("c1", timestamp=NOW)
    respelled = {**body, "ttl": 30, "timestamp": NOW.astimezone().isoformat(), "extra": 1}
    assert dedup_key(parse_notification(body)) == dedup_key(parse_notification(respelled))
    later = n.incoming("c1", timestamp=NOW + timedelta(microseconds=1))
    assert dedup_key(parse_notification(body)) != dedup_key(parse_notification(later))
    other_call = n.incoming("c2", timestamp=NOW)
    assert dedup_key(parse_notification(body)) != dedup_key(parse_notification(other_call))
    ended = n.ended("c1", timestamp=NOW)
    assert dedup_key(parse_notification(body)) != dedup_key(parse_notification(ended))
    # No call or session: the content decides.
    first = {**n.other("ping", timestamp=NOW), "content": {"a": 1}}
    second = {**n.other("ping", timestamp=NOW), "content": {"a": 2}}
    assert dedup_key(parse_notification(first)) != dedup_key(parse_notification(second))


def test_a_short_or_missing_secret_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="CALLWORKER_WEBHOOK_SECRET"):
        create_app(Settings(redis_url=redis_url, webhook_secret=Secret("short")))
    with pytest.raises(ConfigError, match="CALLWORKER_REDIS_URL"):
        create_app(Settings(webhook_secret=Secret("x" * 32)))


def test_parse_body_keeps_the_body_as_the_task_argument_when_it_can() -> None:
    incoming = json.dumps(n.incoming("c1", timestamp=NOW)).encode()
    notification, payload = parse_body(incoming)
    assert notification_call_id(notification) == "c1"
    assert payload is incoming
    ended = json.dumps(n.ended("c1", timestamp=NOW), indent=1).encode()
    notification, payload = parse_body(ended)
    assert notification.type == "ended"
    assert payload is ended


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_parse_body_re_encodes_other_encodings_as_utf8(encoding: str) -> None:
    sent = n.incoming("c-enc", timestamp=NOW)
    sent["content"]["name"] = "Zoë"
    notification, payload = parse_body(json.dumps(sent).encode(encoding))
    assert notification_call_id(notification) == "c-enc"
    again = json.loads(payload.decode("utf-8"))
    assert again["content"]["name"] == "Zoë"
    assert parse_notification(again) == notification


def test_parse_body_names_the_bad_field() -> None:
    body = {**n.incoming("c1", timestamp=NOW), "ttl": "soon"}
    with pytest.raises(NotificationError, match=r"^ttl: "):
        parse_body(json.dumps(body).encode())
    with pytest.raises(NotificationError, match=r"^body: "):
        parse_body(b"\xff{")
