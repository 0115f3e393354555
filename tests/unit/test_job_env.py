"""Variables a user declares for a script job (``lepton run --env``): they reach the runner's
environment, a platform variable cannot be set or overridden, and bad input is refused before
anything is uploaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lepton.cli.job import parse_env
from lepton.control.scheduler import Scheduler
from lepton.errors import InvalidRequest

if TYPE_CHECKING:
    from conftest import Platform, Started, StubExecutor


def test_declared_variables_reach_the_runner_and_platform_ones_win(
    platform: Platform, started: Started, tmp_path: Path, stub_executor: StubExecutor
) -> None:
    assert started.state is not None
    client = platform.client(platform.admin)
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")

    job = client.jobs.run_script(script, env={"EPOCHS": "5", "GREETING": "hello there"})
    executor = stub_executor
    Scheduler(started.state, executor).reconcile_once()

    [launch] = executor.launches
    assert launch.env["EPOCHS"] == "5" and launch.env["GREETING"] == "hello there"
    assert launch.env["LEPTON_JOB_ID"] == job.id
    assert client.jobs.get(job.id).spec.env == {"EPOCHS": "5", "GREETING": "hello there"}


@pytest.mark.parametrize("name", ["LEPTON_TOKEN", "LEPTON_DATABASE_URL", "1BAD", "A-B", ""])
def test_a_platform_or_malformed_name_is_refused_before_the_upload(
    platform: Platform, tmp_path: Path, name: str
) -> None:
    client = platform.client(platform.admin)
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")

    with pytest.raises(InvalidRequest) as refused:
        client.jobs.run_script(script, env={name: "x"})

    assert "env" in refused.value.message
    assert client.blobs.list() == []
    assert client.jobs.list() == []


def test_the_api_refuses_a_platform_name_too(platform: Platform) -> None:
    spec = {"kind": "script", "script_name": "a.py", "script_digest": "0" * 64}
    r = platform.api.post(
        "/api/v1/jobs",
        json={"spec": {**spec, "env": {"LEPTON_ENCRYPTION_KEY": "x"}}},
        headers={"Authorization": f"Bearer {platform.admin}"},
    )

    assert r.status_code == 422
    assert "env" in r.json()["error"]["message"]


def test_an_env_file_is_read_and_env_options_override_it(tmp_path: Path) -> None:
    env_file = tmp_path / "job.env"
    env_file.write_text("# settings\nEPOCHS=3\nexport NAME='digits'\n\nRATE=\"0.1\"\n")

    assert parse_env(["EPOCHS=5"], env_file) == {"EPOCHS": "5", "NAME": "digits", "RATE": "0.1"}


def test_a_line_without_a_value_names_its_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / "job.env"
    env_file.write_text("EPOCHS=3\noops\n")

    with pytest.raises(InvalidRequest) as refused:
        parse_env([], env_file)

    assert f"{env_file}:2" in refused.value.message
