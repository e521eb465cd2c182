"""Routing rules as immutable values, and :func:`evaluate`: the pure decision.

A :class:`RuleSet` is an ordered tuple of :class:`Rule`; each rule is a tuple
of conditions (all must hold) and one :class:`Outcome`. :func:`evaluate` walks
the rules and returns the first match as a
:class:`~worker.node.decide.Decision`, or the file's default. It does no I/O:
list files and holidays were read when the rules were loaded, and the clock
and the node's load are arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from worker.node.decide import Action, CallFacts, Decision, Load
from worker.node.hours import Window, is_open
from worker.rules.numbers import NumberPlan

#: ``Decision.rule`` when no rule matched and the default decided.
DEFAULT_RULE = "(default)"

#: The action keys of a rules file.
ACTIONS = {
    "answer": Action.ANSWER,
    "voicemail": Action.VOICEMAIL,
    "decline": Action.DECLINE,
    "forward": Action.FORWARD,
    "ignore": Action.IGNORE,
}


@dataclass(frozen=True)
class Facts:
    """What conditions look at: the call, its caller normalised once, the clock, the load."""

    call: CallFacts
    caller: str  # E.164, an extension, the cleaned raw number, or "" when anonymous
    now: datetime
    load: Load

    @property
    def anonymous(self) -> bool:
        return not self.caller


class Condition(Protocol):
    def holds(self, facts: Facts) -> bool: ...

    def describe(self) -> str: ...


def _one_or_list(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "one of " + ", ".join(values)


@dataclass(frozen=True)
class Extension:
    extensions: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        return facts.call.extension in self.extensions

    def describe(self) -> str:
        return f"extension {_one_or_list(self.extensions)}"


@dataclass(frozen=True)
class CallerIs:
    numbers: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        return not facts.anonymous and facts.caller in self.numbers

    def describe(self) -> str:
        return f"caller {_one_or_list(self.numbers)}"


@dataclass(frozen=True)
class CallerPrefix:
    prefixes: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        return not facts.anonymous and facts.caller.startswith(self.prefixes)

    def describe(self) -> str:
        return f"caller starts with {_one_or_list(self.prefixes)}"


@dataclass(frozen=True)
class CallerPattern:
    """Shell-style globs (``*``, ``?``, ``[0-9]``) matched against the whole number."""

    patterns: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        return not facts.anonymous and any(fnmatchcase(facts.caller, p) for p in self.patterns)

    def describe(self) -> str:
        return f"caller matches {_one_or_list(self.patterns)}"


@dataclass(frozen=True)
class CallerRegex:
    """A Python regular expression that must match the whole number."""

    regex: re.Pattern[str]

    def holds(self, facts: Facts) -> bool:
        return not facts.anonymous and self.regex.fullmatch(facts.caller) is not None

    def describe(self) -> str:
        return f"caller matches /{self.regex.pattern}/"


@dataclass(frozen=True)
class CallerInList:
    files: tuple[str, ...]  # as written in the rules file, for messages
    numbers: frozenset[str] = field(repr=False)

    def holds(self, facts: Facts) -> bool:
        return not facts.anonymous and facts.caller in self.numbers

    def describe(self) -> str:
        return f"caller in {', '.join(self.files)}"


@dataclass(frozen=True)
class Anonymous:
    expected: bool

    def holds(self, facts: Facts) -> bool:
        return facts.anonymous is self.expected

    def describe(self) -> str:
        return "anonymous caller" if self.expected else "caller shows a number"


@dataclass(frozen=True)
class Hours:
    text: str
    windows: tuple[Window, ...]
    timezone: str

    def holds(self, facts: Facts) -> bool:
        return is_open(self.windows, facts.now, self.timezone)

    def describe(self) -> str:
        return f"hours {self.text} ({self.timezone})"


@dataclass(frozen=True)
class Holiday:
    dates: frozenset[date]
    timezone: str

    def holds(self, facts: Facts) -> bool:
        return facts.now.astimezone(ZoneInfo(self.timezone)).date() in self.dates

    def describe(self) -> str:
        return f"holiday ({self.timezone})"


@dataclass(frozen=True)
class NodeFull:
    expected: bool

    def holds(self, facts: Facts) -> bool:
        return facts.load.full is self.expected

    def describe(self) -> str:
        return "node full" if self.expected else "node not full"


@dataclass(frozen=True)
class LiveCallsOver:
    limit: int

    def holds(self, facts: Facts) -> bool:
        return facts.load.live_calls > self.limit

    def describe(self) -> str:
        return f"more than {self.limit} live calls"


def _all(conditions: tuple[Condition, ...], facts: Facts) -> bool:
    return all(condition.holds(facts) for condition in conditions)


def _describe_all(conditions: tuple[Condition, ...]) -> str:
    return " and ".join(condition.describe() for condition in conditions) or "always"


@dataclass(frozen=True)
class Not:
    """True unless all of its conditions hold."""

    conditions: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return not _all(self.conditions, facts)

    def describe(self) -> str:
        return f"not ({_describe_all(self.conditions)})"


@dataclass(frozen=True)
class AnyOf:
    """True when all the conditions of at least one group hold."""

    groups: tuple[tuple[Condition, ...], ...]

    def holds(self, facts: Facts) -> bool:
        return any(_all(group, facts) for group in self.groups)

    def describe(self) -> str:
        return "any of (" + "; ".join(_describe_all(group) for group in self.groups) + ")"


@dataclass(frozen=True)
class AllOf:
    """True when every condition of every group holds (to repeat a key such as ``not``)."""

    groups: tuple[tuple[Condition, ...], ...]

    def holds(self, facts: Facts) -> bool:
        return all(_all(group, facts) for group in self.groups)

    def describe(self) -> str:
        return "all of (" + "; ".join(_describe_all(group) for group in self.groups) + ")"


@dataclass(frozen=True)
class Outcome:
    """A rule's action with its argument: the flow to answer with, the number to forward to."""

    action: Action
    flow: str = ""
    destination: str = ""

    def describe(self) -> str:
        if self.action is Action.ANSWER:
            return f"answer with flow {self.flow!r}" if self.flow else "answer (default flow)"
        if self.action is Action.FORWARD:
            return f"forward to {self.destination}"
        return self.action.value

    def decision(self, rule: str, reason: str) -> Decision:
        return Decision(
            self.action, reason, flow=self.flow, destination=self.destination, rule=rule
        )


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    outcome: Outcome
    line: int = 0

    def matches(self, facts: Facts) -> bool:
        return _all(self.conditions, facts)

    def describe(self) -> str:
        return f"rule {self.name!r}: {_describe_all(self.conditions)} -> {self.outcome.describe()}"


