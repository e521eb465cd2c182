"""Prompts: decoded from real files (WAV, MP3, Ogg via ffmpeg), framed, cached, shared."""

from __future__ import annotations

import logging
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.media.audio_match import best_alignment
from worker.media.audio import FRAME_BYTES, SAMPLE_RATE
from worker.media.prompts import (
    Prompt,
    PromptError,
    PromptLibrary,
    beep,
    load_prompt,
    read_manifest,
    tone_prompt,
)

REPO = Path(__file__).resolve().parents[2]


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def chirp(rate: int, seconds: float = 1.5) -> np.ndarray:
    """A rising sweep, 300 Hz to 3 kHz: no period, so alignment is unambiguous."""
    t = np.arange(round(rate * seconds)) / rate
    phase = 2 * np.pi * (300 * t + (2700 / (2 * seconds)) * t * t)
    return (np.sin(phase) * 12000).astype(np.int16)


def as_array(prompt: Prompt) -> np.ndarray:
    return np.frombuffer(prompt.pcm, dtype="<i2")


def ffmpeg(source: Path, target: Path, *codec: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *codec, str(target)],
        check=True,
    )
    return target


def test_wav_at_48k_decodes_exactly(tmp_path: Path) -> None:
    source = chirp(SAMPLE_RATE)
    prompt = load_prompt(write_wav(tmp_path / "sweep.wav", source, SAMPLE_RATE))
    assert prompt.name == "sweep"
    assert prompt.duration == pytest.approx(1.5)
    assert all(len(frame) == FRAME_BYTES for frame in prompt.frames)
    assert prompt.frame_count == 75
    np.testing.assert_array_equal(as_array(prompt)[: len(source)], source)


def test_last_frame_is_padded_with_silence(tmp_path: Path) -> None:
    source = chirp(SAMPLE_RATE, seconds=0.5)[:1000]  # one frame and 40 samples
    prompt = load_prompt(write_wav(tmp_path / "short.wav", source, SAMPLE_RATE), name="short")
    assert prompt.frame_count == 2
    assert prompt.duration == pytest.approx(1000 / SAMPLE_RATE)
    tail = np.frombuffer(prompt.frames[1], dtype="<i2")
    np.testing.assert_array_equal(tail[:40], source[960:])
    assert not tail[40:].any()


def test_16k_wav_is_converted_to_48k(tmp_path: Path) -> None:
    prompt = load_prompt(write_wav(tmp_path / "low.wav", chirp(16000), 16000))
    reference = chirp(SAMPLE_RATE)
    decoded = as_array(prompt)
    assert abs(len(decoded) - len(reference)) < 960 * 2
    lag, score = best_alignment(reference, decoded, 48)
    assert score > 0.98, (lag, score)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = chirp(SAMPLE_RATE)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    prompt = load_prompt(write_wav(tmp_path / "st.wav", stereo, SAMPLE_RATE, channels=2))
    decoded = as_array(prompt)[: len(left)]
    assert np.max(np.abs(decoded.astype(np.int32) - left)) <= 1


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]), ("ogg", ["-c:a", "libvorbis"])],
)
def test_lossy_files_decode_close_to_the_source(
    tmp_path: Path, suffix: str, codec: list[str]
) -> None:
    reference = chirp(SAMPLE_RATE)
    wav = write_wav(tmp_path / "src.wav", reference, SAMPLE_RATE)
    prompt = load_prompt(ffmpeg(wav, tmp_path / f"src.{suffix}", *codec))
    decoded = as_array(prompt)
    assert prompt.duration == pytest.approx(1.5, abs=0.06)
    lag, score = best_alignment(reference, decoded, 2400)
    assert score > 0.95, (suffix, lag, score)


def test_44k_mp3_is_resampled(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "src.wav", chirp(44100), 44100)
    prompt = load_prompt(ffmpeg(wav, tmp_path / "src.mp3", "-c:a", "libmp3lame"))
    lag, score = best_alignment(chirp(SAMPLE_RATE), as_array(prompt), 2400)
    assert score > 0.9, (lag, score)


