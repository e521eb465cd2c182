"""Flow files' reads of a composed YAML node tree, so every mistake can name its line.

The shared reader (:mod:`worker.yamlfile`) reads mappings, text, whole numbers
and booleans; :class:`NodeReader` raises :class:`~worker.flows.errors.FlowError`
(kinds ``unknown-key`` and ``missing-key`` for options) and adds what flow
files need: names, template text and numbers of seconds. Numbers, times and
dates are read as written where text is expected: YAML 1.1 would read
``09:00`` as the integer 540 and ``+15145550100`` as an integer.
"""

from __future__ import annotations

import math
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from worker.flows.errors import FlowError
from worker.yamlfile import BOOL, FLOAT, INT, NULL, STR, TIMESTAMP, compose_text
from worker.yamlfile import NodeReader as FileReader


def compose(path: Path) -> Node | None:
    """The node tree of ``path``; FlowError for an unreadable file or bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError("no such file", kind="unreadable-file", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"cannot read it: {exc}", kind="unreadable-file", file=path) from None
    return compose_text(text, path, FlowError)


class NodeReader(FileReader):
    """Reads nodes of one flow file; every mistake becomes a FlowError naming ``file``."""

    ERROR = FlowError
    UNKNOWN_OPTION = "unknown-key"
    MISSING_OPTION = "missing-key"
    AS_WRITTEN = frozenset({STR, INT, FLOAT, TIMESTAMP})

    def name(self, node: Node, key: str, what: str = "a name") -> str:
        """A name as written: ``yes``, ``no``, ``0800`` stay text (YAML 1.1 would convert them)."""
        if isinstance(node, ScalarNode) and node.tag in (*self.AS_WRITTEN, BOOL):
            text = str(node.value).strip()
            if text:
                return text
        raise self.wrong_type(what, node, key)

    def template_text(self, node: Node, key: str) -> str:
        """Text for a ``${...}`` template: strings, numbers and booleans as written."""
        if isinstance(node, ScalarNode) and node.tag != NULL:
            return str(node.value)
        raise self.wrong_type("a value (text or a number)", node, key)

    def number(
        self, node: Node, key: str, *, minimum: float = 0.0, maximum: float = math.inf
    ) -> float:
        """A number of seconds (or similar) with minimum < value <= maximum."""
        value = self.value(node)
        if (
            not isinstance(node, ScalarNode)
            or node.tag not in (INT, FLOAT)
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


__all__ = ["NodeReader", "compose"]
