"""`make demo` runs `callworker demo`: every scripted call must end as expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import env_without_callworker


def test_demo_exits_zero_with_every_call_as_expected(tmp_path: Path) -> None:
    env = env_without_callworker() | {"CALLWORKER_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout[done.stdout.index("call  ") :]
    for name in (
        "answered, greeted, recorded",
        "after hours: to voicemail",
        "caller hangs up mid-prompt",
        "blocklisted caller",
    ):
        line = next(row for row in table.splitlines() if row.startswith(name))
        assert line.rstrip().endswith("ok"), line
    assert "every scripted call ended as expected" in done.stdout
    recordings = list((tmp_path / "data" / "demo" / "data" / "recordings").glob("*.wav"))
    assert len(recordings) == 1
