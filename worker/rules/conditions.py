"""Parsing the conditions under a rule's ``when:`` into :mod:`worker.rules.model` values.

:data:`CONDITIONS` maps each condition key to its parser; a parser reads one
YAML node through the loader (which knows the file, its default time zone and
number plan) and returns a condition, or raises a RulesError naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.node.hours import HoursError, parse_weekly_hours
from worker.rules.errors import RulesError
from worker.rules.model import (
    ACTIONS,
    AllOf,
    Anonymous,
    AnyOf,
    CallerInList,
    CallerIs,
    CallerPattern,
    CallerPrefix,
    CallerRegex,
    Condition,
    Extension,
    Holiday,
    Hours,
    LiveCallsOver,
    NodeFull,
    Not,
)
from worker.rules.numbers import ListEntryError, NumberError, parse_number_list
from worker.yamlfile import Entry, line_of, suggest

if TYPE_CHECKING:
    from worker.rules.loader import RulesLoader

Parser = Callable[["RulesLoader", Node, str], Condition]

_GLOB_CHARS = frozenset("+0123456789*?[]!-")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_conditions(ld: RulesLoader, node: Node, key: str) -> tuple[Condition, ...]:
    """A mapping of conditions (all must hold)."""
    conditions: list[Condition] = []
    for entry in ld.mapping(node, key, "a mapping of conditions"):
        parser = CONDITIONS.get(entry.name)
        if parser is None:
            hint = (
                "; actions go beside when:, not under it"
                if entry.name in ACTIONS
                else suggest(entry.name, CONDITIONS)
            )
            raise ld.error(
                "unknown-condition",
                f"unknown condition {entry.name!r}{hint}; conditions are: {', '.join(CONDITIONS)}",
                entry.key_node,
                key,
                entry.name,
            )
        conditions.append(parser(ld, entry.node, f"{key}.{entry.name}"))
    return tuple(conditions)


def _extension(ld: RulesLoader, node: Node, key: str) -> Condition:
    return Extension(tuple(text for text, _ in ld.texts(node, key, numeric=True)))


def _caller(ld: RulesLoader, node: Node, key: str) -> Condition:
    return CallerIs(
        tuple(ld.number(text, item, key) for text, item in ld.texts(node, key, numeric=True))
    )


def _prefix(ld: RulesLoader, node: Node, key: str) -> Condition:
    prefixes: list[str] = []
    for text, item in ld.texts(node, key, numeric=True):
        try:
            prefixes.append(ld.plan.normalise_prefix(text))
        except NumberError as exc:
            raise ld.error("bad-number", str(exc), item, key, text) from None
    return CallerPrefix(tuple(prefixes))


def _pattern(ld: RulesLoader, node: Node, key: str) -> Condition:
    patterns: list[str] = []
    for text, item in ld.texts(node, key, numeric=True):
        stray = sorted(set(text) - _GLOB_CHARS)
        if stray:
            raise ld.error(
                "bad-pattern",
                f"pattern {text!r} can never match: caller numbers are compared in E.164 form "
                f"(+15145550000), so {''.join(stray)!r} never appears; patterns use + digits "
                "* ? [0-9]",
                item,
                key,
                text,
            )
        patterns.append(text)
    return CallerPattern(tuple(patterns))


def _regex(ld: RulesLoader, node: Node, key: str) -> Condition:
    text = ld.text(node, key)
    try:
        return CallerRegex(re.compile(text))
    except re.error as exc:
        raise ld.error(
            "bad-pattern", f"bad regular expression {text!r}: {exc}", node, key, text
        ) from None


def _in_list(ld: RulesLoader, node: Node, key: str) -> Condition:
    numbers: set[str] = set()
    written: list[str] = []
    for text, item in ld.texts(node, key):
        path = ld.relative(text)
        content = ld.read(path, item, key, "number list", text)
        try:
            numbers.update(parse_number_list(content, ld.plan))
        except ListEntryError as exc:
            raise RulesError(
                f"{exc.reason} (in the list named at {ld.file}:{line_of(item)})",
                kind="bad-number",
                file=path,
                line=exc.line,
                key=key,
                value=exc.text,
            ) from None
        written.append(text)
    return CallerInList(tuple(written), frozenset(numbers))


def _anonymous(ld: RulesLoader, node: Node, key: str) -> Condition:
    return Anonymous(ld.boolean(node, key))


def _hours(ld: RulesLoader, node: Node, key: str) -> Condition:
    if isinstance(node, MappingNode):
        options = ld.options(node, key, ("open", "timezone"), ("open",), what="hours")
        text_node = options["open"].node
        text = ld.text(text_node, f"{key}.open")
        zone = ld.zone_or_default(options, node, key)
    else:
        text_node, text = node, ld.text(node, key)
        zone = ld.zone_or_default({}, node, key)
    try:
        windows = parse_weekly_hours(text)
    except HoursError as exc:
        raise ld.error("bad-window", f"bad hours: {exc}", text_node, key, text) from None
    if not windows:
        raise ld.error("bad-window", "holds no window", text_node, key, text)
    return Hours(text, windows, zone)


def _holiday(ld: RulesLoader, node: Node, key: str) -> Condition:
    dates: set[date] = set()
    options: dict[str, Entry] = {}
    if isinstance(node, SequenceNode | ScalarNode):
        items = ld.sequence(node, key) if isinstance(node, SequenceNode) else [node]
    else:
        options = ld.options(node, key, ("dates", "file", "timezone"), what="holiday")
        if not {"dates", "file"} & options.keys():
            raise ld.error(
                "missing-option", "holiday needs dates: (a list) or file: (or both)", node, key
            )
        items = ld.sequence(options["dates"].node, f"{key}.dates") if "dates" in options else []
    for item in items:
        dates.add(ld.date(item, key))
    if "file" in options:
        file_node = options["file"].node
        written = ld.text(file_node, f"{key}.file")
        path = ld.relative(written)
        content = ld.read(path, file_node, f"{key}.file", "holidays file", written)
        dates.update(_holidays_file(content, path, key))
    if not dates:
        raise ld.error("bad-value", "holiday lists no dates", node, key)
    zone = ld.zone_or_default(options, node, key)
    return Holiday(frozenset(dates), zone)


def parse_date(text: str) -> date:
    """A YYYY-MM-DD date, or ValueError with a message naming the text."""
    if not _DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not a date: expected YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date: expected YYYY-MM-DD ({exc})") from None


def _holidays_file(content: str, path: Path, key: str) -> set[date]:
    dates: set[date] = set()
    for number, line in enumerate(content.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            dates.add(parse_date(words[0]))
        except ValueError as exc:
            raise RulesError(
                str(exc), kind="bad-date", file=path, line=number, key=key, value=words[0]
            ) from None
    return dates


def _node_full(ld: RulesLoader, node: Node, key: str) -> Condition:
    return NodeFull(ld.boolean(node, key))


def _live_calls_over(ld: RulesLoader, node: Node, key: str) -> Condition:
    return LiveCallsOver(ld.integer(node, key, minimum=0))


def _not(ld: RulesLoader, node: Node, key: str) -> Condition:
    return Not(_group(ld, node, key))


def _group(ld: RulesLoader, node: Node, key: str) -> tuple[Condition, ...]:
    conditions = parse_conditions(ld, node, key)
    if not conditions:
        raise ld.error("bad-value", "expected at least one condition, got none", node, key)
    return conditions


def _groups(ld: RulesLoader, node: Node, key: str) -> tuple[tuple[Condition, ...], ...]:
    items = ld.sequence(node, key, "a list of condition mappings")
    if not items:
        raise ld.error("bad-value", "expected at least one group of conditions, got []", node, key)
    return tuple(_group(ld, item, f"{key}[{i}]") for i, item in enumerate(items, start=1))


def _any(ld: RulesLoader, node: Node, key: str) -> Condition:
    return AnyOf(_groups(ld, node, key))


def _all(ld: RulesLoader, node: Node, key: str) -> Condition:
    return AllOf(_groups(ld, node, key))


CONDITIONS: dict[str, Parser] = {
    "extension": _extension,
    "caller": _caller,
    "caller_prefix": _prefix,
    "caller_pattern": _pattern,
    "caller_regex": _regex,
    "caller_in_list": _in_list,
    "anonymous": _anonymous,
    "hours": _hours,
    "holiday": _holiday,
    "node_full": _node_full,
    "live_calls_over": _live_calls_over,
    "not": _not,
    "any": _any,
    "all": _all,
}
