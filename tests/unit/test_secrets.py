"""Workspace secrets on the real app: set, listed by name, deleted; the value never comes back
from any answer, list, job view or audit event; it is sealed in the database, bound to its row;
and a script job that names one gets its value at start, and its log and error show ``***``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from lepton.client import Client
from lepton.control.jobs import job_log_path
from lepton.control.plane import Control
from lepton.control.scheduler import Scheduler
from lepton.errors import BlobIntegrityError, InvalidRequest, NotFound, PermissionDenied
from lepton.schemas import JobState
from lepton.store.models import SecretRow

if TYPE_CHECKING:
    from conftest import Platform, StubExecutor

VALUE = "hf_s3cr3t-Value-0123456789"


@pytest.fixture
def client(admin_client: Client) -> Client:
    return admin_client


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text("import os\nprint(os.environ['HF_TOKEN'])\n")
    return path


def test_a_secret_is_created_listed_replaced_and_deleted_and_its_value_never_answered(
    platform: Platform, client: Client
) -> None:
    auth = {"Authorization": f"Bearer {platform.admin}"}
    answers = [platform.api.put("/api/v1/secrets/HF_TOKEN", json={"value": VALUE}, headers=auth)]
    created = answers[0].json()
    answers.append(
        platform.api.put("/api/v1/secrets/HF_TOKEN", json={"value": "v2" * 4}, headers=auth)
    )
    answers.append(platform.api.put("/api/v1/secrets/AWS_KEY", json={"value": VALUE}, headers=auth))
    answers.append(platform.api.get("/api/v1/secrets", headers=auth))
    listed = answers[-1].json()
    answers.append(platform.api.get("/api/v1/secrets", params={"limit": 1}, headers=auth))
    answers.append(platform.api.delete("/api/v1/secrets/AWS_KEY", headers=auth))
    answers.append(platform.api.get("/api/v1/audit", headers=auth))

    assert [r.status_code for r in answers] == [200] * len(answers)
    assert all(VALUE not in r.text and "v2v2" not in r.text for r in answers)
    assert [s["name"] for s in listed] == ["AWS_KEY", "HF_TOKEN"]
    replaced = next(s for s in listed if s["name"] == "HF_TOKEN")
    assert replaced["created_at"] == created["created_at"] < replaced["updated_at"]
    assert 'rel="next"' in answers[4].headers["Link"]
    assert [s.name for s in client.secrets.list()] == ["HF_TOKEN"]
    events = {(e.action, e.resource) for e in client.audit.list()}
    assert {("secret.put", "secret/HF_TOKEN"), ("secret.delete", "secret/AWS_KEY")} <= events


@pytest.mark.parametrize(
    ("name", "why"),
    [("LEPTON_TOKEN", "LEPTON_*"), ("1BAD", "not a secret name"), ("A-B", "not a secret name")],
)
def test_a_platform_or_malformed_name_is_refused(client: Client, name: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.secrets.create(name, VALUE)

    assert why in refused.value.message
    assert client.secrets.list() == []


@pytest.mark.parametrize("value", ["", "a\x00b", "x" * 32769])
def test_an_empty_nul_or_oversized_value_is_refused(client: Client, value: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.secrets.create("HF_TOKEN", value)

    assert "value" in refused.value.message


def test_deleting_a_missing_secret_is_a_404_with_the_list_command(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.secrets.delete("HF_TOKEN")

    assert "lepton secret list" in missing.value.fix


def test_viewers_list_names_but_only_editors_set_them_and_scoped_tokens_do_nothing(
    platform: Platform, client: Client, control: Control, stub_executor: StubExecutor, script: Path
) -> None:
    client.secrets.create("HF_TOKEN", VALUE)
    viewer = platform.client(platform.token(platform.admin, role="viewer"))
    editor = platform.client(platform.token(platform.admin, role="editor"))
    job = client.jobs.run_script(script, secrets=["HF_TOKEN"])
    Scheduler(control, stub_executor).reconcile_once()
    runner = platform.client(stub_executor.launches[0].env["LEPTON_TOKEN"])

    assert [s.name for s in viewer.secrets.list()] == ["HF_TOKEN"]
    editor.secrets.create("OTHER", VALUE)
    editor.secrets.delete("OTHER")
    for denied in (
        lambda: viewer.secrets.create("HF_TOKEN", "stolen!"),
        lambda: viewer.secrets.delete("HF_TOKEN"),
        runner.secrets.list,
        lambda: runner.secrets.create("HF_TOKEN", "stolen!"),
        lambda: runner.secrets.delete("HF_TOKEN"),
    ):
        with pytest.raises(PermissionDenied):
            denied()
    assert client.jobs.get(job.id).state == JobState.running  # the runner's token was real


def test_the_value_is_sealed_in_the_database_and_opens_only_in_its_own_row(
    client: Client, control: Control
) -> None:
    client.secrets.create("HF_TOKEN", VALUE)
    client.secrets.create("OTHER", "another value")
    with control.ctx.sessions() as session:
        rows = {r.name: r for r in session.scalars(select(SecretRow))}
        sealed = rows["HF_TOKEN"].ciphertext
        workspace = rows["HF_TOKEN"].workspace_id
        assert VALUE.encode() not in sealed and b"s3cr3t" not in sealed
        assert control.secrets.resolve(session, workspace, ["X=HF_TOKEN"]) == {"X": VALUE}

        rows["OTHER"].ciphertext = sealed  # moved to another name: it must not open there
        session.flush()
        with pytest.raises(BlobIntegrityError):
            control.secrets.resolve(session, workspace, ["OTHER"])
        session.rollback()


# --- script jobs -------------------------------------------------------------------------------


def test_a_job_gets_the_value_at_start_but_its_spec_and_audit_hold_only_names(
    client: Client, control: Control, stub_executor: StubExecutor, script: Path
) -> None:
    client.secrets.create("HF_TOKEN", VALUE)
    client.secrets.create("DB_PASSWORD", "p4ssw0rd-of-the-db")

    job = client.jobs.run_script(
        script, env={"EPOCHS": "3"}, secrets=["HF_TOKEN", "PGPASSWORD=DB_PASSWORD"]
    )
    Scheduler(control, stub_executor).reconcile_once()

    [launch] = stub_executor.launches
    assert launch.env["HF_TOKEN"] == VALUE
    assert launch.env["PGPASSWORD"] == "p4ssw0rd-of-the-db"
    assert launch.env["EPOCHS"] == "3" and launch.env["LEPTON_JOB_ID"] == job.id
    shown = client.request("GET", f"/api/v1/jobs/{job.id}").text
    assert '"secrets":["HF_TOKEN","PGPASSWORD=DB_PASSWORD"]' in shown
    everything = shown + client.request("GET", "/api/v1/jobs").text
    everything += client.request("GET", "/api/v1/audit").text
    assert VALUE not in everything and "p4ssw0rd" not in everything


def test_a_missing_secret_is_a_422_naming_it_and_the_command_that_makes_it(
    client: Client, script: Path
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.jobs.run_script(script, secrets=["HF_TOKEN"])

    assert "'HF_TOKEN'" in refused.value.message
    assert refused.value.fix == "create it first: lepton secret create HF_TOKEN"
    assert client.jobs.list() == []


@pytest.mark.parametrize(
    ("refs", "env", "why"),
    [
        (["LEPTON_TOKEN=HF_TOKEN"], {}, "LEPTON_*"),
        (["HF_TOKEN", "HF_TOKEN"], {}, "both set HF_TOKEN"),
        (["HF_TOKEN"], {"HF_TOKEN": "x"}, "both env and secrets"),
        (["HF-TOKEN"], {}, "secrets"),
    ],
)
def test_a_reference_that_cannot_work_is_refused_before_the_upload(
    client: Client, script: Path, refs: list[str], env: dict[str, str], why: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.jobs.run_script(script, secrets=refs, env=env)

    assert why in refused.value.message
    assert client.blobs.list() == []


def test_a_secret_deleted_after_submit_fails_the_job_saying_which(
    client: Client, control: Control, stub_executor: StubExecutor, script: Path
) -> None:
    client.secrets.create("HF_TOKEN", VALUE)
    job = client.jobs.run_script(script, secrets=["HF_TOKEN"])
    client.secrets.delete("HF_TOKEN")

    Scheduler(control, stub_executor).reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed and stub_executor.launches == []
    assert failed.error is not None
    assert "secret 'HF_TOKEN' was deleted" in failed.error.message
    assert "lepton secret create HF_TOKEN" in failed.error.fix


def test_the_job_log_and_error_show_stars_even_after_the_secret_changes_or_goes(
    platform: Platform,
    client: Client,
    control: Control,
    stub_executor: StubExecutor,
    script: Path,
) -> None:
    client.secrets.create("HF_TOKEN", VALUE)
    client.secrets.create("PIN", "123")  # too short to mask: said in the CLI help and docs
    job = client.jobs.run_script(script, secrets=["HF_TOKEN", "PIN"])
    Scheduler(control, stub_executor).reconcile_once()
    log = job_log_path(control.ctx.settings.home, job.id)
    with log.open("a") as f:
        f.write(f"token is {VALUE}; pin is 123\nhalf of it: {VALUE[:10]}")
    client.secrets.create("HF_TOKEN", "a new value")
    client.secrets.delete("HF_TOKEN")

    running = client.jobs.logs(job.id)
    runner = platform.client(stub_executor.launches[0].env["LEPTON_TOKEN"])
    runner.request(
        "POST",
        f"/api/v1/jobs/{job.id}/finish",
        json={"state": "failed", "error": {"message": f"KeyError: {VALUE!r}", "fix": ""}},
    )
    ended = "".join(text for _, text in client.jobs.follow(job.id, poll_s=0))

    assert "token is ***; pin is 123\n" in running.text
    assert not running.text.endswith(VALUE[:10])  # could be the start of the value: held back
    assert ended.count("***") == 1 and ended.endswith(f"half of it: {VALUE[:10]}")
    error = client.jobs.get(job.id).error
    assert error is not None and error.message == "KeyError: '***'"
