"""Actions, first-match order, the default, and the example attendant's rules."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from tests.rules.util import IDLE, decide, rules, utc
from worker.node.decide import Action, CallFacts, Load
from worker.rules import DEFAULT_RULE, evaluate, load_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attendant" / "rules.yaml"


def test_each_action(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path,
        """
        default_country: "1"
        rules:
          - name: menu
            when: {extension: "1"}
            answer: {flow: main}
          - name: shorthand
            when: {extension: "2"}
            answer: sales
          - name: default flow
            when: {extension: "3"}
            answer: {}
          - name: goto voicemail
            when: {extension: "4"}
            voicemail: {}
          - name: decline
            when: {extension: "5"}
            decline:
          - name: forward
            when: {extension: "6"}
            forward: {to: "(514) 555-0100"}
          - name: forward shorthand
            when: {extension: "7"}
            forward: "1009"
          - name: ignore
            when: {extension: "8"}
            ignore: true
        """,
    )
    seen = {n: decide(ruleset, extension=str(n)) for n in range(1, 9)}
    assert (seen[1].action, seen[1].flow, seen[1].rule) == (Action.ANSWER, "main", "menu")
    assert (seen[2].action, seen[2].flow) == (Action.ANSWER, "sales")
    assert (seen[3].action, seen[3].flow) == (Action.ANSWER, "")
    assert (seen[4].action, seen[4].rule) == (Action.VOICEMAIL, "goto voicemail")
    assert seen[5].action is Action.DECLINE
    assert (seen[6].action, seen[6].destination) == (Action.FORWARD, "+15145550100")
    assert (seen[7].action, seen[7].destination) == (Action.FORWARD, "1009")
    assert seen[8].action is Action.IGNORE
    assert seen[6].reason == "rule 'forward': extension 6"


def test_first_match_wins(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path,
        """
        rules:
          - name: vip
            when: {caller: "+15145550000"}
            answer: {flow: vip}
          - name: montreal
            when: {caller_prefix: "+1514"}
            answer: {flow: local}
          - name: everyone
            voicemail: {}
        """,
    )
    assert decide(ruleset, caller="+15145550000").rule == "vip"
    assert decide(ruleset, caller="+15145550001").rule == "montreal"
    assert decide(ruleset, caller="+14385550001").rule == "everyone"
    assert decide(ruleset, caller="").rule == "everyone"


def test_default_when_no_rule_matches(tmp_path: Path) -> None:
    implicit = rules(tmp_path, "rules:\n  - when: {extension: '1'}\n    decline: {}\n")
    decision = decide(implicit, extension="2")
    assert (decision.action, decision.flow, decision.rule) == (Action.ANSWER, "", DEFAULT_RULE)
    assert decision.reason == "no rule matched: default"
    configured = rules(
        tmp_path,
        "default: {forward: {to: '+15145550100'}}\nrules:\n  - when: {extension: '1'}\n"
        "    decline: {}\n",
    )
    assert decide(configured, extension="2").destination == "+15145550100"
    shorthand = rules(
        tmp_path, "default: voicemail\nrules:\n  - when: {extension: '1'}\n    decline: {}\n"
    )
    assert decide(shorthand, extension="2").action is Action.VOICEMAIL
    assert implicit.summary() == "1 rule, default: answer (default flow)"
    assert shorthand.summary() == "1 rule, default: voicemail"


def test_unnamed_rules_are_numbered(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path,
        "rules:\n  - when: {extension: '1'}\n    decline: {}\n  - when: {extension: '2'}\n"
        "    ignore: {}\n",
    )
    assert decide(ruleset, extension="2").rule == "rule 2"
    assert [rule.line for rule in ruleset.rules] == [2, 4]


def test_evaluate_needs_an_aware_time(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, "rules:\n  - decline: {}\n")
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(ruleset, CallFacts("c", "+15145550000", "1"), datetime(2026, 1, 1), IDLE)


def test_rule_sets_are_immutable(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, "rules:\n  - decline: {}\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.rules = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.rules[0].outcome.action = Action.ANSWER  # type: ignore[misc]
    assert len(ruleset.digest) == 64
    assert ruleset.sources == (tmp_path / "rules.yaml",)


def test_the_example_attendant() -> None:
    ruleset = load_rules(EXAMPLE)
    assert [rule.name for rule in ruleset.rules] == [
        "blocklist",
        "anonymous callers",
        "holiday",
        "after hours",
        "operator line",
        "overflow",
        "business hours",
    ]
    thursday_10am = utc(2026, 11, 26, 15, 0)  # Montreal, EST
    thursday_8pm = utc(2026, 11, 27, 1, 0)
    christmas_noon = utc(2026, 12, 25, 17, 0)
    full = Load(live_calls=8, max_live_calls=8, loop_lag_ms=1.0, max_loop_lag_ms=50.0)

    def rule(
        caller: str, extension: str = "1000", now: datetime = thursday_10am, load: Load = IDLE
    ) -> str:
        return decide(ruleset, caller, extension, now, load).rule

    assert rule("514-555-0142") == "blocklist"  # the list holds it as +1 514 555 0142
    assert rule("+33199001234") == "blocklist"
    assert rule("anonymous") == "anonymous callers"
    assert rule("+15145550000", now=christmas_noon) == "holiday"
    assert decide(ruleset, "+15145550000", "1000", christmas_noon, IDLE).flow == "holiday"
    assert rule("+15145550000", now=thursday_8pm) == "after hours"
    assert rule("+15145550000", extension="1009") == "operator line"
    assert decide(ruleset, "+15145550000", "1009", thursday_10am, IDLE).destination == (
        "+15145550100"
    )
    assert rule("+15145550000", load=full) == "overflow"
    main = decide(ruleset, "+15145550000", "1000", thursday_10am, IDLE)
    assert (main.rule, main.action, main.flow) == ("business hours", Action.ANSWER, "main")
    assert ruleset.flows() == {"holiday", "main"}
