"""Routing rules: which calls a node answers, and with what, as a YAML file.

A rules file is an ordered list of rules, first match wins; each rule has
conditions (extension, caller number, lists, anonymity, weekly hours in a
time zone, holidays, node load) and one action (answer with a flow, GoTo
voicemail, decline, forward by blind transfer, ignore). The reference is
docs/rules.md.

- :func:`load_rules` reads and validates a file into an immutable
  :class:`RuleSet` (mistakes raise :class:`RulesError`, see
  :mod:`worker.rules.errors` for the kinds);
- :func:`evaluate` is the pure decision ``(rules, call, now, load) -> Decision``;
- :class:`RulesCache` keeps the current version, reloading on change or
  SIGHUP and keeping the last good one when an edit is invalid.

Modules: ``model`` (values and evaluate), ``conditions`` and ``loader``
(the file format, read with line numbers by :mod:`worker.yamlfile`, shared with
flow files), ``numbers`` (E.164), ``cache`` (reloading), ``errors``.
"""

from __future__ import annotations

from worker.rules.cache import RulesCache, reload_on_sighup
from worker.rules.errors import RulesError
from worker.rules.loader import load_rules
from worker.rules.model import DEFAULT_RULE, Outcome, Rule, RuleSet, evaluate
from worker.rules.numbers import NumberError, NumberPlan, is_anonymous

__all__ = [
    "DEFAULT_RULE",
    "NumberError",
    "NumberPlan",
    "Outcome",
    "Rule",
    "RuleSet",
    "RulesCache",
    "RulesError",
    "evaluate",
    "is_anonymous",
    "load_rules",
    "reload_on_sighup",
]
