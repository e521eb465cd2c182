"""`callworker prompts build` and `list`, run as the real command with the real espeak-ng."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import env_without_callworker
from worker.media.prompts import PromptLibrary, load_prompt
from worker.media.synth import SynthError, synthesize

REPO = Path(__file__).resolve().parents[2]

MANIFEST = """\
prompts:
  hello:
    file: hello.wav
    text: Hello, and thanks for calling.
    description: a greeting
  choice:
    file: choice.mp3
    text: "-- Press 1 for sales."
  beep:
    file: beep.wav
    tone: {frequencies: [1000], seconds: 0.25}
  studio:
    file: studio.wav
    description: recorded by a person, nothing to build
"""


def callworker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from worker.cli import main; main()", *args],
        cwd=REPO,
        env=env or env_without_callworker(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed; run scripts/bootstrap")
    path = tmp_path / "prompts"
    path.mkdir()
    (path / "manifest.yaml").write_text(MANIFEST)
    return path


def loudness(path: Path) -> float:
    samples = np.frombuffer(load_prompt(path).pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


def test_build_speaks_text_entries_and_makes_tones(folder: Path) -> None:
    done = callworker("prompts", "build", "--folder", str(folder))
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line.split()[0] for line in done.stdout.splitlines()}
    assert lines == {"hello": "spoken", "choice": "spoken", "beep": "tone", "studio": "skipped"}
    with wave.open(str(folder / "hello.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 16000, 2)
        assert 1.0 < wav.getnframes() / 16000 < 5.0
    hello = load_prompt(folder / "hello.wav")
    choice = load_prompt(folder / "choice.mp3")  # text starting with "--" is not an option
    assert 0.8 < choice.duration < 4.0
    assert loudness(folder / "hello.wav") > 500 and loudness(folder / "choice.mp3") > 500
    beep = load_prompt(folder / "beep.wav")
    assert beep.duration == pytest.approx(0.25, abs=0.002)
    assert hello.duration > beep.duration
    assert not (folder / "studio.wav").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_build_keeps_existing_files_unless_forced(folder: Path) -> None:
    assert callworker("prompts", "build", "--folder", str(folder), "hello").returncode == 0
    first = (folder / "hello.wav").stat().st_mtime_ns
    again = callworker("prompts", "build", "--folder", str(folder), "hello")
    assert again.stdout.split()[0] == "kept"
    assert (folder / "hello.wav").stat().st_mtime_ns == first
    assert not (folder / "choice.mp3").exists()  # only the named entry was built
    forced = callworker(
        "prompts", "build", "--folder", str(folder), "--force", "--rate", "8000", "hello"
    )
    assert forced.returncode == 0, forced.stderr
    with wave.open(str(folder / "hello.wav"), "rb") as wav:
        assert wav.getframerate() == 8000


def test_list_shows_durations(folder: Path) -> None:
    callworker("prompts", "build", "--folder", str(folder), "hello", "beep")
    listed = callworker("prompts", "list", "--folder", str(folder))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "0.25s" in rows["beep"]
    assert "a greeting" in rows["hello"]
    assert "missing" in rows["choice"] and "missing" in rows["studio"]


def test_clear_errors(folder: Path, tmp_path: Path) -> None:
    unknown = callworker("prompts", "build", "--folder", str(folder), "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("callworker: no entries ['nope']")
    no_manifest = callworker("prompts", "build", "--folder", str(tmp_path / "empty"))
    assert no_manifest.returncode == 1 and "no prompt manifest at" in no_manifest.stderr
    # a PATH with ffmpeg but without espeak-ng
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    env = env_without_callworker() | {"PATH": str(tools)}
    missing = callworker("prompts", "build", "--folder", str(folder), "hello", env=env)
    assert missing.returncode == 1
    assert "espeak-ng is not installed" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_bad_voice_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="no voice 'no-such-voice'"):
        synthesize("hello", tmp_path / "x.wav", voice="no-such-voice")
    assert not (tmp_path / "x.wav").exists()


def test_bundled_manifest_builds_into_a_copy(tmp_path: Path) -> None:
    copy = tmp_path / "bundled"
    copy.mkdir()
    shutil.copy(REPO / "audio_prompts" / "manifest.yaml", copy / "manifest.yaml")
    done = callworker("prompts", "build", "--folder", str(copy))
    assert done.returncode == 0, done.stderr
    library = PromptLibrary(copy)
    for name in ("greeting", "menu", "invalid", "goodbye", "after_hours", "beep"):
        assert library.get(name).duration > 0.3
    assert os.path.getsize(copy / "after_hours.wav") < 400_000  # small files: 16 kHz mono
