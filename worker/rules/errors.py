"""The one error a rules file can raise, with where it went wrong.

::

    ValueError
     └── FileError       (worker.yamlfile) a YAML file validated on load is wrong
          └── RulesError a rules file (or a list or holidays file it names) is wrong:
                         .file, .line (1-based, when known), .key (a path such as
                         ``rules[3].when.hours.timezone``, rules counted from 1),
                         .value (the bad value) and .kind (a short stable code)

``kind`` lets callers and tests tell mistakes apart without parsing messages:
see :data:`KINDS`.
"""

from __future__ import annotations

from pathlib import Path

from worker.yamlfile import FileError

KINDS = frozenset(
    {
        "unreadable-file",  # the rules file cannot be read
        "yaml-syntax",  # the file is not valid YAML
        "wrong-type",  # a value of the wrong type (a list where a mapping belongs, ...)
        "unknown-key",  # an unknown top-level key or rule key
        "duplicate-key",  # the same key twice in one mapping
        "empty-rules",  # no rules at all
        "unknown-condition",  # a key under `when:` that is not a condition
        "unknown-action",  # a rule key that is neither `name`, `when` nor an action
        "two-actions",  # more than one action in one rule
        "missing-action",  # a rule without an action
        "unknown-option",  # an unknown key inside a condition or action
        "missing-option",  # a required key inside a condition or action is missing
        "bad-value",  # a value of the right type that is not allowed (a negative count, ...)
        "bad-timezone",  # not an IANA time zone
        "bad-window",  # a weekly hours window that does not parse
        "bad-date",  # a holiday that is not YYYY-MM-DD
        "missing-file",  # a list or holidays file that does not exist
        "bad-number",  # a phone number that cannot be normalised to E.164
        "bad-pattern",  # a glob or regular expression that is wrong
        "duplicate-name",  # two rules with the same name
        "unreachable-rule",  # a rule after one that matches every call
    }
)


class RulesError(FileError):
    """A rules file is wrong; the message names the file, line or key, and the value."""

    KINDS = KINDS
    # Every file the loader read or tried to read before this error (for watchers).
    sources: tuple[Path, ...] = ()