def test_unreadable_files_name_the_prompt_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"'ghost'.*does not exist"):
        load_prompt(tmp_path / "ghost.wav")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(PromptError, match=r"'junk': cannot decode .*junk.mp3"):
        load_prompt(junk)


def make_library(folder: Path) -> Path:
    folder.mkdir()
    write_wav(folder / "hello.wav", chirp(16000, 0.5), 16000)
    write_wav(folder / "loose_one.wav", chirp(8000, 0.3), 8000)
    (folder / "manifest.yaml").write_text(
        "prompts:\n"
        "  greeting:\n"
        "    file: hello.wav\n"
        "    text: Hello there.\n"
        "    description: says hello\n"
        "  gone:\n"
        "    file: gone.wav\n"
    )
    return folder


def test_library_shares_one_decoded_prompt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = PromptLibrary(make_library(tmp_path / "prompts"))
    results: list[Prompt] = []
    start = threading.Barrier(8)

    def fetch() -> None:
        start.wait()
        results.append(library.get("greeting"))

    with caplog.at_level(logging.DEBUG, logger="worker.media.prompts"):
        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 8
    assert all(prompt is results[0] for prompt in results)
    assert library.get("greeting") is results[0]
    decodes = [r for r in caplog.records if r.getMessage().startswith("decoded prompt greeting")]
    assert len(decodes) == 1
    assert results[0].duration == pytest.approx(0.5, abs=0.001)  # ratecv drops a sample or two


def test_library_finds_loose_files_and_explains_missing_ones(tmp_path: Path) -> None:
    folder = make_library(tmp_path / "prompts")
    library = PromptLibrary(folder)
    assert library.names() == ["greeting", "gone", "loose_one"]
    assert "loose_one" in library
    assert library.get("loose_one").duration == pytest.approx(0.3, abs=0.001)
    with pytest.raises(PromptError) as missing:
        library.get("nope")
    message = str(missing.value)
    assert "'nope'" in message and str(folder) in message and "greeting" in message
    with pytest.raises(PromptError, match=r"'gone'.*missing.*callworker prompts build"):
        library.get("gone")


def test_manifest_errors_name_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text(
        "prompts:\n  menu:\n    file: menu.wav\n    txt: oops\n"
    )
    with pytest.raises(PromptError, match=r"manifest.yaml: prompts.menu: unknown keys \['txt'\]"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.yaml").write_text("prompts:\n  menu:\n    file: ../../etc/passwd\n")
    with pytest.raises(PromptError, match=r"prompts.menu.file: expected a file name inside"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.yaml").write_text(
        "prompts:\n  b:\n    file: b.wav\n    tone: {seconds: 1}\n"
    )
    with pytest.raises(PromptError, match=r"prompts.b.tone.frequencies"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.yaml").write_text("- just a list\n")
    with pytest.raises(PromptError, match="top-level 'prompts:'"):
        read_manifest(tmp_path)


def test_bundled_prompts_all_load() -> None:
    library = PromptLibrary(REPO / "audio_prompts")
    expected = {"greeting", "menu", "invalid", "goodbye", "after_hours", "beep"}
    assert expected <= set(library.names())
    for prompt in library.preload():
        assert prompt.duration > 0.3, prompt.name
        assert max(abs(int(s)) for s in as_array(prompt)) > 3000, f"{prompt.name} is silent"
    assert library.entries["menu"].text == "Press 1 for sales, 2 for support."
    beep_pcm = as_array(library.get("beep")).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(beep_pcm))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(beep_pcm)
    assert peak_hz == pytest.approx(1000, abs=5)


def test_tone_prompts() -> None:
    prompt = beep()
    assert prompt.name == "beep" and prompt.duration == pytest.approx(0.5)
    samples = as_array(prompt).astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) == pytest.approx(0.3 * 32767 / np.sqrt(2), rel=0.05)
    assert samples[0] == 0  # faded in, no click
    two = tone_prompt("dial", [350, 440], 1.0)
    spectrum = np.abs(np.fft.rfft(as_array(two).astype(np.float64)))
    assert sorted(np.argsort(spectrum)[-2:]) == [350, 440]
