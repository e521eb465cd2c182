"""Audio prompts: decoded once, cut into 20 ms frames, shared by every call.

A :class:`Prompt` is immutable 48 kHz mono s16 PCM in 960-sample frames (the
last frame padded with silence). :func:`load_prompt` reads any file ffmpeg
can decode, through pydub. A :class:`PromptLibrary` serves the prompts of one
folder, described by its ``manifest.yaml``::

    prompts:
      greeting:
        file: greeting.wav
        text: Thanks for calling.          # what `callworker prompts build` speaks
        description: First thing a caller hears.
      beep:
        file: beep.wav
        tone: {frequencies: [1000], seconds: 0.5}

The library decodes each prompt the first time it is asked for (or all of
them with :meth:`PromptLibrary.preload`, best done at start-up, outside the
media event loop) and then hands out the same object to every caller.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from worker.media.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    MediaError,
    audio_segment_class,
    split_frames,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.yaml"
AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a", ".aac", ".webm")


class PromptError(MediaError):
    """A prompt or its manifest cannot be found, read or decoded."""


@dataclass(frozen=True)
class Prompt:
    """A decoded prompt: 960-sample mono s16 48 kHz frames, ready to send."""

    name: str
    frames: tuple[bytes, ...]
    duration: float
    """Seconds of audio before the last frame was padded."""

    @property
    def pcm(self) -> bytes:
        """All frames joined (a new bytes object on each access)."""
        return b"".join(self.frames)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @classmethod
    def from_pcm(cls, name: str, pcm: bytes) -> Prompt:
        """A prompt from mono s16 48 kHz PCM."""
        if len(pcm) % SAMPLE_WIDTH:
            raise PromptError(f"prompt {name!r}: PCM of {len(pcm)} bytes is not whole samples")
        return cls(
            name=name, frames=split_frames(pcm), duration=len(pcm) / SAMPLE_WIDTH / SAMPLE_RATE
        )


def load_prompt(path: str | Path, name: str | None = None) -> Prompt:
    """Decode an audio file (any format ffmpeg reads) into a :class:`Prompt`.

    WAV files are read by pydub directly; anything else runs the ``ffmpeg``
    binary, which must be installed. Multi-channel audio is mixed to mono.
    """
    AudioSegment = audio_segment_class()
    source = Path(path)
    label = name or source.stem
    if not source.is_file():
        raise PromptError(f"prompt {label!r}: file {source} does not exist")
    try:
        segment = AudioSegment.from_file(source)
        segment = segment.set_sample_width(SAMPLE_WIDTH).set_channels(1)
        segment = segment.set_frame_rate(SAMPLE_RATE)
    except Exception as exc:  # pydub raises bare Exceptions and CouldntDecodeError
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PromptError(f"prompt {label!r}: cannot decode {source}: {first_line}") from exc
    return Prompt.from_pcm(label, bytes(segment.raw_data))


def tone_pcm(
    frequencies: Sequence[float], seconds: float, *, amplitude: float = 0.3, fade: float = 0.005
) -> bytes:
    """Mono s16 48 kHz PCM of summed sine tones, each at ``amplitude`` (0..1 of full scale).

    ``fade`` seconds of linear fade in and out avoid clicks at the edges.
    """
    if seconds <= 0:
        raise ValueError(f"a tone needs a positive length, got {seconds} s")
    count = round(seconds * SAMPLE_RATE)
    t = np.arange(count, dtype=np.float64) / SAMPLE_RATE
    wave = np.zeros(count, dtype=np.float64)
    for frequency in frequencies:
        wave += amplitude * np.sin(2.0 * math.pi * frequency * t)
    ramp = min(round(fade * SAMPLE_RATE), count // 2)
    if ramp > 0:
        envelope = np.linspace(0.0, 1.0, ramp, endpoint=False)
        wave[:ramp] *= envelope
        wave[count - ramp :] *= envelope[::-1]
    clipped = np.clip(wave * 32767.0, -32768, 32767)
    return clipped.astype("<i2").tobytes()


def tone_prompt(
    name: str, frequencies: Sequence[float], seconds: float, *, amplitude: float = 0.3
) -> Prompt:
    """A prompt made of sine tones, e.g. ``tone_prompt("beep", [1000], 0.5)``."""
    return Prompt.from_pcm(name, tone_pcm(frequencies, seconds, amplitude=amplitude))


def beep(seconds: float = 0.5, frequency: float = 1000.0) -> Prompt:
    """The voicemail beep: a 1 kHz tone."""
    return tone_prompt("beep", [frequency], seconds)


def silence_prompt(name: str, seconds: float) -> Prompt:
    """A prompt of digital silence (whole frames)."""
    frames = max(1, math.ceil(seconds * SAMPLE_RATE / FRAME_SAMPLES))
    return Prompt.from_pcm(name, bytes(frames * FRAME_SAMPLES * SAMPLE_WIDTH))


@dataclass(frozen=True)
class ToneSpec:
    """A manifest entry's ``tone:``: what ``prompts build`` generates instead of speech."""

    frequencies: tuple[float, ...]
    seconds: float
    amplitude: float = 0.3


@dataclass(frozen=True)
class PromptEntry:
    """One manifest entry."""

    name: str
    file: str
    text: str | None = None
    description: str = ""
    tone: ToneSpec | None = None

    def path(self, folder: Path) -> Path:
        return folder / self.file


