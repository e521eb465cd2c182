"""``callworker up``: the whole system on one machine, in one command.

:class:`System` starts, in order and each as a child process:

1. a private redis-server on a free loopback port (AOF on), unless
   ``CALLWORKER_REDIS_URL`` is set;
2. gotosim on a free loopback port, unless GoTo credentials are set; its
   credentials come from ``/_sim/credentials``;
3. the ingress, with the webhook secret (generated once and kept in the
   data folder unless ``CALLWORKER_WEBHOOK_SECRET`` is set);
4. provisioning (in this process): channel, device, extension, and the
   ``greetings`` notification through the running ingress;
5. one worker node and the beat.

It prints what runs where, and stops everything, in reverse order, on
Ctrl-C or SIGTERM, or when any child dies. Child output goes to
``<data dir>/logs/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from worker.config import Secret, Settings
from worker.provision import ProvisionReport, provision, sandbox_settings

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


class UpError(RuntimeError):
    """A part of the system did not start; the message names it and its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


def _callworker(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker", *args]


@dataclass
class System:
    """Everything ``callworker up`` runs; see the module docstring."""

    settings: Settings
    ingress_port: int = 0
    drain_seconds: float = 10.0
    children: list[Child] = field(default_factory=list)
    sandbox_url: str = ""
    report: ProvisionReport | None = None
    started: list[tuple[str, str]] = field(default_factory=list)

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def _child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.logs_dir / f"{name}.log")
        self.children.append(child)
        return child

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
        base.update(self.settings.env())
        base["PYTHONUNBUFFERED"] = "1"
        return base

    def _wait(self, child: Child, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not child.alive:
                raise UpError(f"{child.name} exited while starting; see {child.log_path}")
            if callable(ready) and ready():
                return
            if time.monotonic() > deadline:
                raise UpError(
                    f"{child.name}: {what} within {START_TIMEOUT:.0f} s; see {child.log_path}"
                )
            time.sleep(0.05)

    def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if not settings.redis_url:
            self._start_redis()
        if not settings.has_goto_credentials:
            self._start_sandbox()
        self._start_ingress()
        self.report = asyncio.run(provision(self.settings))
        if not self.report.confirmed:
            raise UpError("provisioning could not confirm the greetings notification")
        self.add_worker("node1")
        beat = self._child("beat", _callworker("beat"))
        beat.start(self._env())
        self.started.append(("beat", f"log {beat.log_path}"))

    def add_worker(self, name: str) -> str:
        """Start one more worker node named ``name@<host>``; return its node name."""
        node = f"{name}@{socket.gethostname()}"
        argv = _callworker("worker", "--name", node, "--drain-seconds", str(self.drain_seconds))
        worker = self._child(f"worker-{name}", argv)
        worker.start(self._env())
        self.started.append((f"worker node {node}", f"log {worker.log_path}"))

        def ready() -> bool:
            return b" ready." in worker.log_path.read_bytes()

        self._wait(worker, ready, "the worker node did not report ready")
        return node

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UpError("redis-server is not installed and CALLWORKER_REDIS_URL is not set")
        port = free_port()
        folder = self.settings.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder.resolve()),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        child = self._child("redis", argv)
        child.start(self._env())
        self._wait(child, lambda: port_open(port), "redis-server did not listen")
        url = f"redis://127.0.0.1:{port}/0"
        self.settings = dataclasses.replace(self.settings, redis_url=url)
        self.started.append(("redis", f"{url} (private, AOF on)"))

    def _start_sandbox(self) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        child = self._child(
            "sandbox",
            _callworker(
                "sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--far-end",
                "aiortc",
                "--heard-dir",
                str(self.settings.data_dir / "gotosim-heard"),
            ),
        )
        child.start(self._env())

        def ready() -> bool:
            try:
                return httpx.get(url + "/_sim/credentials", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(child, ready, "gotosim did not answer")
        self.sandbox_url = url
        self.settings = asyncio.run(sandbox_settings(self.settings, url))
        if not self.settings.candidate_addresses:
            self.settings = dataclasses.replace(self.settings, candidate_addresses=("127.0.0.1",))
        self.started.append(("sandbox (gotosim)", url))

    def _webhook_secret(self) -> Secret:
        if self.settings.webhook_secret:
            return self.settings.webhook_secret
        path = self.settings.data_dir / "webhook-secret"
        if path.exists():
            return Secret(path.read_text().strip())
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return Secret(value)

    def _start_ingress(self) -> None:
        port = self.ingress_port or self.settings.ingress_port
        if port_open(port):
            raise UpError(f"port {port} is taken: set CALLWORKER_INGRESS_PORT to a free port")
        self.settings = dataclasses.replace(
            self.settings, ingress_port=port, webhook_secret=self._webhook_secret()
        )
        child = self._child(
            "ingress", _callworker("ingress", "--host", "127.0.0.1", "--port", str(port))
        )
        child.start(self._env())

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(child, ready, "the ingress did not become ready")
        self.started.append(("ingress", f"http://127.0.0.1:{port}/webhooks/goto/********"))

    def lines(self) -> list[str]:
        out = [f"  {name:<18} {where}" for name, where in self.started]
        if self.report is not None:
            out += ["", *self.report.lines()]
        out.append(f"  {'logs':<18} {self.logs_dir}")
        return out

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.process is not None and not c.alive), None)

    def stop(self) -> None:
        for child in reversed(self.children):
            timeout = self.drain_seconds + 15 if child.name.startswith("worker") else 10
            with contextlib.suppress(Exception):
                child.stop(timeout)

    def wait(self, stop: threading.Event) -> str:
        """Block until ``stop`` is set or a child dies; return why."""
        while not stop.wait(0.5):
            dead = self.first_dead()
            if dead is not None:
                status = dead.process.returncode if dead.process is not None else "?"
                return f"{dead.name} exited (status {status}); see {dead.log_path}"
        return "asked to stop"
