"""Conditions of a ``branch`` step, and ``${name}`` templates: pure values, no I/O.

A condition looks at the call's variables and the time (an aware
``datetime`` handed in by the engine, never read from the system here)::

    {var: caller, prefix: "+1514"}          VarTest: equals, in, prefix, matches, empty
    {time: ["09:00", "17:00"]}              TimeBetween: [start, end), wraps past midnight
    {weekday: [mon, tue, wed, thu, fri]}    Weekday
    {date: ["2026-12-25", "01-01"]}         OnDate: a day, or every year on that day
    {all: [...]}, {any: [...]}, {not: {...}}

Several keys in one mapping must all hold. Time, weekday and date read the
wall clock of ``zone:`` (or the flow's ``timezone:``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Template:
    """Text with ``${variable}`` placeholders; an unknown variable renders as ""."""

    text: str
    parts: tuple[tuple[str, bool], ...]
    """(literal text, False) and (variable name, True), in order."""

    @classmethod
    def parse(cls, text: str) -> Template:
        """Split ``text``; ValueError naming the placeholder if one is not a variable name."""
        parts: list[tuple[str, bool]] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1).strip()
            if not VARIABLE_NAME.match(name):
                raise ValueError(f"{match.group(0)!r} is not a variable (letters, digits, _)")
            if match.start() > position:
                parts.append((text[position : match.start()], False))
            parts.append((name, True))
            position = match.end()
        if position < len(text):
            parts.append((text[position:], False))
        return cls(text, tuple(parts))

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(part for part, is_variable in self.parts if is_variable)

    def render(self, variables: dict[str, str]) -> str:
        return "".join(
            variables.get(part, "") if is_variable else part for part, is_variable in self.parts
        )

    def __str__(self) -> str:
        return self.text


class Condition(Protocol):
    def holds(self, variables: dict[str, str], now: datetime) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class VarTest:
    """``{var: NAME, <op>: VALUE}`` with op one of equals, in, prefix, matches, empty."""

    var: str
    op: str
    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    empty: bool = True

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        value = variables.get(self.var, "")
        if self.op in ("equals", "in"):
            return value in self.values
        if self.op == "prefix":
            return any(value.startswith(prefix) for prefix in self.values)
        if self.op == "matches":
            assert self.pattern is not None
            return self.pattern.search(value) is not None
        return (value == "") is self.empty

    def describe(self) -> str:
        if self.op == "matches":
            assert self.pattern is not None
            return f"{self.var} matches {self.pattern.pattern!r}"
        if self.op == "empty":
            return f"{self.var} is {'empty' if self.empty else 'not empty'}"
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.var} {self.op} {shown!r}"


@dataclass(frozen=True)
class TimeBetween:
    """Wall-clock time of day in ``zone`` within [start, end); start > end wraps midnight."""

    start: time
    end: time
    zone: str

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.zone)).time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def describe(self) -> str:
        return f"time {self.start:%H:%M}-{self.end:%H:%M} {self.zone}"


@dataclass(frozen=True)
class Weekday:
    """The day of the week in ``zone`` is one of ``days`` (0 = Monday)."""

    days: frozenset[int]
    zone: str

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        return now.astimezone(ZoneInfo(self.zone)).weekday() in self.days

    def describe(self) -> str:
        return f"weekday in {[WEEKDAYS[d] for d in sorted(self.days)]} {self.zone}"


@dataclass(frozen=True)
class OnDate:
    """The date in ``zone`` is one of ``dates``, or its (month, day) is one of ``yearly``."""

    dates: frozenset[date]
    yearly: frozenset[tuple[int, int]]
    zone: str

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        today = now.astimezone(ZoneInfo(self.zone)).date()
        return today in self.dates or (today.month, today.day) in self.yearly

    def describe(self) -> str:
        shown = sorted(d.isoformat() for d in self.dates) + sorted(
            f"{m:02d}-{d:02d}" for m, d in self.yearly
        )
        return f"date in {shown} {self.zone}"


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        return all(c.holds(variables, now) for c in self.conditions)

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.conditions)


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        return any(c.holds(variables, now) for c in self.conditions)

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.conditions) + ")"


@dataclass(frozen=True)
class Not:
    condition: Condition

    def holds(self, variables: dict[str, str], now: datetime) -> bool:
        return not self.condition.holds(variables, now)

    def describe(self) -> str:
        return f"not ({self.condition.describe()})"


__all__ = [
    "VARIABLE_NAME",
    "WEEKDAYS",
    "AllOf",
    "AnyOf",
    "Condition",
    "Not",
    "OnDate",
    "Template",
    "TimeBetween",
    "VarTest",
    "Weekday",
]