def read_manifest(folder: str | Path) -> dict[str, PromptEntry]:
    """Parse ``<folder>/manifest.yaml``; errors name the file and the bad key."""
    manifest = Path(folder) / MANIFEST_NAME
    try:
        raw = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptError(f"no prompt manifest at {manifest}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"cannot read prompt manifest {manifest}: {exc}") from exc
    if raw is None:
        return {}
    prompts = raw.get("prompts") if isinstance(raw, Mapping) else None
    if not isinstance(prompts, Mapping):
        raise PromptError(f"{manifest}: expected a top-level 'prompts:' mapping of name to entry")
    return {str(name): _entry(manifest, str(name), body) for name, body in prompts.items()}


def _entry(manifest: Path, name: str, body: Any) -> PromptEntry:
    where = f"{manifest}: prompts.{name}"
    if not isinstance(body, Mapping):
        raise PromptError(f"{where}: expected a mapping with at least 'file', got {body!r}")
    unknown = set(body) - {"file", "text", "description", "tone"}
    if unknown:
        raise PromptError(f"{where}: unknown keys {sorted(unknown)}; allowed: file, text, ...")
    file = body.get("file")
    if (
        not isinstance(file, str)
        or not file
        or Path(file).is_absolute()
        or ".." in Path(file).parts
    ):
        raise PromptError(f"{where}.file: expected a file name inside the folder, got {file!r}")
    text = body.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise PromptError(f"{where}.text: expected non-empty text, got {text!r}")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise PromptError(f"{where}.description: expected text, got {description!r}")
    tone = _tone(where, body.get("tone"))
    if text is not None and tone is not None:
        raise PromptError(f"{where}: has both 'text' and 'tone'; keep one")
    return PromptEntry(name=name, file=file, text=text, description=description, tone=tone)


def _tone(where: str, raw: Any) -> ToneSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise PromptError(f"{where}.tone: expected {{frequencies: [...], seconds: N}}, got {raw!r}")
    frequencies = raw.get("frequencies")
    seconds = raw.get("seconds")
    amplitude = raw.get("amplitude", 0.3)
    if (
        not isinstance(frequencies, list)
        or not frequencies
        or not all(isinstance(f, int | float) and 0 < f < SAMPLE_RATE / 2 for f in frequencies)
    ):
        raise PromptError(f"{where}.tone.frequencies: expected a list of Hz, got {frequencies!r}")
    if not isinstance(seconds, int | float) or not 0 < seconds <= 60:
        raise PromptError(f"{where}.tone.seconds: expected 0 < seconds <= 60, got {seconds!r}")
    if not isinstance(amplitude, int | float) or not 0 < amplitude <= 1:
        raise PromptError(f"{where}.tone.amplitude: expected 0 < amplitude <= 1, got {amplitude!r}")
    return ToneSpec(tuple(float(f) for f in frequencies), float(seconds), float(amplitude))


class PromptLibrary:
    """The prompts of one folder, each decoded once and shared; safe to use from any thread.

    A name is looked up in the manifest first; a file in the folder whose stem
    is the name (``holiday.mp3`` for ``holiday``) also counts, so a prompt can
    be dropped in without editing the manifest.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST_NAME
        self.entries: dict[str, PromptEntry] = (
            read_manifest(self.folder) if manifest.exists() else {}
        )
        self._cache: dict[str, Prompt] = {}
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Manifest names in manifest order, then loose audio files by name."""
        loose = {
            p.stem
            for p in self.folder.glob("*")
            if p.suffix.lower() in AUDIO_EXTENSIONS and p.stem not in self.entries
        }
        referenced = {Path(e.file).stem for e in self.entries.values()}
        return list(self.entries) + sorted(loose - referenced)

    def path(self, name: str) -> Path:
        """The file behind ``name``; :class:`PromptError` if there is none."""
        found = self._find(name)
        if found is None:
            known = ", ".join(self.names()) or "none"
            raise PromptError(
                f"no prompt named {name!r} in {self.folder} (known prompts: {known}); "
                f"add it to {self.folder / MANIFEST_NAME} or put {name}.wav in the folder"
            )
        return found

    def get(self, name: str) -> Prompt:
        """The decoded prompt ``name``, decoding it on first use."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        with self._lock:
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:
            cached = self._cache.get(name)
            if cached is None:
                path = self.path(name)
                if not path.is_file():
                    raise PromptError(
                        f"prompt {name!r}: {path} is listed in {self.folder / MANIFEST_NAME} but "
                        "missing; run `callworker prompts build` or add the file"
                    )
                cached = load_prompt(path, name)
                logger.debug("decoded prompt %s from %s: %.2f s", name, path, cached.duration)
                self._cache[name] = cached
        return cached

    def preload(self) -> list[Prompt]:
        """Decode every prompt now (start-up), so no call waits for a decode."""
        return [self.get(name) for name in self.names()]

    def _find(self, name: str) -> Path | None:
        entry = self.entries.get(name)
        if entry is not None:
            return entry.path(self.folder)
        for extension in AUDIO_EXTENSIONS:
            candidate = self.folder / f"{name}{extension}"
            if candidate.is_file():
                return candidate
        return None
