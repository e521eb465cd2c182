"""A loaded flow as immutable values: steps, targets, flows and the set of flows.

Every step is a frozen dataclass with its ``name``, the ``line`` of its file
where it is defined and a class-level ``kind`` (the YAML key that made it).
A :class:`Target` says where to go next: a step of the same flow, or another
flow (at its start or at a named step). ``next`` of ``None`` means the flow
ends there, which hangs up.

:class:`FlowSet` is what :func:`worker.flows.loader.load_flows` returns; it is
never changed after loading, so a call keeps running on the version it started
with while a reload builds a new one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from worker.flows.conditions import Condition, Template
from worker.media.prompts import PromptLibrary

STEP_KINDS = (
    "play",
    "pause",
    "gather",
    "menu",
    "record",
    "say",
    "set",
    "branch",
    "transfer",
    "voicemail",
    "hangup",
    "goto",
    "http",
)

KEYS = "0123456789*#ABCD"
"""Keys a caller can press."""

BUILTIN_BEEP = "@beep"
"""The generated 1 kHz beep, used by ``record`` when the prompt folder has no ``beep``."""

DIGIT_PROMPTS = tuple(f"digit_{n}" for n in range(10))
NUMBER_PROMPTS = (
    *DIGIT_PROMPTS,
    *(f"num_{n}" for n in range(10, 20)),
    *(f"num_{n}" for n in range(20, 100, 10)),
    "num_hundred",
    "num_thousand",
)
"""What ``say: {number: ...}`` needs: zero to nine, ten to nineteen, tens, hundred, thousand."""


@dataclass(frozen=True)
class Target:
    """Where to go: ``step`` of ``flow`` (None: this flow; a None step: that flow's start)."""

    flow: str | None = None
    step: str | None = None
    line: int = field(default=0, compare=False)
    """Where the target is written in its file (0: unknown), for error messages."""

    def describe(self) -> str:
        if self.flow is None:
            return f"step {self.step!r}"
        return f"flow {self.flow!r}" + (f" step {self.step!r}" if self.step else "")


Sound = str | float
"""A prompt name, or seconds of silence."""


@dataclass(frozen=True)
class Play:
    kind: ClassVar[str] = "play"
    name: str
    line: int
    prompts: tuple[str, ...]
    barge_in: bool = True
    next: Target | None = None


@dataclass(frozen=True)
class Pause:
    kind: ClassVar[str] = "pause"
    name: str
    line: int
    seconds: float
    barge_in: bool = True
    next: Target | None = None


@dataclass(frozen=True)
class Gather:
    kind: ClassVar[str] = "gather"
    name: str
    line: int
    prompts: tuple[str, ...] = ()
    max_digits: int = 20
    finish_key: str | None = "#"
    first_digit_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    barge_in: bool = True
    into: str = "digits"
    next: Target | None = None
    no_digits: Target | None = None
    """Where to go when the caller pressed nothing (default: ``next``)."""


@dataclass(frozen=True)
class Menu:
    kind: ClassVar[str] = "menu"
    name: str
    line: int
    prompts: tuple[str, ...]
    choices: tuple[tuple[str, Target], ...]
    invalid: tuple[str, ...] = ()
    no_input: tuple[str, ...] = ()
    timeout: float = 5.0
    retries: int = 2
    fallback: Target | None = None
    barge_in: bool = True
    into: str | None = None

    @property
    def choice_map(self) -> dict[str, Target]:
        return dict(self.choices)


@dataclass(frozen=True)
class Record:
    kind: ClassVar[str] = "record"
    name: str
    line: int
    box: str
    greeting: tuple[str, ...] = ()
    beep: str | None = BUILTIN_BEEP
    max_seconds: float = 120.0
    silence_seconds: float | None = 5.0
    finish_key: str | None = "#"
    next: Target | None = None


@dataclass(frozen=True)
class Say:
    kind: ClassVar[str] = "say"
    name: str
    line: int
    mode: str  # "digits" or "number"
    value: Template
    barge_in: bool = True
    next: Target | None = None


@dataclass(frozen=True)
class SetVars:
    kind: ClassVar[str] = "set"
    name: str
    line: int
    values: tuple[tuple[str, Template], ...]
    next: Target | None = None


@dataclass(frozen=True)
class Branch:
    kind: ClassVar[str] = "branch"
    name: str
    line: int
    cases: tuple[tuple[Condition, Target], ...]
    otherwise: Target | None = None


@dataclass(frozen=True)
class Transfer:
    kind: ClassVar[str] = "transfer"
    name: str
    line: int
    to: Template
    fallback: Target | None = None


@dataclass(frozen=True)
class Voicemail:
    kind: ClassVar[str] = "voicemail"
    name: str
    line: int
    number: Template | None = None
    fallback: Target | None = None


@dataclass(frozen=True)
class Hangup:
    kind: ClassVar[str] = "hangup"
    name: str
    line: int


@dataclass(frozen=True)
class Goto:
    kind: ClassVar[str] = "goto"
    name: str
    line: int
    target: Target


@dataclass(frozen=True)
class Http:
    kind: ClassVar[str] = "http"
    name: str
    line: int
    url: str
    fallback: Target
    timeout: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()
    next: Target | None = None


Step = (
    Play
    | Pause
    | Gather
    | Menu
    | Record
    | Say
    | SetVars
    | Branch
    | Transfer
    | Voicemail
    | Hangup
    | Goto
    | Http
)


def targets_of(step: Step) -> list[tuple[str, Target]]:
    """Every (option name, target) a step can go to, for validation and reachability."""
    found: list[tuple[str, Target | None]] = []
    if isinstance(step, Play | Pause | Say | SetVars | Record):
        found.append(("next", step.next))
    elif isinstance(step, Gather):
        found += [("next", step.next), ("no_digits", step.no_digits)]
    elif isinstance(step, Menu):
        found += [(f"choices.{key}", target) for key, target in step.choices]
        found.append(("fallback", step.fallback))
    elif isinstance(step, Branch):
        found += [(f"cases.{i}.goto", target) for i, (_, target) in enumerate(step.cases)]
        found.append(("else", step.otherwise))
    elif isinstance(step, Transfer | Voicemail):
        found.append(("fallback", step.fallback))
    elif isinstance(step, Goto):
        found.append(("goto", step.target))
    elif isinstance(step, Http):
        found += [("next", step.next), ("fallback", step.fallback)]
    return [(key, target) for key, target in found if target is not None]


@dataclass(frozen=True)
class Flow:
    """One flow file: its steps in file order, where it starts, its time zone."""

    name: str
    file: Path
    start: str
    steps: Mapping[str, Step]
    timezone: str = "UTC"
    description: str = ""
    entries: frozenset[str] = frozenset()
    """Steps marked ``entry: true``: reachable from outside (an HTTP reply, another flow)."""

    def step(self, name: str) -> Step:
        try:
            return self.steps[name]
        except KeyError:
            raise KeyError(f"flow {self.name!r} has no step {name!r}") from None

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.kind] = counts.get(step.kind, 0) + 1
        return counts


