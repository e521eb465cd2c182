"""An inbound call end to end through real processes: webhook, Celery, media, store."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.media.conftest import pcm_array, read_wav, similarity
from tests.pipeline.conftest import Running
from worker.media.prompts import PromptLibrary


def test_inbound_call_is_answered_greeted_recorded_and_written(
    start_system: Callable[..., Running], caller_speech: Path
) -> None:
    run = start_system()
    call_id = run.place_call(audio=str(caller_speech), hangup_at=30)

    detail = run.final_record(call_id)
    call = detail.call
    assert call.state == "ended", run.logs()
    assert call.outcome == "completed", (call, run.logs())
    assert call.node is not None and call.node.startswith("node1@")
    assert call.answered_at is not None
    assert [e.type for e in detail.events][:1] == ["incoming"]

    # Exactly one answer request reached GoTo, carrying our SDP offer, and we hung up.
    answers = run.requests(path=f"/web-calls/v1/calls/{call_id}/answer")
    assert len(answers) == 1
    hangups = [r for r in run.requests(method="DELETE") if r["path"].endswith(call_id)]
    assert len(hangups) == 1
    assert run.sim_call(call_id)["state"] == "ENDED"

    # The caller heard the greeting: its audio is in what the far end recorded.
    heard = run.http.get(f"/_sim/calls/{call_id}/heard", params={"energy": "0"}).json()
    greeting = PromptLibrary(run.system.settings.prompts_dir).get("greeting")
    match = similarity(pcm_array(greeting.pcm), read_wav(Path(heard["wav"])))
    assert match.envelope > 0.9, match
    assert 0 <= match.lag_seconds < 1.0, match

    # The worker recorded the caller for the configured 3 s, and it is what they said.
    assert len(detail.recordings) == 1
    recording = detail.recordings[0]
    path = Path(recording.path)
    assert path.stat().st_mode & 0o777 == 0o600
    with wave.open(str(path), "rb") as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert abs(seconds - 3.0) < 0.1
    assert abs(recording.duration_seconds - seconds) < 0.05
    source = read_wav_any(caller_speech)
    said = similarity(read_wav(path), source)
    assert said.envelope > 0.9, said


def read_wav_any(path: Path) -> Any:
    from worker.media.prompts import load_prompt

    return pcm_array(load_prompt(path).pcm)


def test_recordings_are_converted_when_the_call_ends(start_system: Callable[..., Running]) -> None:
    run = start_system(RECORDING_FORMAT="mp3")
    call_id = run.place_call(hangup_at=30)
    detail = run.final_record(call_id)
    assert detail.call.outcome == "completed", run.logs()
    [recording] = detail.recordings
    path = Path(recording.path)
    assert path.suffix == ".mp3" and recording.format == "mp3"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not path.with_suffix(".wav").exists()
    assert path.read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert abs(recording.duration_seconds - 3.0) < 0.2
