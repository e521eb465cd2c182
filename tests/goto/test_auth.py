"""OAuth token manager against a real token endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import stat
from pathlib import Path

import pytest

from tests.goto.conftest import FakeTime, make_tokens
from tests.goto.fakegoto import FakeGoTo, Reply
from tests.helpers import ServerThread, free_port
from worker.config import Secret
from worker.goto.auth import FileTokenStore, TokenManager
from worker.goto.errors import AuthError, RateLimitedError, TransportError


async def test_refresh_grant_uses_basic_client_auth_and_form(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    tokens = make_tokens(fake, server.url, clock)
    value = await tokens.token()
    assert value == fake.issued[-1]
    (seen,) = fake.seen("POST", "/oauth/token")
    expected = base64.b64encode(b"cw-client:CLIENT-SECRET-c1c2c3c4").decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"grant_type": "refresh_token", "refresh_token": "REFRESH-SECRET-r1r2r3r4"}
    assert tokens.current is not None
    assert tokens.current.principal == "bot@example.com"
    assert "webrtc.v1.write" in tokens.current.scope
    await tokens.aclose()


async def test_token_is_reused_then_refreshed_before_expiry(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    tokens = make_tokens(fake, server.url, clock, margin=60.0)
    first = await tokens.token()
    clock.now += 3539.0
    assert await tokens.token() == first
    assert tokens.refreshes == 1
    clock.now += 1.0  # 60 s before the 3600 s expiry: refresh now
    second = await tokens.token()
    assert second != first
    assert tokens.refreshes == 2
    assert len(fake.seen("POST", "/oauth/token")) == 2, fake.describe()
    await tokens.aclose()


async def test_short_lived_token_refreshes_at_half_life(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    fake.expires_in = 20
    tokens = make_tokens(fake, server.url, clock, margin=60.0)
    first = await tokens.token()
    clock.now += 9.9
    assert await tokens.token() == first
    clock.now += 0.2
    assert await tokens.token() != first
    await tokens.aclose()


async def test_concurrent_callers_share_one_refresh(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    tokens = make_tokens(fake, server.url, clock)
    values = await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert len(set(values)) == 1
    assert len(fake.seen("POST", "/oauth/token")) == 1, fake.describe()
    # Twenty callers told "expired" with the same token: one refresh between them.
    renewed = await asyncio.gather(*(tokens.renew_after_rejection(values[0]) for _ in range(20)))
    assert len(set(renewed)) == 1 and renewed[0] != values[0]
    assert len(fake.seen("POST", "/oauth/token")) == 2, fake.describe()
    await tokens.aclose()


async def test_rotated_refresh_token_is_persisted_0600_and_used_next_time(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, tmp_path: Path
) -> None:
    fake.rotate = True
    path = tmp_path / "data" / "oauth-tokens.json"
    store = FileTokenStore(path, key=f"{server.url} cw-client")
    tokens = make_tokens(fake, server.url, clock, store=store)
    await tokens.token()
    (rotated,) = fake.refresh_tokens  # the configured one is now revoked
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())[f"{server.url} cw-client"]["refresh_token"] == rotated
    await tokens.aclose()
    # A new process with the same configured token picks up the rotated one.
    again = make_tokens(
        fake, server.url, clock, store=store, refresh_token="REFRESH-SECRET-r1r2r3r4"
    )
    await again.token()
    assert fake.seen("POST", "/oauth/token")[-1].form["refresh_token"] == rotated
    await again.aclose()


async def test_managers_sharing_a_store_follow_each_others_rotations(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, tmp_path: Path
) -> None:
    fake.rotate = True  # each refresh revokes the refresh token it used
    store = FileTokenStore(tmp_path / "tokens.json", key="k")
    first = make_tokens(fake, server.url, clock, store=store)
    second = make_tokens(fake, server.url, clock, store=store)
    await first.token()
    await second.token()  # would be invalid_grant with the configured (revoked) token
    await first.refresh()
    forms = [r.form["refresh_token"] for r in fake.seen("POST", "/oauth/token")]
    assert len(set(forms)) == 3, forms
    await first.aclose()
    await second.aclose()


async def test_a_newly_configured_refresh_token_wins_over_the_stored_one(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, tmp_path: Path
) -> None:
    fake.rotate = True
    store = FileTokenStore(tmp_path / "tokens.json", key="k")
    tokens = make_tokens(fake, server.url, clock, store=store)
    await tokens.token()
    await tokens.aclose()
    fake.refresh_tokens.add("REFRESH-SECRET-brand-new")
    fresh = make_tokens(
        fake, server.url, clock, store=store, refresh_token="REFRESH-SECRET-brand-new"
    )
    await fresh.token()
    assert fake.seen("POST", "/oauth/token")[-1].form["refresh_token"] == "REFRESH-SECRET-brand-new"
    await fresh.aclose()


async def test_authorization_code_exchange_keeps_the_refresh_token(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, tmp_path: Path
) -> None:
    fake.codes["CODE-SECRET-9999"] = "http://127.0.0.1/callback"
    store = FileTokenStore(tmp_path / "tokens.json", key="k")
    tokens = TokenManager(
        auth_url=server.url,
        client_id=fake.client_id,
        client_secret=Secret(fake.client_secret),
        store=store,
        clock=clock,
    )
    token = await tokens.exchange_code("CODE-SECRET-9999", "http://127.0.0.1/callback")
    assert token.value.reveal() == fake.issued[-1]
    seen = fake.seen("POST", "/oauth/token")[-1]
    assert seen.form == {
        "grant_type": "authorization_code",
        "code": "CODE-SECRET-9999",
        "redirect_uri": "http://127.0.0.1/callback",
        "client_id": "cw-client",
    }
    stored = store.load()
    assert stored is not None and stored.value.reveal() in fake.refresh_tokens
    # The refresh grant now works with the exchanged refresh token.
    await tokens.refresh()
    assert fake.seen("POST", "/oauth/token")[-1].form["refresh_token"] == stored.value.reveal()
    await tokens.aclose()


async def test_refused_grant_is_an_auth_error_without_secrets(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = make_tokens(fake, server.url, clock, refresh_token="REFRESH-SECRET-revoked")
    with pytest.raises(AuthError) as info:
        await tokens.token()
    message = str(info.value)
    assert "refused the refresh-token grant: HTTP 400 invalid_grant (unknown token)" in message
    assert "CALLWORKER_REFRESH_TOKEN" in message
    for secret in ("REFRESH-SECRET-revoked", fake.client_secret):
        assert secret not in message
        assert secret not in repr(info.value)
        assert secret not in repr(tokens)
        assert all(secret not in r.getMessage() for r in caplog.records)
    await tokens.aclose()


async def test_wrong_client_secret_is_an_auth_error(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    tokens = TokenManager(
        auth_url=server.url,
        client_id="cw-client",
        client_secret=Secret("WRONG-SECRET-0000"),
        refresh_token=Secret("REFRESH-SECRET-r1r2r3r4"),
        clock=clock,
    )
    with pytest.raises(AuthError) as info:
        await tokens.token()
    assert info.value.status == 401 and info.value.error_code == "invalid_client"
    assert "WRONG-SECRET-0000" not in str(info.value)
    await tokens.aclose()


async def test_token_endpoint_429_and_unreachable_are_typed(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    fake.push("POST", "/oauth/token", Reply(429, {"errorCode": "TOO_MANY"}, {"Retry-After": "4"}))
    tokens = make_tokens(fake, server.url, clock)
    with pytest.raises(RateLimitedError) as limited:
        await tokens.token()
    assert limited.value.retry_after == 4.0
    await tokens.aclose()
    nowhere = make_tokens(fake, f"http://127.0.0.1:{free_port()}", clock)
    with pytest.raises(TransportError) as lost:
        await nowhere.token()
    assert lost.value.sent is False
    assert "POST /oauth/token" in str(lost.value) and "before the request was sent" in str(
        lost.value
    )
    await nowhere.aclose()


async def test_missing_refresh_token_says_which_setting(clock: FakeTime) -> None:
    tokens = TokenManager(
        auth_url="http://127.0.0.1:9", client_id="c", client_secret=Secret("s"), clock=clock
    )
    with pytest.raises(AuthError, match="CALLWORKER_REFRESH_TOKEN"):
        await tokens.token()
    await tokens.aclose()
