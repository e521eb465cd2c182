"""Reading a composed YAML node graph with line numbers, for files validated on load.

``yaml.compose`` keeps every node's position, so each value read through
:class:`NodeReader` can name its line when it is wrong. The reader turns
type mistakes into :class:`~worker.rules.errors.RulesError` (kind
``wrong-type``, ``duplicate-key``, ``unknown-option``, ``missing-option``)
and offers typed accessors: mappings without duplicate keys, text, booleans,
integers, "one or a list".
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.rules.errors import RulesError

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
# Tags whose plain text reads as a number or an extension: keep the text as written
# (YAML 1.1 would read 0123 as octal 83 and +15145550000 as an int).
_NUMERIC = frozenset({_STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a mapping, with both nodes for line numbers."""

    name: str
    key_node: Node
    node: Node


def line_of(node: Node | None) -> int | None:
    mark = node.start_mark if node is not None else None
    return mark.line + 1 if mark is not None else None


def suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class NodeReader:
    """Typed reads of YAML nodes; every mistake becomes a RulesError naming ``file``."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._constructor = SafeConstructor()

    def error(
        self, kind: str, message: str, node: Node | None, key: str, value: object = None
    ) -> RulesError:
        return RulesError(
            message, kind=kind, file=self.file, line=line_of(node), key=key, value=value
        )

    def value(self, node: Node, key: str) -> object:
        """The Python value of a scalar (a bad date stays its text; a foreign tag is an error)."""
        if isinstance(node, MappingNode):
            return {}
        if isinstance(node, SequenceNode):
            return []
        try:
            return self._constructor.construct_object(node)
        except ValueError:
            return str(node.value)  # e.g. 2026-02-30, which YAML would read as a date
        except yaml.YAMLError:
            raise self.error(
                "wrong-type", f"unsupported YAML tag {node.tag!r}", node, key, node.value
            ) from None

    def describe(self, node: Node, key: str) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        if node.tag == _NULL:
            return "nothing"
        return repr(self.value(node, key))

    def wrong_type(self, expected: str, node: Node, key: str) -> RulesError:
        got = self.describe(node, key)
        return self.error(
            "wrong-type", f"expected {expected}, got {got}", node, key, self.value(node, key)
        )

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _NULL

    def mapping(self, node: Node, key: str, expected: str = "a mapping") -> list[Entry]:
        if not isinstance(node, MappingNode):
            raise self.wrong_type(expected, node, key)
        entries: list[Entry] = []
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.wrong_type("a plain key", key_node, key)
            name = str(key_node.value)
            if name in seen:
                raise self.error(
                    "duplicate-key",
                    f"{name!r} appears twice (first on line {line_of(seen[name])}); "
                    "YAML would silently keep only the last one",
                    key_node,
                    key,
                    name,
                )
            seen[name] = key_node
            entries.append(Entry(name, key_node, value_node))
        return entries

    def options(
        self,
        node: Node,
        key: str,
        allowed: Collection[str],
        required: Collection[str] = (),
        what: str = "",
    ) -> dict[str, Entry]:
        """A mapping whose keys must be among ``allowed`` and include ``required``."""
        entries = {e.name: e for e in self.mapping(node, key)}
        takes = f"takes: {', '.join(allowed)}" if allowed else "takes no options"
        for entry in entries.values():
            if entry.name not in allowed:
                raise self.error(
                    "unknown-option",
                    f"unknown option {entry.name!r}{suggest(entry.name, allowed)}; "
                    f"{what or key} {takes}",
                    entry.key_node,
                    key,
                    entry.name,
                )
        for name in required:
            if name not in entries:
                raise self.error(
                    "missing-option",
                    f"{what or key} needs {name}: (it takes: {', '.join(allowed)})",
                    node,
                    key,
                )
        return entries

    def text(self, node: Node, key: str, *, numeric: bool = False) -> str:
        """A non-empty string; with ``numeric``, digits are kept exactly as written."""
        if isinstance(node, ScalarNode) and (
            node.tag == _STR or (numeric and node.tag in _NUMERIC)
        ):
            text = str(node.value).strip()
            if text:
                return text
            raise self.error("bad-value", "expected a value, got an empty string", node, key, "")
        raise self.wrong_type("a number" if numeric else "a string", node, key)

    def texts(self, node: Node, key: str, *, numeric: bool = False) -> list[tuple[str, Node]]:
        """One value or a non-empty list of them, each with its node."""
        if isinstance(node, SequenceNode):
            if not node.value:
                raise self.error("bad-value", "expected at least one value, got []", node, key, [])
            return [(self.text(item, key, numeric=numeric), item) for item in node.value]
        return [(self.text(node, key, numeric=numeric), node)]

    def boolean(self, node: Node, key: str) -> bool:
        value = self.value(node, key)
        if isinstance(node, ScalarNode) and isinstance(value, bool):
            return value
        raise self.wrong_type("true or false", node, key)

    def integer(self, node: Node, key: str, minimum: int = 0) -> int:
        value = self.value(node, key)
        if (
            not isinstance(node, ScalarNode)
            or isinstance(value, bool)
            or not isinstance(value, int)
        ):
            raise self.wrong_type("a whole number", node, key)
        if value < minimum:
            raise self.error(
                "bad-value", f"expected a number >= {minimum}, got {value}", node, key, value
            )
        return value

    def sequence(self, node: Node, key: str, expected: str = "a list") -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.wrong_type(expected, node, key)
        return list(node.value)
