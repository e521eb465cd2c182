"""Helpers for the rules tests: write a rules file (and its list files), decide a call."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from worker.node.decide import CallFacts, Decision, Load
from worker.rules import RuleSet, evaluate, load_rules

IDLE = Load(live_calls=0, max_live_calls=5, loop_lag_ms=1.0, max_loop_lag_ms=50.0)
# Thursday 2026-11-26 15:00 UTC = 10:00 in Montreal (EST), 16:00 in Paris (CET).
THURSDAY_MORNING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def write(folder: Path, text: str, name: str = "rules.yaml", **files: str) -> Path:
    """Write ``text`` (dedented) as ``folder/name`` and each of ``files`` beside it."""
    for file_name, content in files.items():
        (folder / file_name.replace("__", ".")).write_text(textwrap.dedent(content))
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def rules(folder: Path, text: str, **files: str) -> RuleSet:
    """Load a rules file written from ``text``; list files given as ``name__txt="..."``."""
    return load_rules(write(folder, text, **files))


def decide(
    ruleset: RuleSet,
    caller: str = "+15145550000",
    extension: str = "1000",
    now: datetime = THURSDAY_MORNING,
    load: Load = IDLE,
) -> Decision:
    return evaluate(ruleset, CallFacts("call-1", caller, extension), now, load)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
