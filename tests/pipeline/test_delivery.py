"""Duplicates, routing to the owning node, a killed node, a full node: real processes."""

from __future__ import annotations

import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tasks.app import create_celery
from tests.helpers import wait_until
from tests.pipeline.conftest import Running


def _dropped_incoming(run: Running, call_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        items = run.http.get(
            "/_sim/notifications", params={"type": "incoming", "callId": call_id}
        ).json()["items"]
        return items[0] if items and items[0]["outcome"] == "dropped" else None

    note: dict[str, Any] = wait_until(find, timeout=10, what="the dropped incoming notification")
    return dict(note["body"])


def test_five_copies_of_one_incoming_answer_once(start_system: Callable[..., Running]) -> None:
    run = start_system()
    fault = run.http.post("/_sim/faults", json={"type": "webhook", "drop": True})
    assert fault.status_code == 201, fault.text
    call_id = run.place_call(hangup_at=30)
    body = _dropped_incoming(run, call_id)
    settings = run.system.settings
    url = (
        f"http://127.0.0.1:{settings.ingress_port}/webhooks/goto/{settings.webhook_secret.reveal()}"
    )
    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: httpx.post(url, json=body).status_code, range(5)))
    assert statuses == [204] * 5

    detail = run.final_record(call_id)
    assert detail.call.outcome == "completed", run.logs()
    assert len(run.requests(path=f"/web-calls/v1/calls/{call_id}/answer")) == 1
    assert [e.type for e in detail.events].count("incoming") == 1


def test_follow_up_events_reach_the_owning_node(start_system: Callable[..., Running]) -> None:
    run = start_system(RECORD_SECONDS="30")
    first = run.place_call(number="+15145550011", hangup_at=4)
    wait_until(
        lambda: (r := run.record(first)) is not None and r.call.state == "answered",
        timeout=20,
        what="node1 to answer the first call",
    )
    node2 = run.system.add_worker("node2")
    # node1 stops taking new calls from the shared queue but keeps its own queue,
    # so the second call lands on node2 while node1 still owns the first.
    app = create_celery(run.system.settings)
    node1 = next(r.call.node for r in [run.record(first)] if r is not None)
    assert node1 is not None
    replies = app.control.cancel_consumer("calls", destination=[node1], reply=True, timeout=5)
    assert replies, "node1 did not acknowledge cancel_consumer"
    second = run.place_call(number="+15145550012", hangup_at=4)

    for call_id, owner in ((first, node1), (second, node2)):
        detail = run.final_record(call_id)
        assert detail.call.node == owner, run.logs()
        # The caller hung up mid-recording: GoTo's `ended` reached the owner's live call.
        assert detail.call.outcome == "caller_hangup", (detail.call, run.logs())
        ended = [e for e in detail.events if e.type == "ended"]
        assert len(ended) == 1 and ended[0].node == owner
    app.close()


def test_killed_node_calls_are_reaped_and_recordings_kept(
    start_system: Callable[..., Running], caller_speech: Path
) -> None:
    run = start_system(RECORD_SECONDS="60")
    call_id = run.place_call(audio=str(caller_speech), loop_audio=True, hangup_at=120)
    recordings = run.system.settings.recordings_dir

    def flushed() -> Path | None:
        found = list(recordings.glob(f"*-{call_id}.wav"))
        return found[0] if found and found[0].stat().st_size > 44 + 48000 * 2 else None

    partial: Path = wait_until(flushed, timeout=20, what="a second of recording on disk")
    worker = run.system.child("worker-node1")
    assert worker.process is not None
    worker.process.kill()
    worker.process.wait()

    detail = run.final_record(call_id, timeout=60)
    assert detail.call.state == "failed", run.logs()
    assert "stopped" in (detail.call.reason_code or ""), detail.call
    hangups = [r for r in run.requests(method="DELETE") if r["path"].endswith(call_id)]
    assert len(hangups) == 1 and hangups[0]["status"] == 204
    assert run.sim_call(call_id)["state"] == "ENDED"
    assert [Path(r.path) for r in detail.recordings] == [partial]
    with wave.open(str(partial), "rb") as wav:
        assert wav.getnframes() >= 48000
        assert len(wav.readframes(wav.getnframes())) == wav.getnframes() * 2


