"""A user's session with the CLI: status, tokens, login, workspaces, audit, and the exit codes
scripts rely on (cli/output.py): 3 not allowed, 4 not found, 5 conflict, 6 no server."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli, Result, ServerProcess

SECRET = re.compile(r"\blep_([0-9a-f]{16})_[A-Za-z0-9_-]{20,}")


def no_traceback(result: Result) -> bool:
    return "Traceback" not in result.err and "Traceback" not in result.out


def create_token(lepton: Cli, name: str, *options: str) -> tuple[str, str]:
    """``lepton token create``; returns the new token's id and secret."""
    result = lepton("token", "create", name, *options)
    assert result.code == 0, result.err
    found = SECRET.search(result.out)
    assert found, result.out
    return found.group(1), found.group(0)


def viewer_session(
    lepton: Cli, cli: type[Cli], server: ServerProcess, home: Path, name: str
) -> Cli:
    """A second user, logged in with a viewer token of their own."""
    _, secret = create_token(lepton, name, "--role", "viewer")
    viewer = cli(home)
    result = viewer("login", "--url", server.url, "--token", secret)
    assert result.code == 0, result.err
    return viewer


def test_help_lists_the_commands(lepton: Cli) -> None:
    result = lepton("--help")

    assert result.code == 0
    for command in ("up", "status", "login", "workspace", "token", "secret", "audit"):
        assert re.search(rf"^\W*{command}\b", result.out, re.MULTILINE), command
    assert no_traceback(result)


def test_status_shows_the_server_and_the_default_workspace(
    lepton: Cli, server: ServerProcess
) -> None:
    result = lepton("status")

    assert result.code == 0, result.err
    assert re.search(r"workspace\W+default\b", result.out)
    assert server.url in result.out
    assert "encrypted" in result.out


def test_token_create_prints_the_secret_and_list_shows_the_whole_id(lepton: Cli) -> None:
    created = lepton("token", "create", "ci", "--role", "viewer", "--expires", "1d")
    assert created.code == 0, created.err
    found = SECRET.search(created.out)
    assert found, created.out
    token_id, secret = found.group(1), found.group(0)
    assert "viewer" in created.out
    assert "expires" in created.out

    listed = lepton("token", "list")

    assert listed.code == 0, listed.err
    # Whole, on one line: users copy ids from here into `lepton token revoke`.
    assert re.search(rf"\b{token_id}\b", listed.out), listed.out
    assert secret not in listed.out
    assert secret.split("_", 2)[2] not in listed.out


def test_a_viewer_is_refused_with_exit_3_and_no_traceback(
    lepton: Cli, cli: type[Cli], server: ServerProcess, tmp_path: Path
) -> None:
    viewer = viewer_session(lepton, cli, server, tmp_path / "viewer-home", "ci-viewer")
    saved = tmp_path / "viewer-home" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["url"] == server.url

    status = viewer("status")
    refused = viewer("token", "create", "x")

    assert status.code == 0 and "viewer" in status.out
    assert refused.code == 3
    assert no_traceback(refused)
    assert refused.err.startswith("error:")
    assert "admin" in refused.err  # what was missing
    assert "fix:" in refused.err


def test_revoking_an_unknown_token_exits_4(lepton: Cli) -> None:
    result = lepton("token", "revoke", "0123456789abcdef")

    assert result.code == 4
    assert "0123456789abcdef" in result.err
    assert "lepton token list" in result.err  # the fix
    assert no_traceback(result)


def test_creating_a_workspace_twice_exits_5(lepton: Cli) -> None:
    first = lepton("workspace", "create", "team-a")
    again = lepton("workspace", "create", "team-a")
    listed = lepton("workspace", "list")

    assert first.code == 0, first.err
    assert SECRET.search(first.out)  # its first admin token, shown once
    assert "lepton login" in first.out
    assert again.code == 5
    assert "already exists" in again.err
    assert no_traceback(again)
    assert re.search(r"\bteam-a\b", listed.out)


def fits(result: Result, columns: int = 80) -> bool:
    return all(len(line) <= columns for line in result.out.splitlines())


