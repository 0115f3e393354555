"""Secrets through the CLI as a user drives it: ``lepton secret create`` from stdin or
``--value``, ``list`` with names only, ``rm``; ``lepton run --secret`` refusing a missing secret
with the command that makes it, and a job that prints its secret showing ``***`` in its log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli, Result

VALUE = "ghp_e2eSecretValue42"
JOB_TIMEOUT_S = 180


def ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    assert "Traceback" not in result.err + result.out
    return result


def from_stdin(lepton: Cli, name: str, value: str) -> Result:
    """``printf '%s\\n' VALUE | lepton secret create NAME``: the value never on a command line."""
    return lepton("secret", "create", name, stdin=value + "\n")


def test_create_list_replace_and_remove_never_print_the_value(lepton: Cli) -> None:
    created = ok(from_stdin(lepton, "GH_TOKEN", VALUE))
    assert "Created secret GH_TOKEN" in created.out

    replaced = ok(lepton("secret", "create", "GH_TOKEN", "--value", "abc"))
    listed = ok(lepton("secret", "list"))
    as_json = json.loads(ok(lepton("secret", "list", "--json")).out)
    ok(lepton("secret", "rm", "GH_TOKEN"))
    again = lepton("secret", "rm", "GH_TOKEN")

    assert "Replaced the value of secret GH_TOKEN" in replaced.out
    assert "not masked" in replaced.out  # three characters: said, not silently unmasked
    assert "GH_TOKEN" in listed.out and VALUE not in listed.out + created.out
    assert [s["name"] for s in as_json] == ["GH_TOKEN"] and "value" not in as_json[0]
    assert again.code == 4 and "lepton secret list" in again.err


def test_a_platform_name_is_refused_with_exit_2(lepton: Cli) -> None:
    refused = lepton("secret", "create", "LEPTON_TOKEN", "--value", VALUE)

    assert refused.code == 2 and "LEPTON_*" in refused.err


def test_run_with_a_missing_secret_says_how_to_make_it(lepton: Cli, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('never runs')\n")

    refused = lepton("run", str(script), "--secret", "NO_SUCH_TOKEN", "--detach")

    assert refused.code == 2, refused.out
    assert "lepton secret create NO_SUCH_TOKEN" in " ".join(refused.err.split())


def test_a_job_prints_its_secret_and_the_log_shows_stars(lepton: Cli, tmp_path: Path) -> None:
    ok(from_stdin(lepton, "RUN_TOKEN", VALUE))
    script = tmp_path / "job.py"
    script.write_text("import os\nprint('token', os.environ['TOKEN'], len(os.environ['TOKEN']))\n")

    followed = ok(lepton("run", str(script), "--secret", "TOKEN=RUN_TOKEN", timeout=JOB_TIMEOUT_S))

    assert f"token *** {len(VALUE)}" in followed.out
    assert VALUE not in followed.out + followed.err
