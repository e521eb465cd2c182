"""The Celery app factory and the lazily built module-level app."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.app import MAX_RETRIES, RETRY_BACKOFF_MAX, VISIBILITY_TIMEOUT, create_celery
from tests.helpers import env_without_callworker
from tests.tasks.worker_process import REPO
from worker.config import ConfigError, Settings


def test_reliability_settings(redis_url: str) -> None:
    conf = create_celery(Settings(redis_url=redis_url)).conf
    assert (conf.task_serializer, conf.result_serializer, conf.accept_content) == (
        "json",
        "json",
        ["json"],
    )
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_direct
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    # Every retry (back-off capped) fits many times within the visibility timeout.
    assert MAX_RETRIES * RETRY_BACKOFF_MAX * 10 < VISIBILITY_TIMEOUT
    assert conf.task_default_queue == "calls"
    assert not conf.result_backend


def test_a_broker_url_is_required() -> None:
    with pytest.raises(ConfigError, match="CALLWORKER_REDIS_URL"):
        create_celery(Settings())


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = env_without_callworker() | env
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True, text=True
    )


def test_importing_reads_no_environment_and_the_app_is_built_on_first_use() -> None:
    lazy = _python(
        "import tasks.app, tasks.calls; print('imported')\n"
        "try:\n    tasks.app.app\nexcept Exception as exc:\n    print(type(exc).__name__, exc)",
        CALLWORKER_NOT_A_SETTING="1",
    )
    assert lazy.returncode == 0, lazy.stderr
    assert lazy.stdout.splitlines() == [
        "imported",
        "ConfigError CALLWORKER_NOT_A_SETTING: is not a callworker setting; "
        "see docs/configuration.md",
    ]
    built = _python(
        "from celery.app.utils import find_app\n"
        "app = find_app('tasks.app'); app.loader.import_default_modules()\n"
        "print(app.conf.broker_url, sorted(t for t in app.tasks if t.startswith('tasks.')))",
        CALLWORKER_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == (
        "redis://127.0.0.1:1/0 ['tasks.calls.on_call_event', 'tasks.calls.on_incoming']"
    )
