"""Settings: one typed object, read once from ``CALLWORKER_*`` variables.

``Settings.from_env()`` reads ``os.environ``; pass any mapping instead to
inject configuration in tests. A bad value raises :class:`ConfigError`
naming the variable, what it held and what was expected. Secrets are kept in
:class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

PREFIX = "CALLWORKER_"
BUNDLED_PROMPTS = Path(__file__).resolve().parent.parent / "audio_prompts"

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or holds a value of the wrong shape."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class Secret:
    """A string that does not show itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


def _url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(variable, f"expected an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _redis_url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.netloc
    ):
        raise ConfigError(variable, f"expected a redis:// or rediss:// URL, got {raw!r}")
    return raw


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _addresses(variable: str, raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ConfigError(
                variable, f"expected comma-separated IP addresses, {item!r} is not one"
            ) from None
    return items


def _ice_servers(variable: str, raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        if not item.startswith(("stun:", "turn:", "turns:")):
            raise ConfigError(
                variable, f"expected comma-separated stun:/turn: URLs, {item!r} is not one"
            )
    return items


def _extensions(variable: str, raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        if not item.isdigit():
            raise ConfigError(
                variable, f"expected comma-separated digit strings, {item!r} is not one"
            )
    return items


def _int(variable: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(variable, f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(variable, f"expected an integer >= {minimum}, got {value}")
    return value


def _float(variable: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(variable, f"expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(variable, f"expected a number >= {minimum}, got {value}")
    return value


def _bool(variable: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(variable, f"expected true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything a callworker process is configured with.

    Each field maps to ``CALLWORKER_<FIELD NAME IN UPPER CASE>``.
    """

    # GoTo endpoints and credentials
    goto_api_url: str = "https://api.goto.com"
    goto_auth_url: str = "https://authentication.logmeininc.com"
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    refresh_token: Secret = field(default_factory=lambda: Secret(""))
    organization_id: str = ""
    extensions: tuple[str, ...] = ()
    device_id: str = ""
    # Webhook ingress
    webhook_url: str = ""
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    webhook_hmac_key: Secret = field(default_factory=lambda: Secret(""))
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    # Infrastructure
    redis_url: str = ""
    database_url: str = ""
    data_dir: Path = Path("data")
    recordings_dir: Path = Path("")
    prompts_dir: Path = Path("")
    # Media
    ice_servers: tuple[str, ...] = ()
    candidate_addresses: tuple[str, ...] = ()
    # Worker node
    max_live_calls: int = 20
    max_loop_lag_ms: float = 50.0
    max_call_seconds: int = 3600
    shared_opus: bool = True
    recording_format: str = "wav"
    log_level: str = "INFO"
    # Default call handling (until rules and flows are configured)
    greeting_prompt: str = "greeting"
    record_seconds: int = 30
    blocklist: tuple[str, ...] = ()
    open_hours: str = ""
    timezone: str = "UTC"
    overflow_action: str = "voicemail"
    # Routing rules and flows (docs/rules.md, docs/flows.md); empty: the default above
    rules_file: str = ""
    flows_dir: str = ""
    voicemail_number: str = ""

    def __post_init__(self) -> None:
        if self.recordings_dir == Path(""):
            object.__setattr__(self, "recordings_dir", self.data_dir / "recordings")
        if self.prompts_dir == Path(""):
            object.__setattr__(self, "prompts_dir", BUNDLED_PROMPTS)

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'callworker.db').resolve()}"

    @property
    def has_goto_credentials(self) -> bool:
        return bool(self.client_id and self.client_secret and self.refresh_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``).

        Unknown ``CALLWORKER_*`` variables are an error, so a typo is caught
        instead of silently ignored.
        """
        env = os.environ if environ is None else environ
        known = {PREFIX + f.name.upper() for f in fields(cls)}
        for name in env:
            if name.startswith(PREFIX) and name not in known:
                raise ConfigError(name, "is not a callworker setting; see docs/configuration.md")
        values: dict[str, Any] = {}
        for f in fields(cls):
            variable = PREFIX + f.name.upper()
            if variable in env:
                values[f.name] = _PARSERS[f.name](variable, env[variable])
        return cls(**values)

    def env(self) -> dict[str, str]:
        """These settings as ``CALLWORKER_*`` variables (secrets revealed), for child processes."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                text = value.reveal()
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            out[PREFIX + f.name.upper()] = text
        return out


def _text(variable: str, raw: str) -> str:
    return raw.strip()


def _secret(variable: str, raw: str) -> Secret:
    return Secret(raw.strip())


def _path(variable: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigError(variable, "expected a folder path, got an empty value")
    return Path(raw.strip())


def _optional(parser: Callable[[str, str], T]) -> Callable[[str, str], T | str]:
    def parse(variable: str, raw: str) -> T | str:
        return "" if not raw.strip() else parser(variable, raw.strip())

    return parse


def _log_level(variable: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            variable, f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}"
        )
    return level


def _port(variable: str, raw: str) -> int:
    value = _int(variable, raw, minimum=0)
    if value > 65535:
        raise ConfigError(variable, f"expected a TCP port 0-65535, got {value}")
    return value


def _open_hours(variable: str, raw: str) -> str:
    from worker.node.hours import HoursError, parse_weekly_hours

    try:
        parse_weekly_hours(raw)
    except HoursError as exc:
        raise ConfigError(variable, str(exc)) from None
    return raw.strip()


def _timezone(variable: str, raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            variable, f"expected an IANA time zone like Europe/Paris, got {raw!r}"
        ) from None
    return raw.strip()


def _overflow_action(variable: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("voicemail", "decline", "ignore"):
        raise ConfigError(variable, f"expected voicemail, decline or ignore, got {raw!r}")
    return value


def _recording_format(variable: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("wav", "mp3", "ogg"):
        raise ConfigError(variable, f"expected wav, mp3 or ogg, got {raw!r}")
    return value


def _existing_file(variable: str, raw: str) -> str:
    path = raw.strip()
    if path and not Path(path).is_file():
        raise ConfigError(variable, f"expected a readable file, {path!r} is not one")
    return path


def _existing_dir(variable: str, raw: str) -> str:
    path = raw.strip()
    if path and not Path(path).is_dir():
        raise ConfigError(variable, f"expected a folder, {path!r} is not one")
    return path


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "goto_api_url": _url,
    "goto_auth_url": _url,
    "client_id": _text,
    "client_secret": _secret,
    "refresh_token": _secret,
    "organization_id": _text,
    "extensions": _extensions,
    "device_id": _text,
    "webhook_url": _optional(_url),
    "webhook_secret": _secret,
    "webhook_hmac_key": _secret,
    "ingress_host": _text,
    "ingress_port": _port,
    "redis_url": _optional(_redis_url),
    "database_url": _text,
    "data_dir": _path,
    "recordings_dir": _path,
    "prompts_dir": _path,
    "ice_servers": _ice_servers,
    "candidate_addresses": _addresses,
    "max_live_calls": lambda v, r: _int(v, r, minimum=0),
    "max_loop_lag_ms": lambda v, r: _float(v, r, minimum=0.0),
    "max_call_seconds": lambda v, r: _int(v, r, minimum=1),
    "shared_opus": _bool,
    "recording_format": _recording_format,
    "log_level": _log_level,
    "greeting_prompt": _text,
    "record_seconds": lambda v, r: _int(v, r, minimum=0),
    "blocklist": lambda v, r: _list(r),
    "open_hours": _open_hours,
    "timezone": _timezone,
    "overflow_action": _overflow_action,
    "rules_file": _existing_file,
    "flows_dir": _existing_dir,
    "voicemail_number": _text,
}

__all__ = ["PREFIX", "ConfigError", "Secret", "Settings"]
