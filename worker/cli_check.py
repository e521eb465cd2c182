"""``callworker check FILE...``: validate configuration files without running anything.

The kind of each file is told by its top-level keys: a file with ``rules:`` is
a rules file. Each kind has a checker registered with
:func:`register_checker`; to add one (flow files, campaigns), call it at the
bottom of this module with the top-level key that marks the kind, a function
``Path -> str`` that returns a one-line summary, and the exception types that
mean "this file is wrong" (their message is printed as it is, so it should
name the file and line).

Exit status: 0 when every file is valid, 1 when any is not (each problem on
its own line on stderr), 2 for a usage error (no FILE given).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import yaml


@dataclass(frozen=True)
class Checker:
    kind: str
    check: Callable[[Path], str]
    errors: tuple[type[Exception], ...]


_CHECKERS: dict[str, Checker] = {}


class CheckFailed(Exception):
    """A checker's own "this file is wrong" (any checker may raise it)."""


def register_checker(
    kind: str, fn: Callable[[Path], str], *, errors: tuple[type[Exception], ...] = ()
) -> None:
    """Check files whose top-level mapping has the key ``kind`` with ``fn``.

    ``fn`` returns a short summary of a valid file and raises one of ``errors``
    (or :class:`CheckFailed`) for an invalid one.
    """
    _CHECKERS[kind] = Checker(kind, fn, errors)


def checkers() -> dict[str, Checker]:
    return dict(_CHECKERS)


def kind_of(path: Path) -> Checker:
    """The checker for ``path``, from its top-level keys; CheckFailed if none applies."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckFailed(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckFailed(f"{path}: cannot read it: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise CheckFailed(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise CheckFailed(f"{path}: not valid YAML: {exc}") from None
    keys = [str(k.value) for k, _ in root.value] if isinstance(root, yaml.MappingNode) else []
    for key in keys:
        if key in _CHECKERS:
            return _CHECKERS[key]
    known = ", ".join(f"{k}:" for k in _CHECKERS)
    found = f"its top-level keys are {', '.join(keys)}" if keys else "it is not a YAML mapping"
    raise CheckFailed(
        f"{path}: cannot tell what kind of file this is: {found}; "
        f"expected a top-level key among {known}"
    )


def check_file(path: Path) -> tuple[bool, str]:
    """Check one file: (valid, summary or error message)."""
    try:
        checker = kind_of(path)
    except CheckFailed as exc:
        return False, str(exc)
    caught: tuple[type[Exception], ...] = (CheckFailed, *checker.errors)
    try:
        return True, f"{path}: {checker.kind} file, {checker.check(path)}"
    except caught as exc:
        return False, str(exc)


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def check(files: tuple[Path, ...], quiet: bool) -> None:
    """Validate rules files (and other callworker files) without running anything.

    Prints "ok" with a summary for each valid FILE and each problem (file, line,
    key and bad value) on stderr. Exits 1 if any FILE is invalid.
    """
    failed = 0
    for path in files:
        valid, message = check_file(path)
        if valid:
            if not quiet:
                click.echo(f"ok    {message}")
        else:
            failed += 1
            click.echo(f"error {message}", err=True)
    if failed:
        if len(files) > 1:
            click.echo(f"{failed} of {len(files)} files have problems", err=True)
        sys.exit(1)


def _check_rules(path: Path) -> str:
    from worker.rules import load_rules

    return load_rules(path).summary()


def _rules_errors() -> tuple[type[Exception], ...]:
    from worker.rules import RulesError

    return (RulesError,)


register_checker("rules", _check_rules, errors=_rules_errors())
