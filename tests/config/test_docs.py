from __future__ import annotations

from pathlib import Path

from worker.config import PREFIX, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [
        PREFIX + name.upper()
        for name in Settings.__dataclass_fields__
        if f"`{PREFIX}{name.upper()}`" not in text
    ]
    assert missing == []
