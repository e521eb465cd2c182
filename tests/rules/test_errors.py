"""Bad files: each kind of mistake gives its own error naming file, line, key and value."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.rules.util import write
from worker.rules import RulesError, load_rules
from worker.rules.errors import KINDS


@dataclass(frozen=True)
class Bad:
    text: str
    kind: str
    line: int | None
    key: str
    value: object
    says: str
    files: dict[str, str] = field(default_factory=dict)
    file: str = "rules.yaml"  # the file the error names


def rule(body: str, head: str = "") -> str:
    """A rules file with one rule whose YAML body is ``body`` (lines 3 on)."""
    indented = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return f"{head}rules:\n  - name: r\n{indented}\n"


ZONE = "timezone: America/Montreal\n"

CASES: dict[str, Bad] = {
    "yaml syntax": Bad(
        "rules:\n  - when: {extension: '1'\n    decline: {}\n",
        "yaml-syntax",
        3,
        "",
        None,
        "not valid YAML",
    ),
    "empty file": Bad("# nothing yet\n", "empty-rules", None, "", None, "the file is empty"),
    "empty rules list": Bad("rules: []\n", "empty-rules", 1, "rules", [], "add at least one"),
    "rules with nothing": Bad(
        "rules:\n", "empty-rules", 1, "rules", None, "rules: is empty: add at least one rule"
    ),
    "no rules key": Bad(ZONE, "empty-rules", 1, "rules", None, "no rules: list"),
    "top level is a list": Bad(
        "- decline: {}\n",
        "wrong-type",
        1,
        "",
        [],
        "expected a mapping with a rules: list, got a list",
    ),
    "unknown top-level key": Bad(
        "rule:\n  - decline: {}\n", "unknown-key", 1, "rule", "rule", "did you mean 'rules'?"
    ),
    "rules is a mapping": Bad(
        "rules: {decline: {}}\n",
        "wrong-type",
        1,
        "rules",
        {},
        "expected a list of rules, got a mapping",
    ),
    "rule is a string": Bad(
        "rules:\n  - decline\n", "wrong-type", 2, "rules[1]", "decline", "expected a rule"
    ),
    "duplicate key": Bad(
        rule("when: {extension: '1'}\nwhen: {extension: '2'}\ndecline: {}"),
        "duplicate-key",
        4,
        "rules[1]",
        "when",
        "appears twice (first on line 3)",
    ),
    "unknown condition": Bad(
        rule("when: {extention: '1'}\ndecline: {}"),
        "unknown-condition",
        3,
        "rules[1].when",
        "extention",
        "did you mean 'extension'?",
    ),
    "action under when": Bad(
        rule("when:\n  decline: {}\n  extension: '1'"),
        "unknown-condition",
        4,
        "rules[1].when",
        "decline",
        "actions go beside when:",
    ),
    "unknown action": Bad(
        rule("when: {extension: '1'}\nvoicemial: {}"),
        "unknown-action",
        4,
        "rules[1]",
        "voicemial",
        "did you mean 'voicemail'?",
    ),
    "condition beside when": Bad(
        rule("anonymous: true\ndecline: {}"),
        "unknown-action",
        3,
        "rules[1]",
        "anonymous",
        "conditions go under when:",
    ),
    "two actions": Bad(
        rule("when: {extension: '1'}\nvoicemail: {}\ndecline: {}"),
        "two-actions",
        5,
        "rules[1]",
        ["voicemail", "decline"],
        "has 2 actions (voicemail, decline): keep one",
    ),
    "no action": Bad(
        rule("when: {extension: '1'}"),
        "missing-action",
        2,
        "rules[1]",
        None,
        "rule 'r' has no action",
    ),
    "empty when": Bad(
        rule("when:\ndecline: {}"),
        "bad-value",
        3,
        "rules[1].when",
        None,
        "remove when: to match every call",
    ),
    "bad time zone": Bad(
        rule("when:\n  hours: {timezone: America/Montrael, open: 'mon 09:00-10:00'}\ndecline: {}"),
        "bad-timezone",
        4,
        "rules[1].when.hours.timezone",
        "America/Montrael",
        "unknown time zone 'America/Montrael'",
    ),
    "bad file time zone": Bad(
        "timezone: EST5EDT6\n" + rule("decline: {}"),
        "bad-timezone",
        1,
        "timezone",
        "EST5EDT6",
        "expected an IANA name",
    ),
    "bad holiday time zone": Bad(
        rule("when:\n  holiday: {timezone: Paris, dates: [2026-12-25]}\ndecline: {}"),
        "bad-timezone",
        4,
        "rules[1].when.holiday.timezone",
        "Paris",
        "unknown time zone 'Paris'",
    ),
    "no time zone at all": Bad(
        rule("when:\n  hours: 'mon 09:00-10:00'\ndecline: {}"),
        "missing-option",
        4,
        "rules[1].when.hours",
        None,
        "needs a time zone",
    ),
    "bad window": Bad(
        rule("when:\n  hours: 'mon-fri 9-17'\ndecline: {}", ZONE),
        "bad-window",
        5,
        "rules[1].when.hours",
        "mon-fri 9-17",
        "expected a time HH:MM, got '9'",
    ),
    "backwards window": Bad(
        rule("when:\n  hours: {open: 'mon 17:00-09:00'}\ndecline: {}", ZONE),
        "bad-window",
        5,
        "rules[1].when.hours",
        "mon 17:00-09:00",
        "before it opens",
    ),
    "bad day": Bad(
        rule("when:\n  hours: 'mon-fir 09:00-17:00'\ndecline: {}", ZONE),
        "bad-window",
        5,
        "rules[1].when.hours",
        "mon-fir 09:00-17:00",
        "unknown day 'fir'",
    ),
    "empty window": Bad(
        rule("when:\n  hours: ' ; '\ndecline: {}", ZONE),
        "bad-window",
        5,
        "rules[1].when.hours",
        ";",
        "holds no window",
    ),
    "hours without open": Bad(
        rule("when:\n  hours: {timezone: UTC}\ndecline: {}"),
        "missing-option",
        4,
        "rules[1].when.hours",
        None,
        "needs open:",
    ),
    "bad date": Bad(
        rule("when:\n  holiday: [2026-12-25, 2026-02-30]\ndecline: {}", ZONE),
        "bad-date",
        5,
        "rules[1].when.holiday",
        "2026-02-30",
        "'2026-02-30' is not a date",
    ),
    "date in the wrong form": Bad(
        rule("when:\n  holiday: [25/12/2026]\ndecline: {}", ZONE),
        "bad-date",
        5,
        "rules[1].when.holiday",
        "25/12/2026",
        "expected YYYY-MM-DD",
    ),
    "bad date in a holidays file": Bad(
        rule("when:\n  holiday: {file: holidays.txt}\ndecline: {}", ZONE),
        "bad-date",
        3,
        "rules[1].when.holiday",
        "2026-13-01",
        "'2026-13-01' is not a date",
        files={"holidays.txt": "# 2026\n2026-12-25\n2026-13-01 New Year?\n"},
        file="holidays.txt",
    ),
    "missing blocklist": Bad(
        rule("when:\n  caller_in_list: [lists/blocked.txt]\ndecline: {}"),
        "missing-file",
        4,
        "rules[1].when.caller_in_list",
        "lists/blocked.txt",
        "number list 'lists/blocked.txt' not found",
    ),
    "missing holidays file": Bad(
        rule("when:\n  holiday: {file: nope.txt}\ndecline: {}", ZONE),
        "missing-file",
        5,
        "rules[1].when.holiday.file",
        "nope.txt",
        "holidays file 'nope.txt' not found",
    ),
    "bad number": Bad(
        rule("when:\n  caller: ['+15145550000', 555-0000]\ndecline: {}", 'default_country: "1"\n'),
        "bad-number",
        5,
        "rules[1].when.caller",
        "555-0000",
        "not a North American number",
    ),
    "national number without a country": Bad(
        rule("when:\n  caller: 514 555 0000\ndecline: {}"),
        "bad-number",
        4,
        "rules[1].when.caller",
        "514 555 0000",
        "no default_country",
    ),
    "bad number in a list file": Bad(
        rule("when:\n  caller_in_list: blocked.txt\ndecline: {}"),
        "bad-number",
        2,
        "rules[1].when.caller_in_list",
        "(514) 555-0000",
        "not in E.164 form",
        files={"blocked.txt": "+15145550142\n(514) 555-0000  # national, no default_country\n"},
        file="blocked.txt",
    ),
    "bad forward number": Bad(
        rule("forward: {to: '+1 514'}"),
        "bad-number",
        3,
        "rules[1].forward.to",
        "+1 514",
        "E.164 is + and 7 to 15",
    ),
    "forward without to": Bad(
        rule("forward: {}"), "missing-option", 3, "rules[1].forward", None, "forward needs to:"
    ),
    "bad prefix": Bad(
        rule("when: {caller_prefix: '514'}\ndecline: {}"),
        "bad-number",
        3,
        "rules[1].when.caller_prefix",
        "514",
        "or set default_country",
    ),
    "bad default country": Bad(
        'default_country: "01"\n' + rule("decline: {}"),
        "bad-value",
        1,
        "default_country",
        "01",
        "country calling code",
    ),
    "bad glob": Bad(
        rule("when: {caller_pattern: '514 555*'}\ndecline: {}"),
        "bad-pattern",
        3,
        "rules[1].when.caller_pattern",
        "514 555*",
        "can never match",
    ),
    "bad regex": Bad(
        rule("when: {caller_regex: '+1(514'}\ndecline: {}"),
        "bad-pattern",
        3,
        "rules[1].when.caller_regex",
        "+1(514",
        "bad regular expression",
    ),
    "unreachable rule": Bad(
        "rules:\n  - name: everyone\n    answer: {flow: main}\n  - name: late\n"
        "    when: {anonymous: true}\n    decline: {}\n",
        "unreachable-rule",
        4,
        "rules[2]",
        "late",
        "rule 'late' can never match: rule 'everyone' (line 2) has no conditions",
    ),
    "duplicate rule name": Bad(
        "rules:\n  - name: a\n    when: {anonymous: true}\n    decline: {}\n"
        "  - name: a\n    ignore: {}\n",
        "duplicate-name",
        5,
        "rules[2].name",
        "a",
        "rule name 'a' is already used (line 2)",
    ),
    "extension of the wrong type": Bad(
        rule("when: {extension: {number: 1}}\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when.extension",
        {},
        "expected a number, got a mapping",
    ),
    "boolean of the wrong type": Bad(
        rule("when: {anonymous: maybe}\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when.anonymous",
        "maybe",
        "expected true or false, got 'maybe'",
    ),
    "count of the wrong type": Bad(
        rule("when: {live_calls_over: ten}\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when.live_calls_over",
        "ten",
        "expected a whole number",
    ),
    "count that is a boolean": Bad(
        rule("when: {live_calls_over: true}\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when.live_calls_over",
        True,
        "expected a whole number, got True",
    ),
    "negative count": Bad(
        rule("when: {live_calls_over: -1}\ndecline: {}"),
        "bad-value",
        3,
        "rules[1].when.live_calls_over",
        -1,
        "expected a number >= 0",
    ),
    "name of the wrong type": Bad(
        rule("decline: {}").replace("name: r", "name: [r]"),
        "wrong-type",
        2,
        "rules[1].name",
        [],
        "expected a string",
    ),
    "when is a list": Bad(
        rule("when: [anonymous: true]\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when",
        [],
        "expected a mapping of conditions, got a list",
    ),
    "empty not": Bad(
        rule("when: {not: {}}\ndecline: {}"),
        "bad-value",
        3,
        "rules[1].when.not",
        None,
        "at least one condition",
    ),
    "empty any": Bad(
        rule("when: {any: []}\ndecline: {}"),
        "bad-value",
        3,
        "rules[1].when.any",
        None,
        "at least one group",
    ),
    "unknown answer option": Bad(
        rule("answer: {flw: main}"),
        "unknown-option",
        3,
        "rules[1].answer",
        "flw",
        "did you mean 'flow'?",
    ),
    "voicemail takes no options": Bad(
        rule("voicemail: {greeting: hello}"),
        "unknown-option",
        3,
        "rules[1].voicemail",
        "greeting",
        "voicemail takes no options",
    ),
    "voicemail false": Bad(
        rule("voicemail: false"),
        "bad-value",
        3,
        "rules[1].voicemail",
        False,
        "voicemail takes no value",
    ),
    "bad flow name": Bad(
        rule("answer: {flow: main menu}"),
        "bad-value",
        3,
        "rules[1].answer.flow",
        "main menu",
        "flow name 'main menu'",
    ),
    "default with two actions": Bad(
        "default: {voicemail: {}, decline: {}}\n" + rule("decline: {}"),
        "two-actions",
        1,
        "default",
        ["voicemail", "decline"],
        "exactly one action, got 2",
    ),
    "default unknown action": Bad(
        "default: {hangup: {}}\n" + rule("decline: {}"),
        "unknown-action",
        1,
        "default",
        "hangup",
        "unknown action 'hangup'",
    ),
    "foreign YAML tag": Bad(
        rule("when: {extension: !!python/name:os.system x}\ndecline: {}"),
        "wrong-type",
        3,
        "rules[1].when.extension",
        "x",
        "unsupported YAML tag",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_mistake_gets_its_own_error(tmp_path: Path, case: Bad) -> None:
    path = write(tmp_path, case.text)
    for name, content in case.files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    error = caught.value
    shown = str(error)
    assert (error.kind, error.line, error.key) == (case.kind, case.line, case.key), shown
    assert error.value == case.value, shown
    assert error.file == tmp_path / case.file, shown
    assert case.says in shown, shown
    where = f"{tmp_path / case.file}:{case.line}:" if case.line else f"{tmp_path / case.file}:"
    assert shown.startswith(where), shown


def test_every_kind_is_covered() -> None:
    covered = {case.kind for case in CASES.values()} | {"unreadable-file"}
    assert covered == KINDS


def test_a_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "nope.yaml")
    assert caught.value.kind == "missing-file"
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}:")


def test_an_unreadable_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - decline: {}  # caf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.kind == "unreadable-file"
    assert "cannot read rules file" in str(caught.value)
