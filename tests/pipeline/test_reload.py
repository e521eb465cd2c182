"""Rules edited while calls run: new calls follow the new version, live calls carry on."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.helpers import wait_until
from tests.pipeline.conftest import Running

ANSWER = "timezone: UTC\nrules:\n  - name: everyone\n    answer: {}\n"
VOICEMAIL = "timezone: UTC\nrules:\n  - name: closed for the day\n    voicemail: {}\n"


def test_sighup_reloads_rules_without_dropping_live_calls(
    start_system: Callable[..., Running], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(ANSWER)
    run = start_system(RULES_FILE=str(rules), RECORD_SECONDS="60")
    live = run.place_call(number="+15145550041", hangup_at=120)
    wait_until(
        lambda: (r := run.record(live)) is not None and r.call.state == "answered",
        timeout=20,
        what="the first call to be answered",
    )
    worker = run.system.child("worker-node1")
    assert worker.process is not None
    pid = worker.process.pid

    rules.write_text(VOICEMAIL)
    os.kill(pid, signal.SIGHUP)
    second = run.place_call(number="+15145550042")
    detail = run.final_record(second)
    assert detail.call.outcome == "voicemail", run.logs()
    assert (detail.call.flow or {}).get("rule") == "closed for the day"

    # SIGHUP asked for the reload (Celery's own SIGHUP handler would have restarted the
    # node), the node was not restarted, and its live call is still up.
    assert "reload of rules and flows requested" in worker.log_path.read_text()
    assert worker.alive and worker.process.pid == pid
    record = run.record(live)
    assert record is not None and record.call.state == "answered"
    assert run.sim_call(live)["state"] == "CONNECTED"
    run.http.post(f"/_sim/calls/{live}/hangup")
    assert run.final_record(live).call.outcome == "caller_hangup"
