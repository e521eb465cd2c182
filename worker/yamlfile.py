"""YAML files validated on load, whose mistakes name the file, the line, the key and the value.

Rules files (:mod:`worker.rules`) and flow files (:mod:`worker.flows`) are read
the same way, and this module is what they share:

- :class:`FileError`, the base of ``RulesError`` and ``FlowError``: ``.file``,
  ``.line`` (1-based, when known), ``.key`` (a path such as ``rules[3].when``),
  ``.value`` (the bad value) and ``.kind`` (a short stable code from the
  subclass's ``KINDS``); shown as ``file:line: key: message``;
- :func:`compose_text`, YAML text to a node tree that keeps every node's line
  (``yaml.compose``), a syntax error raised as kind ``yaml-syntax``;
- :class:`NodeReader`, typed reads of those nodes (mappings that refuse
  duplicate keys, which YAML would silently collapse; text, booleans, whole
  numbers, "one or a list"), each mistake raised as the subclass's error.
- :func:`stamp`, which changes when any of a file's sources changes, for
  reloading on change.

What differs between the two formats is set by each package's subclass: the
error class, the kinds for unknown and missing options, which scalars count
as written for ``numeric`` text, and whether a tag SafeLoader cannot build is
a mistake.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR = "tag:yaml.org,2002:str"
NULL = "tag:yaml.org,2002:null"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
TIMESTAMP = "tag:yaml.org,2002:timestamp"

READER_KINDS = frozenset({"yaml-syntax", "wrong-type", "duplicate-key", "bad-value"})
"""The kinds :func:`compose_text` and :class:`NodeReader` raise themselves."""


class FileError(ValueError):
    """A file is wrong; the message names the file, line or key, and the value.

    Subclasses set ``KINDS``, the codes ``kind`` may take; it must hold
    :data:`READER_KINDS`.
    """

    KINDS: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        missing = READER_KINDS - cls.KINDS
        if missing:
            raise TypeError(f"{cls.__name__}.KINDS lacks {', '.join(sorted(missing))}")

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        file: Path | str,
        line: int | None = None,
        key: str = "",
        value: object = None,
    ) -> None:
        assert kind in self.KINDS, kind
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.file = Path(file)
        self.line = line
        self.key = key
        self.value = value

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a mapping, with both nodes (for line numbers)."""

    name: str
    key_node: Node
    node: Node


