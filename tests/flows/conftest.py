"""Shared pieces of the flow tests: a prompt folder of distinct sounds, and flow files.

Every prompt of :func:`prompt_folder` is a frequency sweep over its own
range, its loudness rising and falling, so cross-correlating what a caller
heard with one prompt (waveform and 20 ms envelope) finds that prompt and no
other. ``flows_from(tmp_path, yaml_text, ...)`` writes flow
files and loads them with that folder.
"""

from __future__ import annotations

import textwrap
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker.flows import FlowSet, load_flows

RATE = 48000

# name: (low Hz, high Hz, seconds); a sweep from low to high (high < low sweeps down)
SWEEPS: dict[str, tuple[float, float, float]] = {
    "greeting": (300.0, 900.0, 0.8),
    "menu": (900.0, 1800.0, 0.8),
    "invalid": (1800.0, 2600.0, 0.5),
    "no_input": (2600.0, 3400.0, 0.5),
    "fallback": (3400.0, 2000.0, 0.6),
    "ok": (2000.0, 500.0, 0.6),
    "fail": (3000.0, 1500.0, 0.6),
    "record_greeting": (500.0, 700.0, 0.4),
    "long": (300.0, 3000.0, 5.0),
}


def sweep(low: float, high: float, seconds: float, level: float = 0.3) -> np.ndarray[Any, Any]:
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * (low * t + (high - low) * t * t / (2 * seconds))
    # a loudness that rises and falls three times, so 20 ms envelopes can be compared too
    envelope = 0.55 - 0.45 * np.cos(2 * np.pi * 3 * t / seconds)
    return level * 32767 * envelope * np.sin(phase)


def write_wav(path: Path, samples: np.ndarray[Any, Any]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def prompt_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sweeps (SWEEPS), a beep, the say prompts, and two text entries (one never built)."""
    folder = tmp_path_factory.mktemp("prompts")
    lines = ["prompts:"]
    for name, (low, high, seconds) in SWEEPS.items():
        write_wav(folder / f"{name}.wav", sweep(low, high, seconds))
        lines += [f"  {name}:", f"    file: {name}.wav"]
    write_wav(folder / "hello.wav", sweep(700.0, 750.0, 0.3))
    lines += ["  hello:", "    file: hello.wav", "    text: Hello there, caller."]
    lines += ["  unbuilt:", "    file: unbuilt.wav", "    text: This one was never built."]
    write_wav(folder / "beep.wav", sweep(1000.0, 1000.0, 0.3))
    words = [f"digit_{n}" for n in range(10)] + [f"num_{n}" for n in range(10, 20)]
    words += [f"num_{n}" for n in range(20, 100, 10)] + ["num_hundred", "num_thousand"]
    for index, name in enumerate(words):
        write_wav(folder / f"{name}.wav", sweep(400.0 + 50 * index, 420.0 + 50 * index, 0.1))
    (folder / "manifest.yaml").write_text("\n".join(lines) + "\n")
    return folder


def write_flow(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def flows_from(folder: Path, prompts: Path, **files: str) -> FlowSet:
    """Write ``name=yaml`` flow files into ``folder`` and load them all with ``prompts``."""
    paths = [write_flow(folder, name, text) for name, text in files.items()]
    return load_flows(paths, prompts=prompts)
