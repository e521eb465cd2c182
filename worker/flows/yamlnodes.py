"""Typed reads of a composed YAML node tree, so every mistake can name its line.

``yaml.compose`` keeps each node's position; :class:`NodeReader` reads
mappings (refusing duplicate keys, which YAML would silently collapse), text,
numbers and booleans from those nodes and raises
:class:`~worker.flows.errors.FlowError` naming the file, the line, the key path
and the bad value. Numbers and times are read as written: YAML 1.1 would read
``09:00`` as the integer 540 and ``+15145550100`` as an integer.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.flows.errors import FlowError

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_AS_WRITTEN = frozenset({_STR, _INT, _FLOAT, "tag:yaml.org,2002:timestamp"})


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a mapping, with both nodes (for line numbers)."""

    name: str
    key_node: Node
    node: Node


def line_of(node: Node | None) -> int | None:
    mark = node.start_mark if node is not None else None
    return mark.line + 1 if mark is not None else None


def suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def compose(path: Path) -> Node | None:
    """The node tree of ``path``; FlowError for an unreadable file or bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError("no such file", kind="unreadable-file", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"cannot read it: {exc}", kind="unreadable-file", file=path) from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise FlowError(
            f"not valid YAML: {exc.problem or exc.context}",
            kind="yaml-syntax",
            file=path,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise FlowError(f"not valid YAML: {exc}", kind="yaml-syntax", file=path) from None


class NodeReader:
    """Reads nodes of one file; every mistake becomes a FlowError naming ``file``."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._constructor = SafeConstructor()

    def error(
        self, kind: str, message: str, node: Node | None, key: str, value: object = None
    ) -> FlowError:
        return FlowError(
            message, kind=kind, file=self.file, line=line_of(node), key=key, value=value
        )

    def value(self, node: Node) -> object:
        """The Python value of a node (scalars constructed; a bad date stays its text)."""
        if isinstance(node, MappingNode):
            return {}
        if isinstance(node, SequenceNode):
            return []
        try:
            return self._constructor.construct_object(node)
        except (ValueError, yaml.YAMLError):
            return str(node.value)

    def describe(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        if node.tag == _NULL:
            return "nothing"
        return repr(self.value(node))

    def wrong_type(self, expected: str, node: Node, key: str) -> FlowError:
        return self.error(
            "wrong-type",
            f"expected {expected}, got {self.describe(node)}",
            node,
            key,
            self.value(node),
        )

    @staticmethod
    def is_null(node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _NULL

    @staticmethod
    def is_scalar(node: Node) -> bool:
        return isinstance(node, ScalarNode)

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
        label = what or key
        for entry in entries.values():
            if entry.name not in allowed:
                raise self.error(
                    "unknown-key",
                    f"unknown option {entry.name!r}{suggest(entry.name, allowed)}; "
                    f"{label} takes: {', '.join(allowed)}",
                    entry.key_node,
                    key,
                    entry.name,
                )
        for name in required:
            if name not in entries:
                raise self.error(
                    "missing-key",
                    f"{label} needs {name}: (it takes: {', '.join(allowed)})",
                    node,
                    key,
                )
        return entries

    def text(self, node: Node, key: str, *, numeric: bool = False) -> str:
        """A non-empty string; with ``numeric``, numbers and times are kept as written."""
        if isinstance(node, ScalarNode) and (
            node.tag == _STR or (numeric and node.tag in _AS_WRITTEN)
        ):
            text = str(node.value).strip()
            if text:
                return text
            raise self.error("bad-value", "expected a value, got an empty string", node, key, "")
        raise self.wrong_type("a number" if numeric else "a string", node, key)

    def name(self, node: Node, key: str, what: str = "a name") -> str:
        """A name as written: ``yes``, ``no``, ``0800`` stay text (YAML 1.1 would convert them)."""
        if isinstance(node, ScalarNode) and node.tag in (*_AS_WRITTEN, _BOOL):
            text = str(node.value).strip()
            if text:
                return text
        raise self.wrong_type(what, node, key)

    def template_text(self, node: Node, key: str) -> str:
        """Text for a ``${...}`` template: strings, numbers and booleans as written."""
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            return str(node.value)
        raise self.wrong_type("a value (text or a number)", node, key)

    def texts(self, node: Node, key: str, *, numeric: bool = False) -> list[tuple[str, Node]]:
        """One value or a non-empty list of them, each with its node."""
        if isinstance(node, SequenceNode):
            if not node.value:
                raise self.error("bad-value", "expected at least one value, got []", node, key, [])
            return [(self.text(item, key, numeric=numeric), item) for item in node.value]
        return [(self.text(node, key, numeric=numeric), node)]

    def boolean(self, node: Node, key: str) -> bool:
        value = self.value(node)
        if isinstance(node, ScalarNode) and node.tag == _BOOL and isinstance(value, bool):
            return value
        raise self.wrong_type("true or false", node, key)

    def number(
        self, node: Node, key: str, *, minimum: float = 0.0, maximum: float = math.inf
    ) -> float:
        """A number of seconds (or similar) with minimum < value <= maximum."""
        value = self.value(node)
        if (
            not isinstance(node, ScalarNode)
            or node.tag not in (_INT, _FLOAT)
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.wrong_type("a number", node, key)
        if not minimum < value <= maximum:
            top = "" if maximum == math.inf else f" and at most {maximum:g}"
            raise self.error(
                "bad-value", f"expected more than {minimum:g}{top}, got {value}", node, key, value
            )
        return float(value)

    def integer(self, node: Node, key: str, *, minimum: int = 0, maximum: int = 1_000_000) -> int:
        value = self.value(node)
        if (
            not isinstance(node, ScalarNode)
            or node.tag != _INT
            or isinstance(value, bool)
            or not isinstance(value, int)
        ):
            raise self.wrong_type("a whole number", node, key)
        if not minimum <= value <= maximum:
            raise self.error(
                "bad-value",
                f"expected a whole number from {minimum} to {maximum}, got {value}",
                node,
                key,
                value,
            )
        return value

    def sequence(self, node: Node, key: str, expected: str = "a list") -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.wrong_type(expected, node, key)
        return list(node.value)


__all__ = ["Entry", "NodeReader", "compose", "line_of", "suggest"]