def test_audit_lists_a_token_creation(lepton: Cli) -> None:
    token_id, _ = create_token(lepton, "audited", "--role", "editor")

    result = lepton("audit", "--action", "token.create")  # at 80 columns

    assert result.code == 0, result.err
    assert fits(result), result.out
    assert "token.create" in result.out
    assert re.search(rf"token/{token_id}\b", result.out), result.out  # the id whole, copyable
    assert "201 success" in result.out


def test_audit_shows_a_denied_attempt(
    lepton: Cli, cli: type[Cli], server: ServerProcess, tmp_path: Path
) -> None:
    viewer = viewer_session(lepton, cli, server, tmp_path / "viewer-home", "snooper")
    assert viewer("workspace", "create", "not-allowed").code == 3

    result = lepton("audit", "--since", "1h", "--outcome", "denied")  # at 80 columns

    assert result.code == 0, result.err
    assert fits(result), result.out
    row = next((line for line in result.out.splitlines() if "snooper" in line), None)
    assert row is not None, result.out
    assert "workspace.create" in row
    assert "403 denied" in row
    assert "success" not in result.out


def test_audit_with_many_kinds_of_event_fits_80_columns(lepton: Cli) -> None:
    lepton("secret", "create", "AUDIT_WIDTH_CHECK", stdin="value")
    lepton("workspace", "create", "a-workspace-with-a-long-name-for-width")

    result = lepton("audit", "--limit", "200")

    assert result.code == 0, result.err
    assert fits(result), result.out
    assert "secret/AUDIT_WIDTH_CHECK" in result.out


def test_version_prints_the_version(stranger: Cli) -> None:
    result = stranger("--version")

    assert result.code == 0, result.err
    assert re.fullmatch(r"lepton \d+\.\d+\.\d+\S*\n", result.out), result.out


def test_a_token_with_a_trailing_newline_still_reaches_the_server(
    stranger: Cli, server: ServerProcess
) -> None:
    # It was reported as "cannot reach the server" (exit 6): httpx refused the header.
    token = json.loads((server.home / "credentials.json").read_text())["token"]

    result = stranger("status", env={"LEPTON_URL": server.url, "LEPTON_TOKEN": token + "\n"})
    broken = stranger("status", env={"LEPTON_URL": server.url, "LEPTON_TOKEN": "lep_a\nb"})

    assert result.code == 0, result.err
    assert re.search(r"workspace\W+default\b", result.out)
    assert broken.code == 2
    assert "LEPTON_TOKEN holds '\\n' at character 6" in broken.err
    assert no_traceback(broken)


def test_an_expiry_past_the_limit_says_the_limit(lepton: Cli) -> None:
    result = lepton("token", "create", "forever", "--expires", "99999999d")

    assert result.code == 2
    assert no_traceback(result)
    assert "3650d" in result.err
    assert "fix:" in result.err


def test_status_without_a_server_exits_6_and_says_lepton_up(stranger: Cli) -> None:
    result = stranger("status")

    assert result.code == 6
    assert "no Lepton server is configured" in result.err
    assert "lepton up" in result.err
    assert no_traceback(result)


def test_json_output_parses(lepton: Cli, server: ServerProcess) -> None:
    status = lepton("status", "--json")
    tokens = lepton("token", "list", "--json")
    workspaces = lepton("workspace", "list", "--json")
    events = lepton("audit", "--json", "--limit", "5")
    created = lepton("token", "create", "json-ci", "--json")

    for result in (status, tokens, workspaces, events, created):
        assert result.code == 0, result.err
    assert json.loads(status.out)["workspace"] == "default"
    assert json.loads(status.out)["token"]["role"] == "admin"
    assert {t["name"] for t in json.loads(tokens.out)} >= {"admin"}
    assert "default" in {w["name"] for w in json.loads(workspaces.out)}
    assert 1 <= len(json.loads(events.out)) <= 5
    token = json.loads(created.out)
    assert token["role"] == "viewer"  # the default role
    assert SECRET.fullmatch(token["token"])
