"""The whole system for real: redis-server, gotosim, ingress, worker nodes, beat.

Each test gets its own :class:`worker.up.System` (what ``callworker up``
runs) in a temporary data folder, with the settings it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, wait_until
from tests.media.conftest import speak
from worker.config import Settings
from worker.store import CallDetail, Store
from worker.up import System

FINAL = ("ended", "failed")


class Running:
    """A started system and the handles a test needs."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.sim = system.sandbox_url
        self.store = Store(system.settings.effective_database_url)
        self.http = httpx.Client(base_url=self.sim, timeout=10)

    def place_call(
        self, extension: str = "1000", number: str = "+15145550001", **script: Any
    ) -> str:
        body: dict[str, Any] = {"extension": extension, "number": number, "name": "Test Caller"}
        if script:
            body["script"] = script
        response = self.http.post("/_sim/calls", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def sim_call(self, call_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/_sim/calls/{call_id}").json())

    def requests(self, **query: str) -> list[dict[str, Any]]:
        return list(self.http.get("/_sim/requests", params=query).json()["items"])

    def final_record(self, call_id: str, timeout: float = 45.0) -> CallDetail:
        def done() -> CallDetail | None:
            detail = self.store.get_call(call_id)
            return detail if detail is not None and detail.call.state in FINAL else None

        return wait_until(done, timeout=timeout, interval=0.1, what=f"call {call_id} to finish")  # type: ignore[no-any-return]

    def record(self, call_id: str) -> CallDetail | None:
        return self.store.get_call(call_id)

    def logs(self) -> str:
        return "\n".join(
            f"== {c.name}\n{c.log_path.read_text(errors='replace')[-4000:]}"
            for c in self.system.children
            if c.log_path.exists()
        )


@pytest.fixture
def start_system(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    systems: list[System] = []

    def start(**settings: str) -> Running:
        env = {
            "CALLWORKER_DATA_DIR": str(tmp_path / "data"),
            "CALLWORKER_RECORD_SECONDS": "3",
            "CALLWORKER_LOG_LEVEL": "INFO",
            # These tests share two cores with the rest of the suite: a loop lag that
            # would mean "full" in production is not what they test.
            "CALLWORKER_MAX_LOOP_LAG_MS": "500",
        }
        env.update({f"CALLWORKER_{k.upper()}": v for k, v in settings.items()})
        system = System(Settings.from_env(env), ingress_port=free_port(), drain_seconds=2)
        systems.append(system)
        try:
            system.start()
        except Exception:
            running = Running(system)
            print(running.logs())
            raise
        return Running(system)

    yield start
    for system in systems:
        system.stop()


@pytest.fixture(scope="session")
def caller_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About eight seconds of a caller talking."""
    folder = tmp_path_factory.mktemp("caller")
    return speak(
        "Hello, this is Alice calling about my order. It has not arrived yet, and I would "
        "like somebody to call me back this afternoon, please. Thank you very much.",
        folder / "caller.wav",
    )
