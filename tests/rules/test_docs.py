"""Every YAML example in docs/rules.md loads (rule snippets are wrapped in a small file)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from worker.rules import load_rules
from worker.rules.conditions import CONDITIONS
from worker.rules.loader import TOP_KEYS
from worker.rules.model import ACTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
HEADER = 'timezone: America/Montreal\ndefault_country: "1"\nrules:\n'
LISTS = {
    "blocklist.txt": "+1 514 555 0142\n",
    "staff.txt": "1009\n",
    "customers.txt": "+33 6 12 34 56 78\n",
    "closures.txt": "2026-08-14  summer closure\n",
}


def test_every_condition_and_action_has_an_example() -> None:
    keys = {*CONDITIONS, *ACTIONS, *TOP_KEYS}
    missing = [key for key in keys if not any(f"{key}:" in block for block in BLOCKS)]
    assert missing == []


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_each_example_loads(tmp_path: Path, block: str) -> None:
    for name, content in LISTS.items():
        (tmp_path / name).write_text(content)
    text = HEADER + textwrap.indent(block, "  ") if block.startswith("- ") else block
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    ruleset = load_rules(path)
    assert ruleset.rules
