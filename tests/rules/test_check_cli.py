"""``callworker check FILE...``: exit codes and messages, in process and as a real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.rules.util import write
from worker import cli_check
from worker.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
timezone: Europe/Paris
rules:
  - name: closed
    when: {not: {hours: 'mon-fri 09:00-18:00'}}
    voicemail: {}
  - answer: {flow: main}
"""
BAD = """\
rules:
  - name: r
    when: {hours: {timezone: Mars/Olympus, open: 'mon 09:00-10:00'}}
    decline: {}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    code, out, err = run(str(path))
    assert (code, err) == (0, "")
    assert out == f"ok    {path}: rules file, 2 rules, default: answer (default flow)\n"
    assert run("--quiet", str(path)) == (0, "", "")


def test_an_invalid_file_names_line_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    code, out, err = run(str(path))
    assert (code, out) == (1, "")
    assert err == (
        f"error {path}:3: rules[1].when.hours.timezone: unknown time zone 'Mars/Olympus': "
        "expected an IANA name like America/Montreal or Europe/Paris\n"
    )


def test_several_files_one_bad(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD, name="good.yaml")
    bad = write(tmp_path, BAD, name="bad.yaml")
    code, out, err = run(str(good), str(bad))
    assert code == 1
    assert out.startswith(f"ok    {good}: ")
    first, last = err.splitlines()
    assert first.startswith(f"error {bad}:3: rules[1].when.hours.timezone: ")
    assert last == "1 of 2 files have problems"


def test_no_file_is_a_usage_error() -> None:
    code, _out, err = run()
    assert code == 2
    assert "Missing argument 'FILES...'" in err


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    code, _out, err = run(str(tmp_path / "nope.yaml"))
    assert (code, err) == (1, f"error {tmp_path / 'nope.yaml'}: no such file\n")
    other = write(tmp_path, "widgets:\n  - a\nsprockets: 2\n", name="other.yaml")
    code, _out, err = run(str(other))
    assert code == 1
    assert "cannot tell what kind of file this is: its top-level keys are widgets, sprockets" in err
    assert "expected a top-level key among rules:" in err
    text = write(tmp_path, "+15145550000\n", name="list.txt")
    code, _out, err = run(str(text))
    assert code == 1
    assert "it is not a YAML mapping" in err
    broken = write(tmp_path, "rules: [\n", name="broken.yaml")
    code, _out, err = run(str(broken))
    assert code == 1
    assert err.startswith(f"error {broken}:2: not valid YAML")


def test_other_kinds_plug_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class WidgetError(Exception):
        pass

    def check_widgets(path: Path) -> str:
        if "broken" in path.read_text():
            raise WidgetError(f"{path}:1: widgets: this widget is broken")
        return "3 widgets"

    monkeypatch.setattr(cli_check, "_CHECKERS", dict(cli_check.checkers()))
    cli_check.register_checker("widgets", check_widgets, errors=(WidgetError,))
    fine = write(tmp_path, "widgets: [a, b, c]\n", name="fine.yaml")
    broken = write(tmp_path, "widgets: broken\n", name="broken.yaml")
    assert run(str(fine)) == (0, f"ok    {fine}: widgets file, 3 widgets\n", "")
    code, _out, err = run(str(broken))
    assert (code, err) == (1, f"error {broken}:1: widgets: this widget is broken\n")
    assert set(cli_check.checkers()) == {"rules", "flow", "widgets"}  # flow: worker.flows.check


def test_the_command_checks_the_example_attendant() -> None:
    """The real entry point, as a user runs it, on the shipped example."""
    example = ROOT / "examples" / "attendant" / "rules.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "worker", "check", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok    {example}: rules file, 7 rules, default: answer (default flow)\n"
