"""Reading request bodies the way GoTo refuses them: every bad field named at once.

:func:`parse_json_object` turns raw bytes into a JSON object or raises a 400
``MALFORMED_REQUEST``. :class:`Fields` reads typed values by dotted path
(``clientInformation.deviceId``), collecting a :class:`Violation` (``REQUIRED``
or ``INVALID``) for each bad one; :meth:`Fields.check` raises one 400
``BAD_REQUEST`` naming them all. Missing, ``null`` and blank strings count as
missing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gotosim.errors import (
    BAD_REQUEST,
    INVALID,
    MALFORMED_REQUEST,
    REQUIRED,
    ApiError,
    Violation,
)

_MISSING = object()
_BROKEN = object()  # a parent on the path is not an object; already reported


def parse_json_object(raw: bytes, *, optional: bool = False) -> dict[str, Any]:
    """Decode a request body that must be a JSON object (empty allowed if ``optional``)."""
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, MALFORMED_REQUEST, "the request body is empty; expected a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else "cannot be decoded"
        raise ApiError(
            400, MALFORMED_REQUEST, f"the request body is not valid JSON: {detail}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            MALFORMED_REQUEST,
            f"the request body must be a JSON object, got a JSON {_kind(data)}",
        )
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Fields:
    """Typed, path-addressed reads of a JSON object that collect violations."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.violations: list[Violation] = []

    def _lookup(self, path: str) -> Any:
        node: Any = self.data
        walked: list[str] = []
        for part in path.split("."):
            if node is None:
                return _MISSING
            if not isinstance(node, dict):
                self.add(".".join(walked), INVALID)
                return _BROKEN
            walked.append(part)
            node = node.get(part, None)
        return _MISSING if node is None else node

    def add(self, path: str, constraint: str) -> None:
        violation = Violation(path, constraint)
        if violation not in self.violations:
            self.violations.append(violation)

    def invalid(self, path: str) -> None:
        self.add(path, INVALID)

    def present(self, path: str) -> bool:
        value = self._lookup(path)
        return value is not _MISSING and value is not _BROKEN

    def string(
        self,
        path: str,
        *,
        required: bool = False,
        pattern: str | None = None,
        max_length: int = 4096,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(path, REQUIRED)
            return None
        if not isinstance(value, str) or len(value) > max_length:
            self.add(path, INVALID)
            return None
        if pattern is not None and not re.fullmatch(pattern, value):
            self.add(path, INVALID)
            return None
        if choices is not None and value not in choices:
            self.add(path, INVALID)
            return None
        return value

    def boolean(self, path: str, *, required: bool = False) -> bool | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING:
            if required:
                self.add(path, REQUIRED)
            return None
        if not isinstance(value, bool):
            self.add(path, INVALID)
            return None
        return value

    def integer(
        self,
        path: str,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING:
            if required:
                self.add(path, REQUIRED)
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, INVALID)
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.add(path, INVALID)
            return None
        return value

    def number(
        self,
        path: str,
        *,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING:
            if required:
                self.add(path, REQUIRED)
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self.add(path, INVALID)
            return None
        number = float(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            self.add(path, INVALID)
            return None
        return number

    def obj(self, path: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING:
            if required:
                self.add(path, REQUIRED)
            return None
        if not isinstance(value, dict):
            self.add(path, INVALID)
            return None
        return value

    def array(
        self,
        path: str,
        *,
        required: bool = False,
        min_items: int = 0,
        max_items: int | None = None,
    ) -> list[Any] | None:
        value = self._lookup(path)
        if value is _BROKEN:
            return None
        if value is _MISSING:
            if required:
                self.add(path, REQUIRED)
            return None
        if not isinstance(value, list):
            self.add(path, INVALID)
            return None
        if len(value) < min_items:
            self.add(path, REQUIRED if not value else INVALID)
            return None
        if max_items is not None and len(value) > max_items:
            self.add(path, INVALID)
            return None
        return value

    def raw(self, path: str) -> Any:
        """The value at ``path`` untouched (``None`` when missing)."""
        value = self._lookup(path)
        return None if value is _MISSING or value is _BROKEN else value

    def check(self) -> None:
        """Raise one 400 naming every violation collected so far."""
        if not self.violations:
            return
        listed = ", ".join(f"{v.field} ({v.constraint})" for v in self.violations)
        noun = "field" if len(self.violations) == 1 else "fields"
        raise ApiError(400, BAD_REQUEST, f"invalid request: {noun} {listed}", self.violations)


def query_int(value: str | None, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """A query parameter that must be an integer in range."""
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", value) or not minimum <= int(value) <= maximum:
        raise ApiError(
            400,
            BAD_REQUEST,
            f"invalid request: {name} must be an integer from {minimum} to {maximum}",
            [Violation(name, INVALID)],
        )
    return int(value)


def paginate(
    items: list[Any], page_marker: str | None, page_size: int
) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the marker of the next page (``None`` on the last page)."""
    start = 0
    if page_marker:
        if not re.fullmatch(r"[0-9]{1,9}", page_marker) or int(page_marker) > len(items):
            raise ApiError(
                400,
                BAD_REQUEST,
                "invalid request: pageMarker is not a marker this API returned",
                [Violation("pageMarker", INVALID)],
            )
        start = int(page_marker)
    end = start + page_size
    return items[start:end], (str(end) if end < len(items) else None)
