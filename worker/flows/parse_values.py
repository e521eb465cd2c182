"""Reading the values inside flow steps: targets, templates, keys and branch conditions.

:class:`ValueParser` is the base of :class:`~worker.flows.parse.FlowFileParser`;
each method reads one node and raises a :class:`~worker.flows.errors.FlowError`
naming the file, line, key and value when it is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode

from worker.flows.conditions import (
    VARIABLE_NAME,
    WEEKDAYS,
    AllOf,
    AnyOf,
    Condition,
    Not,
    OnDate,
    Template,
    TimeBetween,
    VarTest,
    Weekday,
)
from worker.flows.model import KEYS, Target
from worker.flows.yamlnodes import NodeReader
from worker.yamlfile import Entry, line_of

_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")
_MONTH_DAY = re.compile(r"(\d\d)-(\d\d)\Z")


def check_zone(reader: NodeReader, node: Node, key: str) -> str:
    zone = reader.text(node, key)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise reader.error(
            "bad-timezone",
            f"{zone!r} is not an IANA time zone (such as 'Europe/Paris' or 'America/Montreal')",
            node,
            key,
            zone,
        ) from None
    return zone


class ValueParser:
    """Reads values with ``self.reader``; the base of the flow file parser."""

    reader: NodeReader

    def target(self, node: Node, key: str) -> Target:
        r = self.reader
        if isinstance(node, MappingNode):
            opts = r.options(node, key, ("flow", "step"), what="a target")
            if not opts:
                raise r.error("missing-key", "a target needs step: or flow:", node, key)
            flow = (
                r.name(opts["flow"].node, f"{key}.flow", "a flow name") if "flow" in opts else None
            )
            step = (
                r.name(opts["step"].node, f"{key}.step", "a step name") if "step" in opts else None
            )
            return Target(flow, step, line_of(node) or 0)
        if isinstance(node, ScalarNode) and not r.is_null(node):
            return Target(None, r.name(node, key, "a step name"), line_of(node) or 0)
        raise r.wrong_type("a step name or {flow: NAME, step: NAME}", node, key)

    def template(self, node: Node, key: str) -> Template:
        text = self.reader.template_text(node, key)
        try:
            return Template.parse(text)
        except ValueError as exc:
            raise self.reader.error("bad-template", str(exc), node, key, text) from None

    def number_template(self, node: Node, key: str) -> Template:
        template = self.template(node, key)
        literal = "".join(part for part, is_var in template.parts if not is_var)
        if not template.variables and not re.fullmatch(
            r"\+?[0-9*#]{1,32}", literal.replace(" ", "")
        ):
            raise self.reader.error(
                "bad-value",
                "expected a number to dial (digits, '*', '#', an optional leading '+'), "
                f"got {literal!r}",
                node,
                key,
                literal,
            )
        return template

    def key_or_none(self, node: Node, key: str) -> str | None:
        r = self.reader
        if r.is_null(node):
            return None
        value = r.text(node, key, numeric=True).upper()
        if len(value) != 1 or value not in KEYS:
            raise r.error(
                "bad-value",
                f"expected one key of {KEYS} (quote '#'), got {value!r}",
                node,
                key,
                value,
            )
        return value

    def variable_name(self, name: str, node: Node, key: str) -> str:
        if not VARIABLE_NAME.match(name):
            raise self.reader.error(
                "bad-value",
                f"a variable name is letters, digits and _, got {name!r}",
                node,
                key,
                name,
            )
        return name

    def condition(self, node: Node, key: str, zone: str) -> Condition:
        r = self.reader
        allowed = (
            "var",
            "equals",
            "in",
            "prefix",
            "matches",
            "empty",
            "time",
            "weekday",
            "date",
            "zone",
            "all",
            "any",
            "not",
        )
        opts = r.options(node, key, allowed, what="a condition")
        if not opts:
            raise r.error(
                "missing-key",
                "an empty condition; use var:, time:, weekday:, date:, all:, any: or not:",
                node,
                key,
            )
        if "zone" in opts:
            zone = check_zone(r, opts["zone"].node, f"{key}.zone")
        parts: list[Condition] = []
        operators = [o for o in ("equals", "in", "prefix", "matches", "empty") if o in opts]
        if "var" in opts or operators:
            parts.append(self._var_test(node, opts, key, operators))
        if "time" in opts:
            parts.append(self._time(opts["time"].node, f"{key}.time", zone))
        if "weekday" in opts:
            parts.append(self._weekday(opts["weekday"].node, f"{key}.weekday", zone))
        if "date" in opts:
            parts.append(self._date(opts["date"].node, f"{key}.date", zone))
        for group, cls in (("all", AllOf), ("any", AnyOf)):
            if group in opts:
                items = r.sequence(opts[group].node, f"{key}.{group}")
                if not items:
                    raise r.error(
                        "bad-value",
                        f"{group}: needs at least one condition",
                        opts[group].node,
                        f"{key}.{group}",
                        [],
                    )
                conditions = tuple(
                    self.condition(n, f"{key}.{group}.{i}", zone) for i, n in enumerate(items)
                )
                parts.append(cls(conditions))
        if "not" in opts:
            parts.append(Not(self.condition(opts["not"].node, f"{key}.not", zone)))
        if not parts:
            raise r.error(
                "missing-key",
                "zone: alone is not a condition; add time:, weekday: or date:",
                node,
                key,
            )
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _var_test(
        self, node: Node, opts: dict[str, Entry], key: str, operators: Sequence[str]
    ) -> VarTest:
        r = self.reader
        if "var" not in opts:
            raise r.error(
                "missing-key", f"{operators[0]}: needs var: (the variable to test)", node, key
            )
        if len(operators) != 1:
            raise r.error(
                "missing-key" if not operators else "bad-value",
                "var: needs exactly one of equals:, in:, prefix:, matches:, empty:"
                + (f" (it has {', '.join(operators)})" if operators else ""),
                node,
                key,
            )
        var = self.variable_name(
            r.text(opts["var"].node, f"{key}.var"), opts["var"].node, f"{key}.var"
        )
        op = operators[0]
        value_node = opts[op].node
        where = f"{key}.{op}"
        if op == "empty":
            return VarTest(var, op, empty=r.boolean(value_node, where))
        if op == "matches":
            pattern = r.text(value_node, where)
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise r.error(
                    "bad-pattern", f"not a regular expression: {exc}", value_node, where, pattern
                ) from None
            return VarTest(var, op, pattern=compiled)
        if op == "equals":
            return VarTest(var, op, (r.template_text(value_node, where),))
        return VarTest(var, op, tuple(text for text, _ in r.texts(value_node, where, numeric=True)))

    def _time(self, node: Node, key: str, zone: str) -> TimeBetween:
        r = self.reader
        items = r.sequence(node, key, 'a list of two times, ["09:00", "17:30"]')
        if len(items) != 2:
            raise r.error(
                "bad-time",
                f'expected two times ["HH:MM", "HH:MM"], got {len(items)}',
                node,
                key,
                r.value(node),
            )
        start, end = (self._clock_time(item, key) for item in items)
        if start == end:
            raise r.error("bad-time", "start and end are the same time", node, key, str(start))
        return TimeBetween(start, end, zone)

    def _clock_time(self, node: Node, key: str) -> time:
        r = self.reader
        text = r.text(node, key, numeric=True)
        match = _TIME.match(text)
        if match is None:
            raise r.error(
                "bad-time",
                f"expected a time of day HH:MM (00:00-23:59), got {text!r}",
                node,
                key,
                text,
            )
        return time(int(match.group(1)), int(match.group(2)))

    def _weekday(self, node: Node, key: str, zone: str) -> Weekday:
        r = self.reader
        days: set[int] = set()
        for text, item in r.texts(node, key):
            for part in text.lower().replace(" ", "").split(","):
                first, _, last = part.partition("-")
                if first not in WEEKDAYS or (last and last not in WEEKDAYS):
                    raise r.error(
                        "bad-value",
                        f"expected days mon..sun or a range mon-fri, got {part!r}",
                        item,
                        key,
                        part,
                    )
                a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
                days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        return Weekday(frozenset(days), zone)

    def _date(self, node: Node, key: str, zone: str) -> OnDate:
        r = self.reader
        dates: set[date] = set()
        yearly: set[tuple[int, int]] = set()
        for text, item in r.texts(node, key, numeric=True):
            month_day = _MONTH_DAY.match(text)
            try:
                if month_day is not None:
                    date(2000, int(month_day.group(1)), int(month_day.group(2)))  # 2000: leap
                    yearly.add((int(month_day.group(1)), int(month_day.group(2))))
                else:
                    dates.add(date.fromisoformat(text))
            except ValueError:
                raise r.error(
                    "bad-value",
                    f"expected a date YYYY-MM-DD or MM-DD, got {text!r}",
                    item,
                    key,
                    text,
                ) from None
        return OnDate(frozenset(dates), frozenset(yearly), zone)


__all__ = ["ValueParser", "check_zone"]
