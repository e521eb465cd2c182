"""Each condition, evaluated purely with an injected clock and load."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.rules.util import IDLE, decide, rules, utc
from worker.node.decide import Action, Load
from worker.rules import RuleSet


def when(tmp_path: Path, condition: str, **files: str) -> RuleSet:
    """A one-rule file: decline when ``condition`` holds, else answer (the default)."""
    body = "\n".join("      " + line for line in condition.strip().splitlines())
    header = 'timezone: America/Montreal\ndefault_country: "1"\nrules:\n  - when:\n'
    return rules(tmp_path, f"{header}{body}\n    decline: {{}}\n", **files)


def declined(ruleset: RuleSet, **call: Any) -> bool:
    decision = decide(ruleset, **call)
    assert decision.action in (Action.DECLINE, Action.ANSWER)
    return decision.action is Action.DECLINE


def test_extension_one_or_a_list(tmp_path: Path) -> None:
    one = when(tmp_path, "extension: 1000")
    assert declined(one, extension="1000")
    assert not declined(one, extension="1001")
    several = when(tmp_path, 'extension: ["1000", 1001]')
    assert declined(several, extension="1001")
    assert not declined(several, extension="1002")


def test_extension_keeps_leading_zeros(tmp_path: Path) -> None:
    ruleset = when(tmp_path, "extension: 0123")  # YAML 1.1 would read octal 83
    assert declined(ruleset, extension="0123")
    assert not declined(ruleset, extension="83")


def test_caller_exact_after_normalisation(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'caller: ["(514) 555-0000", "+33 1 23 45 67 89"]')
    assert declined(ruleset, caller="+15145550000")
    assert declined(ruleset, caller="514.555.0000")  # the caller is normalised too
    assert declined(ruleset, caller="tel:+33123456789")
    assert not declined(ruleset, caller="+15145550001")
    assert not declined(ruleset, caller="anonymous")


def test_caller_prefix(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'caller_prefix: ["514", "+33 6"]')
    assert declined(ruleset, caller="+15145550000")
    assert declined(ruleset, caller="+33612345678")
    assert not declined(ruleset, caller="+14385550000")
    assert not declined(ruleset, caller="+33123456789")


def test_caller_pattern_is_a_glob_on_the_e164_number(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'caller_pattern: ["+1514555????", "+1[45]38*"]')
    assert declined(ruleset, caller="514 555 1234")
    assert declined(ruleset, caller="+14385550000")
    assert not declined(ruleset, caller="+15145551234567")
    assert not declined(ruleset, caller="+13385550000")
    catch_all = when(tmp_path, 'caller_pattern: "*"')
    assert declined(catch_all, caller="+15145550000")
    assert not declined(catch_all, caller="")  # caller conditions never match anonymous


def test_caller_regex_matches_the_whole_number(tmp_path: Path) -> None:
    ruleset = when(tmp_path, r"caller_regex: '\+1(514|438)555\d{4}'")
    assert declined(ruleset, caller="+14385550000")
    assert not declined(ruleset, caller="+15145550000999")
    assert not declined(ruleset, caller="+16135550000")


def test_caller_in_list_files(tmp_path: Path) -> None:
    blocklist = "# spam\n+1 514 555 0142  # robocalls\n(438) 555-0177\n"
    more = "+33 1 99 00 12 34\n"
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "more.txt").write_text(more)
    ruleset = when(
        tmp_path, "caller_in_list: [blocklist.txt, lists/more.txt]", blocklist__txt=blocklist
    )
    assert declined(ruleset, caller="5145550142")
    assert declined(ruleset, caller="+14385550177")
    assert declined(ruleset, caller="+33199001234")
    assert not declined(ruleset, caller="+15145550000")
    assert not declined(ruleset, caller="anonymous")


def test_allowlist_through_not(tmp_path: Path) -> None:
    ruleset = when(tmp_path, "not:\n  caller_in_list: allow.txt", allow__txt="+15145550000\n1009\n")
    assert not declined(ruleset, caller="+15145550000")
    assert not declined(ruleset, caller="1009")  # an internal extension
    assert declined(ruleset, caller="+15145550001")
    assert declined(ruleset, caller="")


@pytest.mark.parametrize("caller", ["", "anonymous", "Restricted", "UNKNOWN", "private"])
def test_anonymous(tmp_path: Path, caller: str) -> None:
    assert declined(when(tmp_path, "anonymous: true"), caller=caller)
    assert not declined(when(tmp_path, "anonymous: false"), caller=caller)


def test_not_anonymous(tmp_path: Path) -> None:
    assert not declined(when(tmp_path, "anonymous: true"), caller="+15145550000")
    assert declined(when(tmp_path, "anonymous: false"), caller="+15145550000")


def test_hours_in_the_named_zone(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'hours: {timezone: Europe/Paris, open: "mon-fri 09:00-17:00"}')
    assert declined(ruleset, now=utc(2026, 11, 26, 8, 0))  # 09:00 in Paris (CET)
    assert not declined(ruleset, now=utc(2026, 11, 26, 7, 59))  # 08:59
    assert not declined(ruleset, now=utc(2026, 11, 26, 16, 0))  # 17:00: closed
    assert not declined(ruleset, now=utc(2026, 11, 28, 10, 0))  # Saturday


def test_hours_shorthand_uses_the_file_time_zone(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'hours: "mon-fri 09:00-17:00; sat 10:00-13:00"')
    assert declined(ruleset, now=utc(2026, 11, 26, 14, 0))  # 09:00 in Montreal (EST)
    assert not declined(ruleset, now=utc(2026, 11, 26, 13, 59))
    assert declined(ruleset, now=utc(2026, 11, 28, 15, 0))  # Saturday 10:00
    assert not declined(ruleset, now=utc(2026, 11, 28, 18, 0))  # Saturday 13:00


def test_closed_is_not_hours(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'not:\n  hours: "mon-fri 09:00-17:00"')
    assert declined(ruleset, now=utc(2026, 11, 26, 23, 0))  # 18:00 in Montreal
    assert not declined(ruleset, now=utc(2026, 11, 26, 15, 0))


# Daylight-saving days: 2026-03-08 and 2026-11-01 in Montreal, 2026-03-29 and
# 2026-10-25 in Paris, all Sundays (the window is every day), and the day before.
@pytest.mark.parametrize(
    ("zone", "opens", "just_before"),
    [
        # Montreal springs forward at 02:00: 09:00 EDT is 13:00 UTC (14:00 the day before).
        ("America/Montreal", utc(2026, 3, 8, 13, 0), utc(2026, 3, 8, 12, 59)),
        ("America/Montreal", utc(2026, 3, 7, 14, 0), utc(2026, 3, 7, 13, 59)),
        # Montreal falls back at 02:00: 09:00 EST is 14:00 UTC (13:00 the day before).
        ("America/Montreal", utc(2026, 11, 1, 14, 0), utc(2026, 11, 1, 13, 59)),
        ("America/Montreal", utc(2026, 10, 31, 13, 0), utc(2026, 10, 31, 12, 59)),
        # Paris springs forward at 02:00 CET: 09:00 CEST is 07:00 UTC (08:00 the day before).
        ("Europe/Paris", utc(2026, 3, 29, 7, 0), utc(2026, 3, 29, 6, 59)),
        ("Europe/Paris", utc(2026, 3, 28, 8, 0), utc(2026, 3, 28, 7, 59)),
        # Paris falls back at 03:00 CEST: 09:00 CET is 08:00 UTC (07:00 the day before).
        ("Europe/Paris", utc(2026, 10, 25, 8, 0), utc(2026, 10, 25, 7, 59)),
        ("Europe/Paris", utc(2026, 10, 24, 7, 0), utc(2026, 10, 24, 6, 59)),
    ],
)
def test_a_0900_opening_on_daylight_saving_days(
    tmp_path: Path, zone: str, opens: datetime, just_before: datetime
) -> None:
    ruleset = when(tmp_path, f'hours: {{timezone: {zone}, open: "mon-sun 09:00-17:00"}}')
    assert declined(ruleset, now=opens)
    assert not declined(ruleset, now=just_before)


def test_the_skipped_and_repeated_hours(tmp_path: Path) -> None:
    skipped = when(tmp_path, 'hours: "sun 02:00-03:00"')
    # 2026-03-08 in Montreal: 01:59 EST is followed by 03:00 EDT; 02:xx never happens.
    assert not declined(skipped, now=utc(2026, 3, 8, 6, 59))  # 01:59 EST
    assert not declined(skipped, now=utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    repeated = when(tmp_path, 'hours: "sun 01:00-02:00"')
    # 2026-11-01 in Montreal: 01:30 happens twice, at 05:30 UTC (EDT) and 06:30 UTC (EST).
    assert declined(repeated, now=utc(2026, 11, 1, 5, 30))
    assert declined(repeated, now=utc(2026, 11, 1, 6, 30))
    assert not declined(repeated, now=utc(2026, 11, 1, 7, 0))  # 02:00 EST


def test_holiday_is_the_date_in_the_rule_zone(tmp_path: Path) -> None:
    ruleset = when(tmp_path, "holiday: [2026-12-25, 2027-01-01]")
    # 2026-12-26 03:00 UTC is still Christmas evening (22:00) in Montreal.
    assert declined(ruleset, now=utc(2026, 12, 26, 3, 0))
    assert not declined(ruleset, now=utc(2026, 12, 26, 5, 0))  # 00:00 on the 26th
    # 2026-12-25 04:00 UTC is still 23:00 on the 24th in Montreal.
    assert not declined(ruleset, now=utc(2026, 12, 25, 4, 0))
    assert declined(ruleset, now=utc(2026, 12, 25, 5, 0))
    assert declined(ruleset, now=utc(2027, 1, 1, 12, 0))
    paris = when(tmp_path, "holiday: {timezone: Europe/Paris, dates: [2026-12-25]}")
    assert declined(paris, now=utc(2026, 12, 24, 23, 30))  # 00:30 on the 25th in Paris
    assert not declined(paris, now=utc(2026, 12, 25, 23, 30))  # 00:30 on the 26th


def test_holiday_file_and_single_date(tmp_path: Path) -> None:
    holidays = "# Quebec, 2026\n2026-06-24  Fete nationale\n\n2026-07-01 # Canada Day\n"
    ruleset = when(
        tmp_path,
        "holiday: {file: holidays.txt, dates: ['2026-09-07']}",
        holidays__txt=holidays,
    )
    assert declined(ruleset, now=utc(2026, 6, 24, 16, 0))
    assert declined(ruleset, now=utc(2026, 7, 1, 16, 0))
    assert declined(ruleset, now=utc(2026, 9, 7, 16, 0))
    assert not declined(ruleset, now=utc(2026, 7, 2, 16, 0))
    single = when(tmp_path, "holiday: 2026-12-25")
    assert declined(single, now=utc(2026, 12, 25, 16, 0))


def test_node_full(tmp_path: Path) -> None:
    full = Load(live_calls=5, max_live_calls=5, loop_lag_ms=1.0, max_loop_lag_ms=50.0)
    lagging = Load(live_calls=1, max_live_calls=5, loop_lag_ms=90.0, max_loop_lag_ms=50.0)
    idle_slow_machine = Load(live_calls=0, max_live_calls=5, loop_lag_ms=90.0, max_loop_lag_ms=50.0)
    draining = Load(0, 5, 1.0, 50.0, draining=True)
    ruleset = when(tmp_path, "node_full: true")
    assert declined(ruleset, load=full)
    assert declined(ruleset, load=lagging)
    assert not declined(ruleset, load=idle_slow_machine)
    assert declined(ruleset, load=draining)
    assert not declined(ruleset, load=IDLE)
    assert declined(when(tmp_path, "node_full: false"), load=IDLE)
    assert not declined(when(tmp_path, "node_full: false"), load=full)


def test_more_than_n_live_calls(tmp_path: Path) -> None:
    ruleset = when(tmp_path, "live_calls_over: 3")
    loads = [Load(n, 10, 1.0, 50.0) for n in range(6)]
    assert [declined(ruleset, load=load) for load in loads] == [False] * 4 + [True] * 2


def test_all_conditions_of_a_rule_must_hold(tmp_path: Path) -> None:
    ruleset = when(tmp_path, 'extension: "1000"\ncaller_prefix: "+1514"\nanonymous: false')
    assert declined(ruleset, extension="1000", caller="+15145550000")
    assert not declined(ruleset, extension="1001", caller="+15145550000")
    assert not declined(ruleset, extension="1000", caller="+14385550000")


def test_any_and_all_and_not(tmp_path: Path) -> None:
    either = when(tmp_path, 'any:\n  - extension: "1000"\n  - caller_prefix: "+33"')
    assert declined(either, extension="1000", caller="+15145550000")
    assert declined(either, extension="2000", caller="+33123456789")
    assert not declined(either, extension="2000", caller="+15145550000")
    neither = when(tmp_path, 'all:\n  - not: {extension: "1000"}\n  - not: {caller_prefix: "+33"}')
    assert declined(neither, extension="2000", caller="+15145550000")
    assert not declined(neither, extension="1000", caller="+15145550000")
    assert not declined(neither, extension="2000", caller="+33123456789")
    # not: with several conditions is "not (a and b)".
    nand = when(tmp_path, 'not: {extension: "1000", caller_prefix: "+1514"}')
    assert not declined(nand, extension="1000", caller="+15145550000")
    assert declined(nand, extension="1000", caller="+14385550000")
