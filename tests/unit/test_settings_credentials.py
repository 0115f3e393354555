"""Settings from ``LEPTON_*`` variables, the credentials file, and how ``Client()`` finds its
server and token."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lepton import Client, ConfigError, ConnectionFailed
from lepton.credentials import Credentials, read_credentials, write_credentials
from lepton.settings import Settings

# --- Settings.from_env ---------------------------------------------------------------------


def test_from_env_reads_lepton_variables(tmp_path: Path) -> None:
    environ = {
        "LEPTON_HOME": str(tmp_path / "state"),
        "LEPTON_HOST": "0.0.0.0",
        "LEPTON_PORT": "9100",
        "LEPTON_DATABASE_URL": "postgresql://u:p@db:5432/lepton",
        "LEPTON_STORAGE_URL": "s3://bucket/prefix",
        "LEPTON_MAX_UPLOAD_BYTES": "4096",
        "LEPTON_URL": "http://cp:8700",
        "LEPTON_TOKEN": "lep_a_b",
        "LEPTON_CREDENTIALS": str(tmp_path / "creds.json"),
        "PORT": "1",  # not ours
    }

    s = Settings.from_env(environ)

    assert s.home == tmp_path / "state"
    assert (s.host, s.port, s.max_upload_bytes) == ("0.0.0.0", 9100, 4096)
    assert s.database == "postgresql://u:p@db:5432/lepton"
    assert s.storage == "s3://bucket/prefix"
    assert (s.url, s.token) == ("http://cp:8700", "lep_a_b")
    assert s.credentials_path == tmp_path / "creds.json"
    assert s.local_url == "http://127.0.0.1:9100"  # a wildcard bind is reached on loopback


def test_from_env_defaults_work_on_a_laptop(tmp_path: Path) -> None:
    s = Settings.from_env({"LEPTON_HOME": str(tmp_path), "LEPTON_PORT": ""})

    assert s.port == 8700  # an empty variable counts as unset
    assert s.database == f"sqlite:///{tmp_path / 'lepton.db'}"
    assert s.storage == str(tmp_path / "blobs")
    assert s.credentials_path == tmp_path / "credentials.json"
    assert s.key_path == tmp_path / "encryption.key"
    assert s.local_url == "http://127.0.0.1:8700"


def test_from_env_expands_home_in_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    s = Settings.from_env({"LEPTON_HOME": "~/lep", "LEPTON_CREDENTIALS": "~/c.json"})

    assert s.home == tmp_path / "lep"
    assert s.credentials_path == tmp_path / "c.json"


def test_explicit_overrides_win_over_the_environment() -> None:
    s = Settings.from_env({"LEPTON_PORT": "9100", "LEPTON_HOST": "h"}, port=9200, host=None)

    assert s.port == 9200
    assert s.host == "h"  # None means "not given", not "clear it"


@pytest.mark.parametrize("name", ["PORT", "MAX_UPLOAD_BYTES"])
def test_bad_integer_is_a_config_error_with_a_fix(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({f"LEPTON_{name}": "lots"})

    assert f"LEPTON_{name}='lots'" in caught.value.message
    assert "whole number" in caught.value.message
    assert f"set LEPTON_{name} to an integer" in caught.value.fix


def test_a_float_setting_reads_a_number_and_refuses_words() -> None:
    assert Settings.from_env({"LEPTON_TRAFFIC_INTERVAL_S": "0.5"}).traffic_interval_s == 0.5
    assert Settings.from_env({}).traffic_interval_s == 5.0
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LEPTON_TRAFFIC_INTERVAL_S": "often"})

    assert "LEPTON_TRAFFIC_INTERVAL_S='often' is not a number" in caught.value.message
    assert "set LEPTON_TRAFFIC_INTERVAL_S to a number such as 0.5" in caught.value.fix


def test_ipv6_host_is_bracketed_in_the_local_url() -> None:
    assert Settings(host="::1", port=8700).local_url == "http://[::1]:8700"


# --- the credentials file ------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_round_trip_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "credentials.json"
    saved = Credentials(url="http://127.0.0.1:8700", token="lep_a_secret")

    write_credentials(path, saved)

    assert read_credentials(path) == saved
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == {"url": saved.url, "token": saved.token}


def test_rewriting_credentials_narrows_a_widened_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{}")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_credentials(path, Credentials(url="http://a", token="t"))
    finally:
        os.umask(old_umask)

    assert mode(path) == 0o600
    assert read_credentials(path) == Credentials(url="http://a", token="t")


def test_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials.json"
    old = Credentials(url="http://old", token="old-token")
    write_credentials(path, old)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    # The rename is the commit point; a failure before it must not touch the file in place.
    monkeypatch.setattr("lepton.credentials.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_credentials(path, Credentials(url="http://new", token="new-token"))
    monkeypatch.undo()

    assert read_credentials(path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials.json"]


def test_missing_credentials_file_is_none(tmp_path: Path) -> None:
    assert read_credentials(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "cannot read"),
        ('{"url": "http://a"}', "lacks 'url' or 'token'"),
        ("[]", "lacks"),
    ],
)
def test_damaged_credentials_file_is_a_config_error_saying_log_in_again(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        read_credentials(path)

    assert fragment in caught.value.message
    assert str(path) in caught.value.message
    assert "lepton login" in caught.value.fix


def test_a_token_pasted_with_its_newline_is_used_without_it(tmp_path: Path) -> None:
    # The newline made httpx refuse the header, which the CLI reported as "cannot reach the
    # server" (exit 6) with the server up.
    settings = Settings.from_env(
        {"LEPTON_TOKEN": " lep_abc_secret\n", "LEPTON_URL": "http://cp:8700\n"}
    )
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"url": "http://cp:8700 ", "token": "lep_abc_secret\r\n"}))

    assert settings.token == "lep_abc_secret"
    assert settings.url == "http://cp:8700"
    assert read_credentials(path) == Credentials(url="http://cp:8700", token="lep_abc_secret")


@pytest.mark.parametrize("token", ["lep_abc\nsecret", "lep_abcé", "lep abc"])
def test_a_token_no_header_can_carry_is_a_config_error_without_the_secret(
    token: str, tmp_path: Path
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"url": "http://cp:8700", "token": token}))

    with pytest.raises(ConfigError) as from_env:
        Settings.from_env({"LEPTON_TOKEN": token})
    with pytest.raises(ConfigError) as from_file:
        read_credentials(path)

    assert from_env.value.message.startswith("LEPTON_TOKEN holds ")
    assert "HTTP header" in from_env.value.message
    assert "lepton token create" in from_env.value.fix
    assert from_file.value.message.startswith(f"the token in {path} holds ")
    assert "lepton login" in from_file.value.fix
    for caught in (from_env, from_file):
        assert "abc" not in caught.value.message  # the character and where, never the token


# --- how Client() finds its server and token -----------------------------------------------


def test_client_without_server_says_start_one(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        Client(settings=Settings(home=tmp_path))

    assert "no Lepton server is configured" in caught.value.message
    assert "lepton up" in caught.value.fix
    assert "lepton login" in caught.value.fix


@pytest.fixture
def recorded() -> Iterator[tuple[httpx.Client, list[httpx.Request]]]:
    """An HTTP client that answers every request and remembers it."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok", "api_version": 1})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        yield http, seen


