"""The exceptions of the flow package, with where a flow file went wrong.

::

    Exception
     └── FlowsError             anything raised by worker.flows
          ├── FlowError         a flow file is wrong (also a worker.yamlfile.FileError,
          │                     so a ValueError, like RulesError): .file, .line
          │                     (1-based, when known), .key (a path such as
          │                     ``steps.main_menu.menu.choices.3``), .value (the bad value)
          │                     and .kind (a short stable code, see KINDS)
          └── FlowStateError    the engine or driver was used out of order (also a RuntimeError)

A running call never raises for what a caller does or what a web hook
answers: the engine turns timeouts, bad input and failed requests into the
flow's fallback steps, and the driver turns failed API calls into events.
"""

from __future__ import annotations

from worker.yamlfile import FileError

KINDS = frozenset(
    {
        "unreadable-file",  # the file cannot be read
        "yaml-syntax",  # not valid YAML
        "not-a-flow",  # a YAML file without the top-level `flow:` and `steps:`
        "wrong-type",  # a list where a mapping belongs, text where a number belongs, ...
        "duplicate-key",  # the same key twice in one mapping
        "unknown-key",  # an unknown top-level key, step option or condition key
        "missing-key",  # a required key is missing
        "unknown-step-kind",  # a step whose kind is not one of STEP_KINDS
        "two-step-kinds",  # a step with two kinds (play: and menu: in one step)
        "no-step-kind",  # a step with no kind at all
        "unknown-step",  # a target (next, menu choice, goto, fallback, ...) naming no step
        "unknown-flow",  # a target naming no flow
        "duplicate-flow",  # two files with the same flow name
        "missing-prompt",  # a prompt name or text that the prompt folder does not have
        "bad-timezone",  # not an IANA time zone
        "bad-value",  # a value of the right type that is not allowed
        "bad-time",  # a time of day that is not HH:MM
        "bad-pattern",  # a regular expression that does not compile
        "bad-template",  # a ${...} that is not a variable name
        "unreachable-step",  # a step no path from the start (or an entry point) reaches
        "no-flows",  # a folder without flow files
    }
)


class FlowsError(Exception):
    """Base of every exception raised by :mod:`worker.flows`."""


class FlowError(FlowsError, FileError):
    """A flow file is wrong; the message names the file, line or key, and the value."""

    KINDS = KINDS


class FlowStateError(FlowsError, RuntimeError):
    """The engine or the driver was used out of order (a bug in the caller, not the flow)."""


__all__ = ["KINDS", "FlowError", "FlowStateError", "FlowsError"]