@dataclass(frozen=True)
class FlowSet:
    """Every flow of a configuration, validated together, with the prompts they use."""

    flows: Mapping[str, Flow]
    prompts: PromptLibrary
    files: tuple[Path, ...]
    loaded_at: datetime
    version: int = 1
    signature: tuple[tuple[str, int, int], ...] = field(default=(), repr=False)
    """(path, mtime_ns, size) of every file read, to tell when a reload is due."""

    def __contains__(self, name: object) -> bool:
        return name in self.flows

    def __iter__(self) -> Iterator[str]:
        return iter(self.flows)

    def __len__(self) -> int:
        return len(self.flows)

    def flow(self, name: str) -> Flow:
        try:
            return self.flows[name]
        except KeyError:
            known = ", ".join(self.flows) or "none"
            raise KeyError(f"no flow named {name!r} (loaded flows: {known})") from None

    def summary(self) -> str:
        parts = []
        for flow in self.flows.values():
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(flow.kinds().items()))
            parts.append(f"flow {flow.name!r}: {len(flow.steps)} steps ({kinds})")
        return "; ".join(parts)


__all__ = [
    "BUILTIN_BEEP",
    "DIGIT_PROMPTS",
    "KEYS",
    "NUMBER_PROMPTS",
    "STEP_KINDS",
    "Branch",
    "Flow",
    "FlowSet",
    "Gather",
    "Goto",
    "Hangup",
    "Http",
    "Menu",
    "Pause",
    "Play",
    "Record",
    "Say",
    "SetVars",
    "Sound",
    "Step",
    "Target",
    "Transfer",
    "Voicemail",
    "targets_of",
]