def line_of(node: Node | None) -> int | None:
    """The 1-based line ``node`` starts on, when known."""
    mark = node.start_mark if node is not None else None
    return mark.line + 1 if mark is not None else None


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def compose_text(text: str, file: Path, error: type[FileError]) -> Node | None:
    """The node tree of ``text`` (None when it holds no document); ``error`` if not YAML."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise error(
            f"not valid YAML: {problem}",
            kind="yaml-syntax",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", kind="yaml-syntax", file=file) from None


Stamp = tuple[tuple[str, int, int], ...]
"""(path, mtime_ns, size) of each file; (path, -1, -1) for one that is missing."""


def stamp(paths: Iterable[Path]) -> Stamp:
    """The :data:`Stamp` of ``paths`` now: it changes when any of the files changes."""
    stamps: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            info = path.stat()
            stamps.append((str(path), info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append((str(path), -1, -1))
    return tuple(stamps)


class NodeReader:
    """Typed reads of the nodes of one file; every mistake becomes an ``ERROR`` naming it."""

    ERROR: ClassVar[type[FileError]]
    """The error class of the file format (set by each subclass)."""
    UNKNOWN_OPTION: ClassVar[str] = "unknown-option"
    MISSING_OPTION: ClassVar[str] = "missing-option"
    AS_WRITTEN: ClassVar[frozenset[str]] = frozenset({STR, INT, FLOAT})
    """Tags whose text ``text(numeric=True)`` keeps as written (YAML 1.1 would read
    ``0123`` as octal 83 and ``+15145550000`` as an integer)."""
    STRICT_TAGS: ClassVar[bool] = False
    """Whether a tag SafeLoader cannot build (``!!python/...``) is a mistake of its own
    (``unsupported YAML tag``) rather than read as its text."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._constructor = SafeConstructor()

    def error(
        self, kind: str, message: str, node: Node | None, key: str, value: object = None
    ) -> FileError:
        return self.ERROR(
            message, kind=kind, file=self.file, line=line_of(node), key=key, value=value
        )

    def value(self, node: Node, key: str = "") -> object:
        """The Python value of a node (scalars constructed; a bad date stays its text)."""
        if isinstance(node, MappingNode):
            return {}
        if isinstance(node, SequenceNode):
            return []
        try:
            return self._constructor.construct_object(node)
        except ValueError:
            return str(node.value)  # e.g. 2026-02-30, which YAML would read as a date
        except yaml.YAMLError:
            if self.STRICT_TAGS:
                raise self.error(
                    "wrong-type", f"unsupported YAML tag {node.tag!r}", node, key, node.value
                ) from None
            return str(node.value)

    def describe(self, node: Node, key: str = "") -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        if node.tag == NULL:
            return "nothing"
        return repr(self.value(node, key))

    def wrong_type(self, expected: str, node: Node, key: str) -> FileError:
        got = self.describe(node, key)
        return self.error(
            "wrong-type", f"expected {expected}, got {got}", node, key, self.value(node, key)
        )

    @staticmethod
    def is_null(node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == NULL

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

    def refuse_unknown(
        self,
        entries: Iterable[Entry],
        known: Collection[str],
        *,
        kind: str,
        what: str,
        then: str,
        key: str | None = None,
    ) -> None:
        """Raise ``kind`` for the first entry not in ``known``.

        The message is ``unknown <what> 'name' (did you mean ...?); <then>``;
        the error's key is ``key``, or the entry's own name when there is none
        (a top-level key).
        """
        for entry in entries:
            if entry.name not in known:
                raise self.error(
                    kind,
                    f"unknown {what} {entry.name!r}{suggest(entry.name, known)}; {then}",
                    entry.key_node,
                    entry.name if key is None else key,
                    entry.name,
                )

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
        takes = f"takes: {', '.join(allowed)}" if allowed else "takes no options"
        self.refuse_unknown(
            entries.values(),
            allowed,
            kind=self.UNKNOWN_OPTION,
            what="option",
            then=f"{label} {takes}",
            key=key,
        )
        for name in required:
            if name not in entries:
                raise self.error(
                    self.MISSING_OPTION,
                    f"{label} needs {name}: (it takes: {', '.join(allowed)})",
                    node,
                    key,
                )
        return entries

    def text(self, node: Node, key: str, *, numeric: bool = False) -> str:
        """A non-empty string; with ``numeric``, the scalars of ``AS_WRITTEN`` as written."""
        if isinstance(node, ScalarNode) and (
            node.tag == STR or (numeric and node.tag in self.AS_WRITTEN)
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
        if isinstance(node, ScalarNode) and node.tag == BOOL and isinstance(value, bool):
            return value
        raise self.wrong_type("true or false", node, key)

    def integer(self, node: Node, key: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        """A whole number from ``minimum`` (to ``maximum``, when given)."""
        value = self.value(node, key)
        if (
            not isinstance(node, ScalarNode)
            or node.tag != INT
            or isinstance(value, bool)
            or not isinstance(value, int)
        ):
            raise self.wrong_type("a whole number", node, key)
        if maximum is None and value < minimum:
            raise self.error(
                "bad-value", f"expected a number >= {minimum}, got {value}", node, key, value
            )
        if maximum is not None and not minimum <= value <= maximum:
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


__all__ = [
    "READER_KINDS",
    "Entry",
    "FileError",
    "NodeReader",
    "Stamp",
    "compose_text",
    "line_of",
    "stamp",
    "suggest",
]
