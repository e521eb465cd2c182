"""`make demo` runs `callworker demo`: every scripted call must end as expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import env_without_callworker
from tests.media.conftest import pcm_array, read_wav, similarity
from worker.media.prompts import load_prompt


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
        "menu: 2 (support), 1, leaves a message",
        "after hours: to voicemail",
        "caller hangs up mid-prompt",
        "blocklisted caller",
    ):
        line = next(row for row in table.splitlines() if row.startswith(name))
        assert line.rstrip().endswith("ok"), line
    assert "every scripted call ended as expected" in done.stdout
    demo = tmp_path / "data" / "demo"
    recordings = list((demo / "data" / "recordings").glob("*-support.wav"))
    assert len(recordings) == 1
    # The message left in the support box is what the caller said.
    said = similarity(
        read_wav(recordings[0]), pcm_array(load_prompt(demo / "caller-alice.wav").pcm)
    )
    assert said.envelope > 0.9, said
