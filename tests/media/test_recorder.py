"""The WAV recorder: content, gaps, stereo, limits, permissions, crash safety, conversion."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.media.audio_match import best_alignment
from worker.media.audio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, silence
from worker.media.prompts import load_prompt, tone_pcm
from worker.media.recorder import (
    RecorderError,
    StopReason,
    WavRecorder,
    convert,
)

REPO = Path(__file__).resolve().parents[2]


def numbered(index: int) -> bytes:
    """A frame whose samples all hold ``index + 1`` (never 0, so silence stands out)."""
    return np.full(FRAME_SAMPLES, index + 1, dtype="<i2").tobytes()


def read(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        data = wav.readframes(params.nframes)
    samples = np.frombuffer(data, dtype="<i2")
    if params.nchannels == 2:
        samples = samples.reshape(-1, 2)
    return params, samples


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_mono_content_equals_the_input(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "r.wav")
    sent = b"".join(numbered(i) for i in range(60))
    for i in range(60):
        assert recorder.write(numbered(i), i * 0.02)
    info = recorder.close()
    params, samples = read(info.path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 48000)
    assert samples.tobytes() == sent
    assert info.duration_seconds == pytest.approx(1.2)
    assert info.size_bytes == info.path.stat().st_size == 44 + len(sent)
    assert info.stop_reason is StopReason.CLOSED
    assert recorder.close() == info  # idempotent
    assert recorder.write(numbered(0)) is False


def test_file_is_a_valid_wav_at_every_flush_while_recording(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "live.wav", flush_seconds=0.5)
    for i in range(40):  # 0.8 s
        recorder.write(numbered(i))
    assert recorder.flushed_seconds == pytest.approx(0.5, abs=0.02)
    params, samples = read(tmp_path / "live.wav")  # still open
    assert params.nframes == round(recorder.flushed_seconds * SAMPLE_RATE)
    assert samples.tobytes() == b"".join(numbered(i) for i in range(len(samples) // FRAME_SAMPLES))
    recorder.close()


def test_gaps_become_silence_and_overlaps_are_trimmed(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "gaps.wav")
    recorder.write(numbered(0), 0.0)
    recorder.write(numbered(1), 0.02)
    recorder.write(numbered(2), 0.10)  # 3 lost packets
    recorder.write(numbered(3) + numbered(4), 0.10)  # a repeat overlapping frame 2
    info = recorder.close()
    _, samples = read(info.path)
    frames = samples.reshape(-1, FRAME_SAMPLES)
    assert [int(f[0]) for f in frames] == [1, 2, 0, 0, 0, 3, 5]
    assert info.duration_seconds == pytest.approx(0.14)


def test_a_long_gap_is_written_without_holding_it_in_memory(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "hold.wav")
    recorder.write(numbered(0), 0.0)
    recorder.write(numbered(1), 30.0)  # 30 s on hold, no packets
    assert len(recorder._far.pending) < SAMPLE_RATE * 2 * 2  # at most ~1 s pending
    info = recorder.close()
    assert info.duration_seconds == pytest.approx(30.02)


def test_stereo_far_left_near_right_aligned_on_media_time(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "both.wav", channels=2)
    for i in range(50):
        recorder.write_near(numbered(100 + i), i * 0.02)
    # the far end's audio arrives later in wall time, but says where it belongs
    for i in range(10, 50):
        recorder.write(numbered(i), i * 0.02)
    info = recorder.close()
    params, samples = read(info.path)
    assert params.nchannels == 2 and info.channels == 2
    left = samples[:, 0].reshape(-1, FRAME_SAMPLES)[:, 0]
    right = samples[:, 1].reshape(-1, FRAME_SAMPLES)[:, 0]
    assert list(right) == [101 + i for i in range(50)]
    assert list(left) == [0] * 10 + [i + 1 for i in range(10, 50)]


def test_stereo_flushes_past_a_silent_far_end(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "skew.wav", channels=2, max_skew_seconds=1.0)
    for i in range(150):  # 3 s of our side, nothing from the far end
        recorder.write_near(numbered(i), i * 0.02)
    assert recorder.flushed_seconds >= 1.5  # did not wait for the far end forever
    recorder.write(numbered(0), 0.0)  # too late: that time is already in the file
    info = recorder.close()
    _, samples = read(info.path)
    assert not samples[:, 0].any()
    assert info.duration_seconds == pytest.approx(3.0)


def test_max_length_stops_exactly_and_says_why(tmp_path: Path) -> None:
    reasons: list[StopReason] = []
    recorder = WavRecorder(tmp_path / "max.wav", max_seconds=1.0, on_stop=reasons.append)
    results = [recorder.write(numbered(i)) for i in range(80)]
    assert results.index(False) == 49  # the 50th frame reached 1.0 s
    assert recorder.stopped and recorder.stop_reason is StopReason.MAX_LENGTH
    assert reasons == [StopReason.MAX_LENGTH]
    info = recorder.close()
    assert info.stop_reason is StopReason.MAX_LENGTH
    params, _ = read(info.path)
    assert params.nframes == SAMPLE_RATE
    assert info.duration_seconds == pytest.approx(1.0)


def test_stop_on_silence_after_the_caller_stops_talking(tmp_path: Path) -> None:
    reasons: list[StopReason] = []
    recorder = WavRecorder(
        tmp_path / "vm.wav",
        stop_on_silence_seconds=1.0,
        silence_threshold_dbfs=-50,
        on_stop=reasons.append,
    )
    talk = tone_pcm([300, 800], 0.6)
    quiet = (np.random.default_rng(2).normal(0, 20, SAMPLE_RATE * 3)).astype("<i2").tobytes()
    stream = talk + quiet
    t = 0.0
    for offset in range(0, len(stream), FRAME_BYTES):
        if not recorder.write(stream[offset : offset + FRAME_BYTES], t):
            break
        t += 0.02
    assert reasons == [StopReason.SILENCE]
    info = recorder.close()
    assert info.stop_reason is StopReason.SILENCE
    assert info.duration_seconds == pytest.approx(1.6, abs=0.021)


def test_lost_packets_count_as_silence(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "lost.wav", stop_on_silence_seconds=0.5)
    loud = tone_pcm([440], 0.02)
    assert recorder.write(loud, 0.0)
    assert recorder.write(loud, 0.02)
    assert not recorder.write(loud, 1.0)  # the gap alone is longer than the limit
    assert recorder.stop_reason is StopReason.SILENCE


def test_owner_only_permissions(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "recordings" / "2024"
    recorder = WavRecorder(folder / "call.wav")
    info = recorder.close()
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    # an existing file with open permissions is tightened when recorded over
    loose = tmp_path / "old.wav"
    loose.write_bytes(b"x")
    loose.chmod(0o644)
    WavRecorder(loose).close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


def test_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    with pytest.raises(RecorderError, match="cannot create recording"):
        WavRecorder(link)
    assert target.read_text() == "keep me"


def test_bad_use_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecorderError, match="1 or 2 channels"):
        WavRecorder(tmp_path / "a.wav", channels=3)
    mono = WavRecorder(tmp_path / "b.wav")
    with pytest.raises(RecorderError, match="stereo"):
        mono.write_near(numbered(0))
    with pytest.raises(RecorderError, match="whole s16"):
        mono.write(b"\x00\x01\x02")
    mono.close()


def test_lower_output_rate(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "r16.wav", sample_rate=16000)
    source = tone_pcm([400, 900], 1.0)
    for offset in range(0, len(source), FRAME_BYTES):
        recorder.write(source[offset : offset + FRAME_BYTES])
    info = recorder.close()
    params, _ = read(info.path)
    assert params.framerate == 16000
    assert info.duration_seconds == pytest.approx(1.0, abs=0.01)
    decoded = np.frombuffer(load_prompt(info.path).pcm, dtype="<i2")
    _, score = best_alignment(np.frombuffer(source, dtype="<i2"), decoded, 200)
    assert score > 0.97


CHILD = textwrap.dedent(
    """
    import sys
    import time

    import numpy as np

    from worker.media.recorder import WavRecorder

    recorder = WavRecorder(sys.argv[1], flush_seconds=0.2)
    reported = 0.0
    index = 0
    while True:
        recorder.write(np.full(960, (index % 30000) + 1, dtype="<i2").tobytes())
        index += 1
        if recorder.flushed_seconds != reported:
            reported = recorder.flushed_seconds
            print(f"flushed {reported}", flush=True)
        time.sleep(0.001)  # 20x real time: the child keeps writing until it is killed
    """
)


def test_sigkill_mid_write_leaves_a_readable_wav(tmp_path: Path) -> None:
    path = tmp_path / "crash.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        reported = 0.0
        for line in child.stdout:
            reported = float(line.split()[1])
            if reported >= 1.0:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert reported >= 1.0
    params, samples = read(path)
    assert params.nframes >= round(reported * SAMPLE_RATE)
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    expected = np.arange(len(frames)) % 30000 + 1
    np.testing.assert_array_equal(frames[:, 0], expected)
    assert (frames == frames[:, :1]).all()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("fmt", ["mp3", "ogg"])
def test_conversion_keeps_the_audio_and_the_permissions(
    tmp_path: Path, fmt: str, umask_022: None
) -> None:
    recorder = WavRecorder(tmp_path / "rec" / "call.wav")
    t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    source = (np.sin(2 * np.pi * (300 * t + 500 * t * t)) * 10000).astype("<i2").tobytes()
    recorder.write(source)
    wav_info = recorder.close()
    info = convert(wav_info, fmt)
    assert info.path == tmp_path / "rec" / f"call.{fmt}"
    assert info.format == fmt
    assert not wav_info.path.exists()
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert info.size_bytes == info.path.stat().st_size
    assert 0 < info.size_bytes < wav_info.size_bytes
    assert info.duration_seconds == pytest.approx(2.0, abs=0.01)
    decoded = np.frombuffer(load_prompt(info.path).pcm, dtype="<i2")
    _, score = best_alignment(np.frombuffer(source, dtype="<i2"), decoded, 3000)
    assert score > 0.9, score


def test_conversion_errors_are_clear(tmp_path: Path) -> None:
    info = WavRecorder(tmp_path / "x.wav").close()
    with pytest.raises(RecorderError, match="choose mp3 or ogg"):
        convert(info, "flac")
    kept = convert(info, "ogg", keep_wav=True)
    assert kept.path.exists() and info.path.exists()
    silence_only = WavRecorder(tmp_path / "s.wav")
    silence_only.write(silence(FRAME_SAMPLES))
    assert convert(silence_only.close(), "mp3").duration_seconds == pytest.approx(0.02, abs=0.01)
