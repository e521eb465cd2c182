"""OAuth and bearer checks of the sandbox, over real HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gotosim import SimConfig
from tests.gotosim.conftest import Sandbox, SandboxFactory

CALLS = "/web-calls/v1/calls"


def refresh(sandbox: Sandbox, token: str, **auth_override: str) -> tuple[int, dict[str, Any]]:
    auth = (
        auth_override.get("client_id", sandbox.creds["clientId"]),
        auth_override.get("secret", sandbox.creds["clientSecret"]),
    )
    reply = sandbox.http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth
    )
    return reply.status_code, reply.json()


def assert_goto_error(reply_json: dict[str, object], code: str) -> None:
    assert reply_json["errorCode"] == code, reply_json
    assert uuid.UUID(str(reply_json["reference"]))
    assert isinstance(reply_json["message"], str) and reply_json["message"]


def test_credentials_name_the_sandbox_itself(sandbox: Sandbox) -> None:
    creds = sandbox.creds
    assert set(creds) >= {
        "clientId",
        "clientSecret",
        "refreshToken",
        "organizationId",
        "extensions",
        "apiUrl",
        "authUrl",
    }
    assert creds["apiUrl"] == creds["authUrl"] == sandbox.url
    assert creds["extensions"] == ["1000", "1001"]
    other_host = sandbox.http.get("/_sim/credentials", headers={"Host": "sandbox.test:8911"})
    assert other_host.json()["apiUrl"] == "http://sandbox.test:8911"


def test_given_credentials_are_used(make_sandbox: SandboxFactory) -> None:
    config = SimConfig(
        client_id="cid",
        client_secret="s3cret-value",
        refresh_token="rt-given",
        organization_id="org-1",
        extensions=("0523",),
    )
    sandbox = make_sandbox(config)
    assert sandbox.creds["clientId"] == "cid"
    assert sandbox.creds["refreshToken"] == "rt-given"
    assert sandbox.creds["extensions"] == ["0523"]
    status, body = refresh(sandbox, "rt-given")
    assert status == 200, body
    assert "s3cret-value" not in repr(config) and "rt-given" not in repr(config)
    assert "s3cret-value" not in repr(sandbox.sim)


def test_refresh_grant_without_rotation_has_no_refresh_token(sandbox: Sandbox) -> None:
    status, body = refresh(sandbox, sandbox.creds["refreshToken"])
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "scope", "principal"}
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {
        "webrtc.v1.read",
        "webrtc.v1.write",
        "notification-channel.v1.read",
        "notification-channel.v1.manage",
    }
    ok = sandbox.http.get(CALLS, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"items": []}


def test_rotation_always_issues_a_new_refresh_token_and_revokes_the_old(sandbox: Sandbox) -> None:
    assert sandbox.ctl("PUT", "/settings", json={"refreshRotation": "always"}).status_code == 200
    old = sandbox.creds["refreshToken"]
    status, body = refresh(sandbox, old)
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] != old
    assert sandbox.ctl("GET", "/credentials").json()["refreshToken"] == body["refresh_token"]
    status, error = refresh(sandbox, old)
    assert (status, error["error"]) == (400, "invalid_grant")
    status, again = refresh(sandbox, body["refresh_token"])
    assert status == 200 and again["refresh_token"] not in (old, body["refresh_token"])


def test_rotation_after_60_percent_of_the_refresh_lifetime(manual: Sandbox) -> None:
    token = manual.creds["refreshToken"]
    manual.advance(0.59 * 2_592_000)
    status, body = refresh(manual, token)
    assert status == 200 and "refresh_token" not in body
    manual.advance(0.02 * 2_592_000)
    status, body = refresh(manual, token)
    assert status == 200 and body["refresh_token"] != token


def test_access_token_expires_on_the_clock(manual: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {manual.token()}"}
    assert manual.http.get(CALLS, headers=headers).status_code == 200
    manual.advance(3599)
    assert manual.http.get(CALLS, headers=headers).status_code == 200
    manual.advance(1)
    expired = manual.http.get(CALLS, headers=headers)
    assert expired.status_code == 401
    assert_goto_error(expired.json(), "AUTHN_EXPIRED_TOKEN")
    assert "Bearer" in expired.headers["www-authenticate"]
    renewed = {"Authorization": f"Bearer {manual.token(fresh=True)}"}
    assert manual.http.get(CALLS, headers=renewed).status_code == 200


def test_access_token_lifetime_is_configurable(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(access_token_lifetime=120)
    status, body = refresh(sandbox, sandbox.creds["refreshToken"])
    assert (status, body["expires_in"]) == (200, 120)
    settings = sandbox.ctl("PUT", "/settings", json={"accessTokenLifetime": 5}).json()
    assert settings["accessTokenLifetime"] == 5
    assert refresh(sandbox, sandbox.creds["refreshToken"])[1]["expires_in"] == 5


def test_expire_all_access_tokens_from_the_control_api(sandbox: Sandbox) -> None:
    token = sandbox.token()
    assert sandbox.ctl("POST", "/tokens/expire").json()["expired"] >= 1
    reply = sandbox.http.get(CALLS, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    assert_goto_error(reply.json(), "AUTHN_EXPIRED_TOKEN")


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 403, "AUTHZ_INSUFFICIENT_SCOPE"),
        ("", 403, "AUTHZ_INSUFFICIENT_SCOPE"),
        ("Basic dXNlcjpwYXNz", 401, "AUTHN_UNSUPPORTED_SCHEME"),
        ("Token abc", 401, "AUTHN_UNSUPPORTED_SCHEME"),
        ("Bearer", 401, "AUTHN_MALFORMED_TOKEN"),
        ("Bearer two words", 401, "AUTHN_MALFORMED_TOKEN"),
        ("Bearer bad*token!", 401, "AUTHN_MALFORMED_TOKEN"),
        ("Bearer " + "a" * 5000, 401, "AUTHN_MALFORMED_TOKEN"),
        ("Bearer not-a-token-we-issued", 401, "AUTHN_INVALID_TOKEN"),
    ],
)
def test_bearer_errors(sandbox: Sandbox, authorization: str | None, status: int, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = sandbox.http.get(CALLS, headers=headers)
    assert reply.status_code == status, reply.text
    assert_goto_error(reply.json(), code)
    assert "not-a-token-we-issued" not in reply.text


def test_missing_token_is_checked_before_the_body(sandbox: Sandbox) -> None:
    reply = sandbox.http.post(CALLS, content=b"{not json")
    assert reply.status_code == 403
    assert_goto_error(reply.json(), "AUTHZ_INSUFFICIENT_SCOPE")


def test_scopes_are_enforced(sandbox: Sandbox) -> None:
    minted = sandbox.ctl("POST", "/tokens", json={"scopes": ["webrtc.v1.read"]})
    assert minted.status_code == 201
    headers = {"Authorization": f"Bearer {minted.json()['access_token']}"}
    assert sandbox.http.get(CALLS, headers=headers).status_code == 200
    write = sandbox.http.post(CALLS, headers=headers, json={})
    assert write.status_code == 403
    assert_goto_error(write.json(), "AUTHZ_INSUFFICIENT_SCOPE")
    assert "webrtc.v1.write" in write.json()["message"]
    channels = sandbox.http.get("/notification-channel/v1/channels", headers=headers)
    assert channels.status_code == 403
    only_channels = sandbox.ctl(
        "POST", "/tokens", json={"scopes": ["notification-channel.v1.read"]}
    )
    headers = {"Authorization": f"Bearer {only_channels.json()['access_token']}"}
    assert sandbox.http.get("/notification-channel/v1/channels", headers=headers).status_code == 200
    create = sandbox.http.post("/notification-channel/v1/channels/x", headers=headers, json={})
    assert create.status_code == 403


def test_minted_token_with_zero_lifetime_is_expired(sandbox: Sandbox) -> None:
    minted = sandbox.ctl("POST", "/tokens", json={"lifetime": 0}).json()
    reply = sandbox.http.get(CALLS, headers={"Authorization": f"Bearer {minted['access_token']}"})
    assert_goto_error(reply.json(), "AUTHN_EXPIRED_TOKEN")


@pytest.mark.parametrize(
    ("data", "auth", "content_type", "status", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "x"}, None, None, 401, "invalid_client"),
        (
            {"grant_type": "refresh_token", "refresh_token": "x"},
            "wrong",
            None,
            401,
            "invalid_client",
        ),
        ({"grant_type": "refresh_token"}, "ok", None, 400, "invalid_request"),
        ({}, "ok", None, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, "ok", None, 401, "unauthorized_client"),
        ({"grant_type": "made_up"}, "ok", None, 400, "unsupported_grant_type"),
        (
            {"grant_type": "refresh_token", "refresh_token": "nope"},
            "ok",
            None,
            400,
            "invalid_grant",
        ),
        ({"grant_type": "authorization_code", "code": "nope"}, "ok", None, 400, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "ok", "application/json", 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(
    sandbox: Sandbox,
    data: dict[str, str],
    auth: str | None,
    content_type: str | None,
    status: int,
    error: str,
) -> None:
    creds = sandbox.creds
    basic: tuple[str, str] | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
    if auth == "ok":
        basic = (creds["clientId"], creds["clientSecret"])
    elif auth == "wrong":
        basic = (creds["clientId"], "not-the-secret")
    if content_type is None:
        reply = sandbox.http.post("/oauth/token", data=data, auth=basic)
    else:
        reply = sandbox.http.post(
            "/oauth/token", json=data, auth=basic, headers={"Content-Type": content_type}
        )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == error
    assert reply.headers["cache-control"] == "no-store"
    assert creds["clientSecret"] not in reply.text


def test_authorization_code_flow(sandbox: Sandbox) -> None:
    creds = sandbox.creds
    redirect = "http://127.0.0.1:9/callback"
    reply = sandbox.http.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": creds["clientId"],
            "redirect_uri": redirect,
            "scope": "webrtc.v1.read",
            "state": "xyz",
        },
    )
    assert reply.status_code == 302
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    code = query["code"][0]
    basic = (creds["clientId"], creds["clientSecret"])
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://other/"}
    assert sandbox.http.post("/oauth/token", data=form, auth=basic).json()["error"] == (
        "invalid_grant"
    )
    form["redirect_uri"] = redirect
    token = sandbox.http.post("/oauth/token", data=form, auth=basic)
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "refresh_token",
        "expires_in",
        "scope",
        "principal",
    }
    assert body["scope"] == "webrtc.v1.read"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert sandbox.http.get(CALLS, headers=headers).status_code == 200
    assert sandbox.http.post(CALLS, headers=headers, json={}).status_code == 403
    assert sandbox.http.post("/oauth/token", data=form, auth=basic).status_code == 400
    status, refreshed = refresh(sandbox, body["refresh_token"])
    assert status == 200 and refreshed["scope"] == "webrtc.v1.read"


def test_implicit_grant_puts_the_token_in_the_fragment(sandbox: Sandbox) -> None:
    reply = sandbox.http.get(
        "/oauth/authorize",
        params={
            "response_type": "token",
            "client_id": sandbox.creds["clientId"],
            "redirect_uri": "http://127.0.0.1:9/cb",
        },
    )
    assert reply.status_code == 302
    fragment = parse_qs(urlsplit(reply.headers["location"]).fragment)
    assert "refresh_token" not in fragment
    headers = {"Authorization": f"Bearer {fragment['access_token'][0]}"}
    assert sandbox.http.get(CALLS, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"response_type": "code", "client_id": "wrong", "redirect_uri": "http://x/"},
        {"response_type": "code", "redirect_uri": "not a url"},
        {"response_type": "other"},
        {"response_type": "code", "redirect_uri": "http://x/", "scope": "admin"},
    ],
)
def test_authorize_errors(sandbox: Sandbox, params: dict[str, str]) -> None:
    params = dict(params)
    if params.get("client_id") != "wrong":
        params["client_id"] = sandbox.creds["clientId"]
    reply = sandbox.http.get("/oauth/authorize", params=params)
    assert reply.status_code == 400
    assert re.fullmatch(r"[a-z_]+", reply.json()["error"])


def test_requests_log_redacts_credentials(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.api("GET", CALLS)
    log = sandbox.ctl("GET", "/requests").text
    assert token not in log
    assert sandbox.creds["refreshToken"] not in log
    assert sandbox.creds["clientSecret"] not in log
    items = sandbox.ctl("GET", "/requests", params={"path": CALLS}).json()["items"]
    assert items[0]["authorization"] == "Bearer ***"
    assert items[0]["status"] == 200