@dataclass(frozen=True)
class RuleSet:
    """One loaded version of a rules file. Immutable: a call keeps the version it started with."""

    path: Path
    rules: tuple[Rule, ...]
    default: Outcome = field(default_factory=lambda: Outcome(Action.ANSWER))
    plan: NumberPlan = field(default_factory=NumberPlan)
    sources: tuple[Path, ...] = ()  # the rules file and every file it read
    digest: str = ""  # sha256 of those files' contents: the version's identity

    def flows(self) -> frozenset[str]:
        """The flow names the rules and the default answer with (for cross-checks with flows)."""
        outcomes = (*(rule.outcome for rule in self.rules), self.default)
        return frozenset(o.flow for o in outcomes if o.action is Action.ANSWER and o.flow)

    def summary(self) -> str:
        count = f"{len(self.rules)} rule" + ("" if len(self.rules) == 1 else "s")
        return f"{count}, default: {self.default.describe()}"


def evaluate(rules: RuleSet, call: CallFacts, now: datetime, load: Load) -> Decision:
    """The decision for a new call: the first rule whose conditions all hold, else the default.

    ``now`` must be timezone-aware; hours and holidays are read in each
    condition's own time zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"evaluate needs a timezone-aware time, got naive {now.isoformat()}")
    facts = Facts(call=call, caller=rules.plan.caller(call.caller_number), now=now, load=load)
    for rule in rules.rules:
        if rule.matches(facts):
            return rule.outcome.decision(
                rule.name, f"rule {rule.name!r}: {_describe_all(rule.conditions)}"
            )
    return rules.default.decision(DEFAULT_RULE, "no rule matched: default")
