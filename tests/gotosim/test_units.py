"""The pure parts of gotosim: delivery policy, rotation, clock, paging, field reading."""

from __future__ import annotations

import asyncio

import pytest

from gotosim.clock import ManualClock, iso_offset, iso_zulu
from gotosim.errors import ApiError
from gotosim.faults import Faults, parse_fault
from gotosim.oauth import RefreshToken, should_rotate
from gotosim.validate import Fields, paginate, parse_json_object
from gotosim.webhooks import Step, next_step, redact_url


@pytest.mark.parametrize(
    ("status", "attempt", "step"),
    [
        (200, 1, Step.DELIVERED),
        (204, 3, Step.DELIVERED),
        (404, 1, Step.UNREACHABLE),
        (410, 2, Step.UNREACHABLE),
        (500, 1, Step.RETRY),
        (503, 2, Step.RETRY),
        (503, 3, Step.DROP),
        (None, 1, Step.RETRY),
        (None, 3, Step.DROP),
        (400, 1, Step.DROP),
        (301, 1, Step.DROP),
        (429, 1, Step.DROP),
    ],
)
def test_next_step(status: int | None, attempt: int, step: Step) -> None:
    assert next_step(status, attempt) is step


def test_rotation_rules() -> None:
    token = RefreshToken("v", frozenset(), "p", issued_at=0.0, expires_at=100.0, lineage="l")
    assert should_rotate("always", token, 0.0)
    assert not should_rotate("never", token, 99.0)
    assert not should_rotate("ttl60", token, 59.9)
    assert should_rotate("ttl60", token, 60.0)


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(start=100.0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("soon", 1))]
    await asyncio.sleep(0)  # let both tasks start and register on the clock
    assert clock.pending() == 2
    clock.advance(0.5)
    assert clock.pending() == 2
    clock.advance(0.5)
    assert clock.pending() == 1
    await asyncio.wait_for(asyncio.shield(tasks[1]), 5)
    assert woke == ["soon"]
    clock.advance(9)
    await asyncio.wait_for(tasks[0], 5)
    assert woke == ["soon", "late"]
    assert clock.time() == 110.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_timestamps() -> None:
    assert iso_offset(0.0) == "1970-01-01T00:00:00.000000+00:00"
    assert iso_zulu(1.5) == "1970-01-01T00:00:01.500000Z"


def test_paginate() -> None:
    items = list(range(5))
    assert paginate(items, None, 2) == ([0, 1], "2")
    assert paginate(items, "4", 2) == ([4], None)
    assert paginate(items, "5", 2) == ([], None)
    with pytest.raises(ApiError):
        paginate(items, "6", 2)


def test_fields_collect_every_violation() -> None:
    fields = Fields({"a": {"b": 1}, "c": "x", "d": [1], "e": " "})
    assert fields.string("a.b") is None
    assert fields.string("a.z", required=True) is None
    assert fields.integer("c") is None
    assert fields.string("c.deeper", required=True) is None
    assert fields.array("d", max_items=0) is None
    assert fields.string("e", required=True) is None
    with pytest.raises(ApiError) as caught:
        fields.check()
    assert [(v.field, v.constraint) for v in caught.value.violations] == [
        ("a.b", "INVALID"),
        ("a.z", "REQUIRED"),
        ("c", "INVALID"),
        ("d", "INVALID"),
        ("e", "REQUIRED"),
    ]
    assert caught.value.status == 400


@pytest.mark.parametrize("raw", [b"", b"[1]", b"{", b"\xff", b"[" * 100_000])
def test_parse_json_object_refuses_non_objects(raw: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_json_object(raw)
    assert caught.value.error_code == "MALFORMED_REQUEST"


def test_faults_are_consumed() -> None:
    faults = Faults()
    faults.add(parse_fault({"type": "server-error", "status": 502, "count": 1, "path": "/a"}))
    assert faults.for_request("GET", "/b", 0.0).error is None
    first = faults.for_request("GET", "/a/x", 0.0)
    assert first.error is not None and first.error.status == 502
    assert faults.for_request("GET", "/a/x", 0.0).error is None
    faults.add(parse_fault({"type": "webhook", "status": 500, "count": 2}))
    assert [faults.for_attempt("ch") for _ in range(3)] == [500, 500, None]


def test_redact_url_keeps_only_the_origin() -> None:
    assert redact_url("https://host.example:8443/webhooks/goto/s3cret?x=1") == (
        "https://host.example:8443/…"
    )
