"""``callworker flows try``: one scripted call through a private sandbox, from the shell."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from worker.cli import main as cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attendant" / "flows"


def test_flows_try_runs_the_example_against_a_scripted_caller(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "flows", "try", str(EXAMPLE), "--flow", "main", "--keys", "0@0.8",
            "--now", "2026-03-04T10:00-05:00", "--workdir", str(tmp_path), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [f"{e['flow']}.{e['step']}" for e in data["path"]] == [
        "main.welcome",
        "main.main_menu",
        "main.operator",
        "main.operator_transfer",
    ]
    assert data["outcome"] == "transferred" and data["sandbox_outcome"] == "TRANSFERRED"
    assert data["transfer_target"] == "+15145550100"
    assert [d["digit"] for d in data["digits"]] == ["0"]
    assert Path(data["heard_wav"]).is_file()


def test_flows_try_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_keys = runner.invoke(cli, ["flows", "try", str(EXAMPLE), "--flow", "main", "--keys", "2"])
    assert bad_keys.exit_code == 2 and "expected KEY@SECONDS like 2@1.5" in bad_keys.output
    unknown = runner.invoke(cli, ["flows", "try", str(EXAMPLE), "--flow", "nope"])
    assert unknown.exit_code == 1 and "no flow 'nope' in" in unknown.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("flow: x\nsteps:\n  a:\n    plya: hi\n")
    failed = runner.invoke(cli, ["flows", "try", str(broken), "--flow", "x"])
    assert failed.exit_code == 1
    assert f"{broken}:4: steps.a: unknown step kind 'plya'" in failed.output
