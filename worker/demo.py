"""``callworker demo``: the whole system against the sandbox, with scripted callers.

It runs what ``callworker up`` runs (a private redis-server, gotosim with a
real WebRTC far end, the ingress, a worker node, the beat) in a fresh
``<data dir>/demo`` folder, with routing rules written for the demo:

- extension 1000 is the main line: answered with the example
  auto-attendant's menu (``examples/attendant/flows``);
- extension 1001 is a line whose office is closed today: after hours, its
  calls go to GoTo voicemail;
- a caller on the blocklist goes to voicemail.

Then it places scripted sandbox calls, waits for each to finish, prints a
table of what happened and returns whether every call ended as expected.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from worker.config import Settings
from worker.media.synth import synthesize
from worker.store import CallDetail, Store
from worker.up import System, free_port

BLOCKED_NUMBER = "+15550100666"
ATTENDANT = Path(__file__).resolve().parent.parent / "examples" / "attendant"
CALL_DEADLINE = 90.0


@dataclass(frozen=True)
class Scenario:
    name: str
    extension: str
    number: str
    caller: str
    expect: str
    script: dict[str, Any] = field(default_factory=dict)
    expect_recording: bool = False
    expect_digits: str = ""


@dataclass
class Result:
    scenario: Scenario
    call_id: str
    detail: CallDetail | None

    @property
    def outcome(self) -> str:
        if self.detail is None:
            return "(not finished)"
        return self.detail.call.outcome or self.detail.call.state

    @property
    def digits(self) -> str:
        path = self.detail.call.path if self.detail is not None else None
        return "".join(path.get("digits", [])) if path else ""

    @property
    def ok(self) -> bool:
        if self.outcome != self.scenario.expect or self.digits != self.scenario.expect_digits:
            return False
        has_recording = self.detail is not None and bool(self.detail.recordings)
        return has_recording == self.scenario.expect_recording

    def row(self) -> list[str]:
        detail = self.detail
        duration = "-"
        digits = "-"
        recording = "-"
        if detail is not None:
            call = detail.call
            if call.ended_at is not None:
                duration = f"{(call.ended_at - call.created_at).total_seconds():.1f}s"
            digits = self.digits or "-"
            if detail.recordings:
                rec = detail.recordings[0]
                recording = f"{rec.path} ({rec.duration_seconds:.1f}s)"
        mark = "ok" if self.ok else f"EXPECTED {self.scenario.expect}"
        return [self.scenario.name, self.outcome, duration, digits, recording, mark]


def scenarios(speech: Path) -> list[Scenario]:
    return [
        Scenario(
            "menu: 2 (support), 1, leaves a message",
            "1000",
            "+15145550101",
            "Alice",
            "completed",
            {
                "digits": [{"at": 1.0, "digit": "2"}, {"at": 6.0, "digit": "1"}],
                "audio": str(speech),
                "audio_at": 10.6,
                "hangup_at": 45,
            },
            expect_recording=True,
            expect_digits="21",
        ),
        Scenario("after hours: to voicemail", "1001", "+15145550102", "Bob", "voicemail", {}),
        Scenario(
            "caller hangs up mid-prompt",
            "1000",
            "+15145550103",
            "Carol",
            "caller_hangup",
            {"hangup_at": 0.6},
        ),
        Scenario("blocklisted caller", "1000", BLOCKED_NUMBER, "Spam", "voicemail", {}),
    ]


def write_rules(folder: Path, now: datetime) -> Path:
    """Rules for the demo: extension 1001's office opens only on a day that is not today."""
    closed_day = (now + timedelta(days=2)).strftime("%a").lower()
    (folder / "blocklist.txt").write_text(f"# callers who never reach anyone\n{BLOCKED_NUMBER}\n")
    path = folder / "rules.yaml"
    path.write_text(
        f"""# Written by `callworker demo`.
timezone: UTC
rules:
  - name: blocklist
    when:
      caller_in_list: blocklist.txt
    voicemail: {{}}
  - name: after hours on the 1001 line
    when:
      extension: "1001"
      not:
        hours: "{closed_day} 09:00-17:00"
    voicemail: {{}}
  - name: main line
    answer: {{flow: main}}
"""
    )
    return path


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def run_demo(settings: Settings, echo: Callable[[str], None]) -> bool:
    """Run the demo; True if every scripted call ended as expected."""
    folder = (settings.data_dir / "demo").resolve()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    echo(f"callworker demo: everything runs on this machine; files in {folder}")
    speech = synthesize(
        "Hello, this is Alice. I am calling about my order, which has not arrived yet. "
        "Please call me back this afternoon. Thank you.",
        folder / "caller-alice.wav",
    )
    rules = write_rules(folder, datetime.now(UTC))
    demo_settings = dataclasses.replace(
        settings,
        data_dir=folder / "data",
        recordings_dir=folder / "data" / "recordings",
        rules_file=str(rules),
        flows_dir=str(ATTENDANT / "flows"),
        redis_url="",
        client_id="",
        ingress_port=free_port(),
        webhook_url="",
    )
    system = System(demo_settings, drain_seconds=5)
    try:
        system.start()
        for line in system.lines():
            echo(line)
        results = _place_calls(system, scenarios(speech), echo)
    finally:
        system.stop()
    rows = [["call", "outcome", "duration", "digits", "recording", "check"]]
    rows += [result.row() for result in results]
    echo("")
    for line in _table(rows):
        echo(line)
    passed = all(result.ok for result in results)
    echo("")
    echo(
        "every scripted call ended as expected" if passed else "some calls did not end as expected"
    )
    echo(f"`CALLWORKER_DATA_DIR={folder / 'data'} callworker calls show ID` shows a call's path")
    return passed


def _place_calls(system: System, plan: list[Scenario], echo: Callable[[str], None]) -> list[Result]:
    store = Store(system.settings.effective_database_url)
    results: list[Result] = []
    with httpx.Client(base_url=system.sandbox_url, timeout=10) as http:
        for scenario in plan:
            body: dict[str, Any] = {
                "extension": scenario.extension,
                "number": scenario.number,
                "name": scenario.caller,
            }
            if scenario.script:
                body["script"] = scenario.script
            reply = http.post("/_sim/calls", json=body)
            reply.raise_for_status()
            call_id = str(reply.json()["id"])
            echo(f"  calling {scenario.extension} from {scenario.number}: {scenario.name}")
            results.append(Result(scenario, call_id, None))
        deadline = time.monotonic() + CALL_DEADLINE
        pending = list(results)
        while pending and time.monotonic() < deadline:
            for result in list(pending):
                detail = store.get_call(result.call_id)
                if detail is not None and detail.call.state in ("ended", "failed"):
                    result.detail = detail
                    pending.remove(result)
            time.sleep(0.2)
    return results