def test_full_node_sends_overflow_to_voicemail(start_system: Callable[..., Running]) -> None:
    run = start_system(MAX_LIVE_CALLS="1", RECORD_SECONDS="30")
    busy = run.place_call(number="+15145550021", hangup_at=60)
    wait_until(
        lambda: (r := run.record(busy)) is not None and r.call.state == "answered",
        timeout=20,
        what="the first call to be answered",
    )
    overflow = run.place_call(number="+15145550022", hangup_at=60)
    detail = run.final_record(overflow)
    assert detail.call.outcome == "voicemail", run.logs()
    assert "full (1/1" in (detail.call.flow or {}).get("reason", "")
    assert run.sim_call(overflow)["outcome"] == "VOICEMAIL"
    assert run.requests(path=f"/web-calls/v1/calls/{overflow}/answer") == []

    run.http.post(f"/_sim/calls/{busy}/hangup")
    assert run.final_record(busy).call.outcome == "caller_hangup"


def test_blocklist_and_after_hours_go_to_voicemail(start_system: Callable[..., Running]) -> None:
    # Open on no day of the week but the one after tomorrow's: closed now, whatever "now" is.
    import datetime as dt

    closed_day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%a").lower()
    run = start_system(BLOCKLIST="+15550100666", OPEN_HOURS=f"{closed_day} 00:00-00:01")
    blocked = run.place_call(number="+15550100666")
    after_hours = run.place_call(number="+15145550031")
    for call_id, reason in ((blocked, "blocklist"), (after_hours, "outside opening hours")):
        detail = run.final_record(call_id)
        assert detail.call.outcome == "voicemail", run.logs()
        assert reason in (detail.call.flow or {}).get("reason", "")
        assert run.sim_call(call_id)["outcome"] == "VOICEMAIL"


def test_a_failed_answer_ends_the_call_and_says_why(start_system: Callable[..., Running]) -> None:
    run = start_system()
    fault = {"type": "server-error", "status": 503, "count": 1, "method": "POST"}
    fault["path"] = "/web-calls/v1/calls/"
    assert run.http.post("/_sim/faults", json=fault).status_code == 201
    call_id = run.place_call(hangup_at=30)
    detail = run.final_record(call_id)
    assert detail.call.state == "failed", run.logs()
    assert "answer failed" in (detail.call.reason_code or "")
    assert "503" in (detail.call.reason_code or "")
    # Not answered twice; hung up instead.
    assert len(run.requests(path=f"/web-calls/v1/calls/{call_id}/answer")) == 1
    hangups = [r for r in run.requests(method="DELETE") if r["path"].endswith(call_id)]
    assert len(hangups) == 1
    assert run.sim_call(call_id)["state"] == "ENDED"


def test_sigterm_drains_the_node_then_hangs_up_what_is_left(
    start_system: Callable[..., Running],
) -> None:
    run = start_system(RECORD_SECONDS="60")  # the system's nodes drain for 2 s
    call_id = run.place_call(hangup_at=120)
    wait_until(
        lambda: (r := run.record(call_id)) is not None and r.call.state == "answered",
        timeout=20,
        what="the call to be answered",
    )
    worker = run.system.child("worker-node1")
    assert worker.process is not None
    worker.process.terminate()
    assert worker.process.wait(timeout=30) == 0, run.logs()

    detail = run.final_record(call_id, timeout=10)
    assert detail.call.state == "ended", run.logs()
    assert detail.call.reason_code == "node shutting down"
    hangups = [r for r in run.requests(method="DELETE") if r["path"].endswith(call_id)]
    assert len(hangups) == 1
    assert run.sim_call(call_id)["state"] == "ENDED"
    # What was recorded until then is kept.
    assert len(detail.recordings) == 1 and detail.recordings[0].duration_seconds > 0.5