def saved_login(tmp_path: Path, url: str, token: str) -> Settings:
    settings = Settings(home=tmp_path)
    write_credentials(settings.credentials_path, Credentials(url=url, token=token))
    return settings


def test_client_uses_the_saved_url_and_token(
    tmp_path: Path, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    http, seen = recorded
    settings = saved_login(tmp_path, "http://saved.test:8700", "lep_saved_secret")

    client = Client(settings=settings, http=http)
    client.health()

    assert client.url == "http://saved.test:8700"
    assert str(seen[0].url) == "http://saved.test:8700/healthz"
    assert seen[0].headers["Authorization"] == "Bearer lep_saved_secret"


def test_client_takes_the_saved_token_for_the_same_url(
    tmp_path: Path, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    http, seen = recorded
    settings = saved_login(tmp_path, "http://saved.test:8700", "lep_saved_secret")

    Client(url="http://saved.test:8700", settings=settings, http=http).health()

    assert seen[0].headers["Authorization"] == "Bearer lep_saved_secret"


def test_client_never_sends_the_saved_token_to_another_server(
    tmp_path: Path, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    http, seen = recorded
    settings = saved_login(tmp_path, "http://saved.test:8700", "lep_saved_secret")

    client = Client(url="http://elsewhere.test:8700", settings=settings, http=http)
    client.health()

    assert client.token is None
    assert "Authorization" not in seen[0].headers
    assert str(seen[0].url) == "http://elsewhere.test:8700/healthz"


def test_explicit_token_and_lepton_token_win_over_the_file(
    tmp_path: Path, recorded: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    http, seen = recorded
    home = tmp_path / "home"
    write_credentials(home / "credentials.json", Credentials(url="http://s.test", token="file"))
    from_env = Settings.from_env({"LEPTON_HOME": str(home), "LEPTON_TOKEN": "lep_env_x"})

    Client(settings=from_env, http=http).health()
    Client(token="lep_arg_x", settings=from_env, http=http).health()

    assert [r.headers["Authorization"] for r in seen] == ["Bearer lep_env_x", "Bearer lep_arg_x"]
    assert {str(r.url) for r in seen} == {"http://s.test/healthz"}
