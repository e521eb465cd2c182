"""Text prompts, spoken ahead of time with espeak-ng.

``callworker prompts build`` reads a prompt folder's manifest and, for every
entry with ``text``, runs the ``espeak-ng`` binary to speak it into the
entry's file (16 kHz mono by default; the file's extension picks the format,
via ffmpeg). Entries with ``tone`` are generated. Files that already exist are
kept unless ``force`` is set, so a studio recording dropped in place of a
synthesized one is never overwritten by accident. Each file is written to a
temporary name first and moved into place, so a prompt is never half-written.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from worker.media.audio import SAMPLE_RATE, MediaError, audio_segment_class
from worker.media.prompts import PromptEntry, ToneSpec, load_prompt, read_manifest, tone_pcm

logger = logging.getLogger(__name__)

DEFAULT_VOICE = "en-us"
DEFAULT_SPEED = 160
"""Words per minute: a little slower than espeak-ng's 175, easier on a phone line."""
DEFAULT_RATE = 16000
TIMEOUT_SECONDS = 60


class SynthError(MediaError):
    """A prompt cannot be synthesized (espeak-ng missing or failing, bad output)."""


class BuildAction(StrEnum):
    SPOKEN = "spoken"
    TONE = "tone"
    KEPT = "kept"
    """The file exists and force was not set."""
    SKIPPED = "skipped"
    """No text and no tone: a recorded prompt, nothing to build."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    action: BuildAction


def espeak_binary() -> str:
    """Path of espeak-ng, or :class:`SynthError` saying how to install it."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise SynthError(
            "espeak-ng is not installed (needed to speak text prompts); "
            "install it, e.g. `apt-get install espeak-ng`, or run scripts/bootstrap"
        )
    return found


@functools.cache
def available_voices() -> frozenset[str]:
    """Languages, voice names and voice files espeak-ng knows (any of them works with -v)."""
    binary = espeak_binary()
    done = subprocess.run(
        [binary, "--voices"], capture_output=True, timeout=TIMEOUT_SECONDS, check=False
    )
    voices: set[str] = set()
    for line in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 5:
            voices.update(c.lower() for c in (columns[1], columns[3], columns[4]))
    return frozenset(voices)


def check_voice(voice: str) -> None:
    """:class:`SynthError` unless espeak-ng has ``voice`` (a ``+variant`` suffix is allowed).

    espeak-ng itself falls back to its default voice without a word.
    """
    base = voice.split("+", 1)[0].lower()
    voices = available_voices()
    if base not in voices:
        close = sorted(v for v in voices if v.startswith(base[:2]))[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise SynthError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`){hint}")


def synthesize(
    text: str,
    out_path: str | Path,
    *,
    voice: str = DEFAULT_VOICE,
    speed: int = DEFAULT_SPEED,
    sample_rate: int = DEFAULT_RATE,
) -> Path:
    """Speak ``text`` into ``out_path`` (format from its extension), replacing it atomically."""
    binary = espeak_binary()
    check_voice(voice)
    target = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="callworker-synth-") as scratch:
        raw = Path(scratch) / "speech.wav"
        command = [binary, "-v", voice, "-s", str(speed), "-w", str(raw), "--stdin"]
        try:
            done = subprocess.run(
                command,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthError(f"espeak-ng took over {TIMEOUT_SECONDS} s on {text[:40]!r}") from exc
        error = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise SynthError(
                f"espeak-ng failed (exit {done.returncode}) speaking {text[:40]!r} "
                f"with voice {voice!r}: {error or 'no audio written'}"
            )
        _export(raw, target, sample_rate)
    return target


def write_tone(spec: ToneSpec, out_path: str | Path, *, sample_rate: int = DEFAULT_RATE) -> Path:
    """Generate ``spec``'s tone into ``out_path`` (format from its extension)."""
    target = Path(out_path)
    pcm = tone_pcm(spec.frequencies, spec.seconds, amplitude=spec.amplitude)
    with tempfile.TemporaryDirectory(prefix="callworker-tone-") as scratch:
        raw = Path(scratch) / "tone.wav"
        audio_segment_class()(pcm, sample_width=2, frame_rate=SAMPLE_RATE, channels=1).export(
            raw, format="wav"
        )
        _export(raw, target, sample_rate)
    return target


def _export(source: Path, target: Path, sample_rate: int) -> None:
    """Resample ``source`` with ffmpeg into ``target``'s format, then move it into place."""
    AudioSegment = audio_segment_class()
    fmt = target.suffix.lstrip(".").lower() or "wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent
    )
    os.close(handle)
    try:
        segment = AudioSegment.from_wav(source)
        segment.export(temporary, format=fmt, parameters=["-ar", str(sample_rate), "-ac", "1"])
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except Exception as exc:  # pydub raises bare Exceptions and CouldntEncodeError
        Path(temporary).unlink(missing_ok=True)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SynthError(f"cannot write {target}: {message}") from exc


def build_prompts(
    folder: str | Path,
    *,
    voice: str = DEFAULT_VOICE,
    speed: int = DEFAULT_SPEED,
    sample_rate: int = DEFAULT_RATE,
    force: bool = False,
    only: Sequence[str] = (),
) -> list[BuildResult]:
    """Build every text and tone entry of ``folder``'s manifest (or those in ``only``)."""
    root = Path(folder)
    entries = read_manifest(root)
    unknown = [name for name in only if name not in entries]
    if unknown:
        raise SynthError(
            f"no entries {unknown} in {root / 'manifest.yaml'}; known: {sorted(entries)}"
        )
    results: list[BuildResult] = []
    for entry in entries.values():
        if only and entry.name not in only:
            continue
        results.append(_build(root, entry, voice, speed, sample_rate, force))
    return results


def _build(
    root: Path, entry: PromptEntry, voice: str, speed: int, sample_rate: int, force: bool
) -> BuildResult:
    path = entry.path(root)
    if entry.text is None and entry.tone is None:
        return BuildResult(entry.name, path, BuildAction.SKIPPED)
    if path.exists() and not force:
        return BuildResult(entry.name, path, BuildAction.KEPT)
    if entry.text is not None:
        synthesize(entry.text, path, voice=voice, speed=speed, sample_rate=sample_rate)
        action = BuildAction.SPOKEN
    else:
        assert entry.tone is not None
        write_tone(entry.tone, path, sample_rate=sample_rate)
        action = BuildAction.TONE
    load_prompt(path, entry.name)  # proves the file decodes
    logger.info("built prompt %s into %s (%s)", entry.name, path, action)
    return BuildResult(entry.name, path, action)
