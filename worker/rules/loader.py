"""Loading a rules file: YAML in, a validated immutable :class:`RuleSet` out.

Everything is checked on load: the file's shape, every condition and action,
time zones, hours windows, dates, phone numbers, list and holiday files
(read now, relative to the rules file), duplicate and unreachable rules. The
first mistake raises :class:`~worker.rules.errors.RulesError` naming the file,
the line, the key and the bad value. The file format is documented in
docs/rules.md.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode

from worker.node.decide import Action
from worker.rules.conditions import CONDITIONS, parse_conditions, parse_date
from worker.rules.errors import RulesError
from worker.rules.model import (
    ACTIONS,
    DEFAULT_RULE,
    Condition,
    Outcome,
    Rule,
    RuleSet,
)
from worker.rules.numbers import NumberError, NumberPlan, check_country_code
from worker.yamlfile import Entry, NodeReader, compose_text, line_of, suggest

TOP_KEYS = ("rules", "default", "default_country", "timezone")
RULE_KEYS = ("name", "when")
_FLOW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def load_rules(path: Path | str) -> RuleSet:
    """Read and validate a rules file; raise :class:`RulesError` on the first mistake."""
    loader = RulesLoader(Path(path))
    try:
        return loader.load()
    except RulesError as exc:
        exc.sources = tuple(loader.tried)
        raise


class RulesLoader(NodeReader):
    """One load of one rules file: the files it read, their digest, the file-wide settings.

    As a :class:`~worker.yamlfile.NodeReader` it raises :class:`RulesError`, with kinds
    ``unknown-option`` and ``missing-option`` for options, keeps only strings, integers
    and floats as written for ``numeric`` text, and refuses tags SafeLoader cannot build.
    """

    ERROR = RulesError
    STRICT_TAGS = True

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.path = path
        self.sources: list[Path] = []
        self.tried: list[Path] = []  # sources, and files that could not be read
        self.hash = hashlib.sha256()
        self.plan = NumberPlan()
        self.timezone = ""  # the file's default zone for hours and holidays

    # -- files ------------------------------------------------------------------------

    def read(self, path: Path, node: Node | None, key: str, what: str, written: str) -> str:
        if path not in self.tried:
            self.tried.append(path)
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except FileNotFoundError:
            looked = "" if written == str(path) else f" (looked for {path})"
            raise self.error(
                "missing-file",
                f"{what} {written!r} not found{looked}",
                node,
                key,
                written,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(
                "unreadable-file", f"cannot read {what} {written!r}: {exc}", node, key, written
            ) from None
        if path not in self.sources:
            self.sources.append(path)
            self.hash.update(str(path).encode() + b"\0" + data + b"\0")
        return text

    def relative(self, written: str) -> Path:
        return self.path.parent / written

    # -- the file ---------------------------------------------------------------------

    def load(self) -> RuleSet:
        text = self.read(self.path, None, "", "rules file", str(self.path))
        root = compose_text(text, self.path, RulesError)
        if root is None:
            raise RulesError(
                "the file is empty: it needs a rules: list", kind="empty-rules", file=self.path
            )
        entries = {e.name: e for e in self.mapping(root, "", "a mapping with a rules: list")}
        self.refuse_unknown(
            entries.values(),
            TOP_KEYS,
            kind="unknown-key",
            what="top-level key",
            then=f"a rules file has: {', '.join(TOP_KEYS)}",
        )
        if "default_country" in entries:
            node = entries["default_country"].node
            try:
                self.plan = NumberPlan(
                    check_country_code(self.text(node, "default_country", numeric=True))
                )
            except NumberError as exc:
                raise self.error(
                    "bad-value", str(exc), node, "default_country", node.value
                ) from None
        if "timezone" in entries:
            self.timezone = self.zone(entries["timezone"].node, "timezone")
        if "rules" not in entries:
            raise self.error("empty-rules", "the file has no rules: list", root, "rules")
        rules = self.rules(entries["rules"].node)
        default = Outcome(Action.ANSWER)
        if "default" in entries:
            default = self.default(entries["default"].node)
        return RuleSet(
            path=self.path,
            rules=rules,
            default=default,
            plan=self.plan,
            sources=tuple(self.sources),
            digest=self.hash.hexdigest(),
        )

    def rules(self, node: Node) -> tuple[Rule, ...]:
        if self.is_null(node):
            raise self.error("empty-rules", "is empty: add at least one rule", node, "rules")
        items = self.sequence(node, "rules", "a list of rules")
        if not items:
            raise self.error("empty-rules", "is empty: add at least one rule", node, "rules", [])
        rules: list[Rule] = []
        names: dict[str, Rule] = {}
        for index, item in enumerate(items, start=1):
            rule = self.rule(item, f"rules[{index}]", index, names)
            catch_all = next((r for r in rules if not r.conditions), None)
            if catch_all is not None:
                raise self.error(
                    "unreachable-rule",
                    f"rule {rule.name!r} can never match: rule {catch_all.name!r} "
                    f"(line {catch_all.line}) has no conditions and takes every call first",
                    item,
                    f"rules[{index}]",
                    rule.name,
                )
            names[rule.name] = rule
            rules.append(rule)
        return tuple(rules)

    def rule(self, node: Node, key: str, index: int, names: dict[str, Rule]) -> Rule:
        entries = self.mapping(node, key, "a rule (a mapping with when: and an action)")
        name = f"rule {index}"
        conditions: tuple[Condition, ...] = ()
        actions: list[Entry] = []
        for entry in entries:
            if entry.name == "name":
                name = self.text(entry.node, f"{key}.name")
                if name == DEFAULT_RULE or name in names:
                    first = names.get(name)
                    where = f" (line {first.line})" if first else " (it is reserved)"
                    raise self.error(
                        "duplicate-name",
                        f"rule name {name!r} is already used{where}",
                        entry.node,
                        f"{key}.name",
                        name,
                    )
            elif entry.name == "when":
                if self.is_null(entry.node) or entry.node.value == []:
                    raise self.error(
                        "bad-value",
                        "holds no conditions; remove when: to match every call",
                        entry.node,
                        f"{key}.when",
                    )
                conditions = self.conditions(entry.node, f"{key}.when")
            elif entry.name in ACTIONS:
                actions.append(entry)
            else:
                hint = (
                    "; conditions go under when:"
                    if entry.name in CONDITIONS
                    else suggest(entry.name, [*ACTIONS, *RULE_KEYS])
                )
                raise self.error(
                    "unknown-action",
                    f"unknown action {entry.name!r}{hint}; a rule has name:, when: and one "
                    f"action among: {', '.join(ACTIONS)}",
                    entry.key_node,
                    key,
                    entry.name,
                )
        if not actions:
            raise self.error(
                "missing-action",
                f"rule {name!r} has no action: add one of {', '.join(ACTIONS)}",
                node,
                key,
            )
        if len(actions) > 1:
            both = [a.name for a in actions]
            raise self.error(
                "two-actions",
                f"rule {name!r} has {len(both)} actions ({', '.join(both)}): keep one",
                actions[1].key_node,
                key,
                both,
            )
        return Rule(
            name,
            conditions,
            self.outcome(actions[0], f"{key}.{actions[0].name}"),
            line_of(node) or 0,
        )

    def default(self, node: Node) -> Outcome:
        if isinstance(node, ScalarNode) and node.value in ACTIONS and node.value != "forward":
            return Outcome(ACTIONS[node.value])
        entries = self.mapping(node, "default", "an action such as voicemail: {}")
        self.refuse_unknown(
            entries,
            ACTIONS,
            kind="unknown-action",
            what="action",
            then=f"default: takes one of {', '.join(ACTIONS)}",
            key="default",
        )
        if len(entries) != 1:
            raise self.error(
                "two-actions" if entries else "missing-action",
                f"needs exactly one action, got {len(entries)}",
                node,
                "default",
                [e.name for e in entries],
            )
        return self.outcome(entries[0], f"default.{entries[0].name}")

    # -- actions ----------------------------------------------------------------------

    def outcome(self, entry: Entry, key: str) -> Outcome:
        action, node = ACTIONS[entry.name], entry.node
        if action is Action.ANSWER:
            flow_node: Node | None = node
            if isinstance(node, MappingNode):
                options = self.options(node, key, ("flow",), what="answer")
                flow_node = options["flow"].node if "flow" in options else None
            elif self.is_null(node):
                flow_node = None
            flow = self.text(flow_node, f"{key}.flow") if flow_node is not None else ""
            if flow and not _FLOW_NAME.fullmatch(flow):
                raise self.error(
                    "bad-value",
                    f"flow name {flow!r} may hold only letters, digits, _ . / and -",
                    flow_node,
                    f"{key}.flow",
                    flow,
                )
            return Outcome(action, flow=flow)
        if action is Action.FORWARD:
            to_node = node
            if isinstance(node, MappingNode):
                to_node = self.options(node, key, ("to",), ("to",), what="forward")["to"].node
            elif self.is_null(node):
                raise self.error(
                    "missing-option",
                    'forward needs a number: forward: {to: "+15145550000"}',
                    node,
                    key,
                )
            written = self.text(to_node, f"{key}.to", numeric=True)
            return Outcome(action, destination=self.number(written, to_node, f"{key}.to"))
        # voicemail, decline, ignore take no options: null, true or {}.
        if self.is_null(node) or (isinstance(node, ScalarNode) and self.value(node, key) is True):
            return Outcome(action)
        if isinstance(node, ScalarNode):
            raise self.error(
                "bad-value",
                f"{entry.name} takes no value: write `{entry.name}: {{}}` (or remove the action)",
                node,
                key,
                self.value(node, key),
            )
        self.options(node, key, (), what=entry.name)
        return Outcome(action)

    # -- values -----------------------------------------------------------------------

    def zone(self, node: Node, key: str) -> str:
        name = self.text(node, key)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise self.error(
                "bad-timezone",
                f"unknown time zone {name!r}: expected an IANA name like America/Montreal "
                "or Europe/Paris",
                node,
                key,
                name,
            ) from None
        return name

    def zone_or_default(self, options: dict[str, Entry], node: Node, key: str) -> str:
        if "timezone" in options:
            return self.zone(options["timezone"].node, f"{key}.timezone")
        if self.timezone:
            return self.timezone
        raise self.error(
            "missing-option",
            "needs a time zone: add timezone: here, or once at the top of the file",
            node,
            key,
        )

    def number(self, written: str, node: Node, key: str) -> str:
        try:
            return self.plan.normalise(written)
        except NumberError as exc:
            raise self.error("bad-number", str(exc), node, key, written) from None

    def date(self, node: Node, key: str) -> date:
        value = self.value(node, key)
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        text = str(node.value) if isinstance(node, ScalarNode) else self.describe(node, key)
        try:
            return parse_date(text)
        except ValueError as exc:
            raise self.error("bad-date", str(exc), node, key, text) from None

    def conditions(self, node: Node, key: str) -> tuple[Condition, ...]:
        return parse_conditions(self, node, key)
