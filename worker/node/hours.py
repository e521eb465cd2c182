"""Weekly opening hours: a tiny pure format and its check.

Format: ``;``-separated windows, each ``<days> <HH:MM>-<HH:MM>``, where days
are ``mon``..``sun``, a range ``mon-fri`` or a list ``sat,sun``. Example:
``mon-fri 09:00-17:30; sat 10:00-13:00``. An empty string means always open.
Times are wall-clock times in the configured time zone, so daylight-saving
changes move with the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    """An opening-hours string is malformed; the message names the bad part."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        return moment.weekday() in self.days and self.start <= moment.time() < self.end


def _day(text: str, where: str) -> int:
    try:
        return DAYS.index(text)
    except ValueError:
        raise HoursError(
            f"{where}: unknown day {text!r}, expected one of {', '.join(DAYS)}"
        ) from None


def _days(text: str, where: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip().lower()
        if "-" in part:
            first, last = (_day(p.strip(), where) for p in part.split("-", 1))
            if last < first:
                raise HoursError(f"{where}: day range {part!r} runs backwards")
            days.update(range(first, last + 1))
        else:
            days.add(_day(part, where))
    return frozenset(days)


def _time(text: str, where: str) -> time:
    try:
        hours, minutes = text.split(":")
        if hours == "24" and minutes == "00":
            return time.max
        return time(int(hours), int(minutes))
    except ValueError:
        raise HoursError(f"{where}: expected a time HH:MM, got {text!r}") from None


def parse_weekly_hours(text: str) -> tuple[Window, ...]:
    windows: list[Window] = []
    for index, chunk in enumerate(part.strip() for part in text.split(";")):
        if not chunk:
            continue
        where = f"window {index + 1} ({chunk!r})"
        try:
            days_text, span = chunk.rsplit(" ", 1)
            start_text, end_text = span.split("-")
        except ValueError:
            raise HoursError(
                f"{where}: expected '<days> HH:MM-HH:MM', e.g. 'mon-fri 09:00-17:00'"
            ) from None
        start, end = _time(start_text.strip(), where), _time(end_text.strip(), where)
        if end <= start:
            raise HoursError(f"{where}: closes at {end_text} before it opens at {start_text}")
        windows.append(Window(_days(days_text, where), start, end))
    return tuple(windows)


def is_open(windows: tuple[Window, ...], now: datetime, zone: str) -> bool:
    """Whether ``now`` (timezone-aware) falls in any window, read in ``zone``."""
    if not windows:
        return True
    local = now.astimezone(ZoneInfo(zone))
    return any(window.contains(local) for window in windows)
