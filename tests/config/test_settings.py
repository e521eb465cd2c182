from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, Secret, Settings


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.goto_api_url == "https://api.goto.com"
    assert settings.recordings_dir == Path("data") / "recordings"
    assert settings.ice_servers == ()
    assert not settings.has_goto_credentials
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("data/callworker.db")


def test_values_are_parsed_and_typed() -> None:
    settings = Settings.from_env(
        {
            "CALLWORKER_GOTO_API_URL": "http://127.0.0.1:8911/",
            "CALLWORKER_CLIENT_ID": "abc",
            "CALLWORKER_CLIENT_SECRET": "s3cr3t",
            "CALLWORKER_REFRESH_TOKEN": "rt",
            "CALLWORKER_EXTENSIONS": "0523, 1000",
            "CALLWORKER_CANDIDATE_ADDRESSES": "127.0.0.1",
            "CALLWORKER_ICE_SERVERS": "stun:stun.example.org:3478",
            "CALLWORKER_MAX_LIVE_CALLS": "7",
            "CALLWORKER_DATA_DIR": "/tmp/cw",
            "CALLWORKER_REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert settings.goto_api_url == "http://127.0.0.1:8911"
    assert settings.extensions == ("0523", "1000")
    assert settings.candidate_addresses == ("127.0.0.1",)
    assert settings.max_live_calls == 7
    assert settings.recordings_dir == Path("/tmp/cw/recordings")
    assert settings.has_goto_credentials
    assert settings.client_secret.reveal() == "s3cr3t"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CALLWORKER_GOTO_API_URL", "api.goto.com", "expected an http(s) URL"),
        ("CALLWORKER_MAX_LIVE_CALLS", "many", "expected an integer"),
        ("CALLWORKER_MAX_LIVE_CALLS", "-1", "expected an integer >= 0"),
        ("CALLWORKER_CANDIDATE_ADDRESSES", "127.0.0.1,localhost", "'localhost' is not one"),
        ("CALLWORKER_ICE_SERVERS", "stun.example.org", "stun:/turn: URLs"),
        ("CALLWORKER_EXTENSIONS", "05a3", "digit strings"),
        ("CALLWORKER_REDIS_URL", "http://127.0.0.1", "redis://"),
        ("CALLWORKER_INGRESS_PORT", "70000", "TCP port"),
        ("CALLWORKER_LOG_LEVEL", "LOUD", "expected DEBUG"),
        ("CALLWORKER_DATA_DIR", " ", "folder path"),
        ("CALLWORKER_NOT_A_SETTING", "1", "is not a callworker setting"),
    ],
)
def test_bad_value_names_variable_and_expectation(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable
    assert str(info.value).startswith(variable + ":")
    assert expected in str(info.value)


def test_secrets_never_show_in_repr() -> None:
    settings = Settings.from_env(
        {"CALLWORKER_CLIENT_SECRET": "hunter2", "CALLWORKER_WEBHOOK_SECRET": "w3bh00k"}
    )
    text = repr(settings) + str(settings)
    assert "hunter2" not in text
    assert "w3bh00k" not in text
    assert repr(Secret("x")) == "Secret('********')"


def test_env_round_trips() -> None:
    original = Settings.from_env(
        {"CALLWORKER_CLIENT_SECRET": "hunter2", "CALLWORKER_EXTENSIONS": "1000,1001"}
    )
    assert Settings.from_env(original.env()) == original
