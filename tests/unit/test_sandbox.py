"""The containment policy, without starting anything: which folders a contained process sees,
what environment it gets, and how each LEPTON_SANDBOX mode decides. The processes themselves
are tested in tests/integration/test_containment.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton.errors import ConfigError
from lepton.sandbox import Sandbox, user_environment
from lepton.settings import Settings


def pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_the_home_is_hidden_and_only_the_work_folder_is_writable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    work = tmp_path / "home" / "jobs" / "j1" / "work"
    served = tmp_path / "home" / "deployments" / "d1" / "gen-1"

    args = Sandbox(settings, "/usr/bin/bwrap").command(
        ["python", "-m", "lepton.jobs.runner", "j1"], work=work, readable=[served]
    )

    tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert str(settings.home.resolve()) in tmpfs
    assert str(Path.home().resolve()) in tmpfs
    assert pairs(args, "--bind") == [(str(work), str(work))]
    assert (str(served), str(served)) in pairs(args, "--ro-bind")
    assert args[args.index("--uid") + 1] == "65534"
    assert "--cap-drop" in args and "--unshare-pid" in args
    assert args[-4:] == ["python", "-m", "lepton.jobs.runner", "j1"]
    # What is bound back read-only never re-exposes the hidden home itself.
    bound = [src for src, _ in pairs(args, "--ro-bind")]
    assert str(settings.home.resolve()) not in bound and str(Path.home().resolve()) not in bound


def test_without_bubblewrap_the_command_runs_as_it_is(tmp_path: Path) -> None:
    sandbox = Sandbox(Settings(home=tmp_path), None, "LEPTON_SANDBOX=none")

    assert sandbox.command(["python", "x.py"], work=tmp_path / "w") == ["python", "x.py"]
    assert not sandbox.active
    assert "WITHOUT a sandbox" in sandbox.describe()


def test_the_environment_is_the_allow_list_and_what_the_launch_adds(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        user_environment={"PATH": "/usr/bin", "LANG": "C.UTF-8"},
    )

    env = user_environment(settings, {"LEPTON_TOKEN": "lep_job", "LEPTON_URL": "http://x"})

    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LEPTON_TOKEN": "lep_job",
        "LEPTON_URL": "http://x",
        "PYTHONUNBUFFERED": "1",
    }


def test_the_machine_allow_list_keeps_secrets_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("LEPTON_ENCRYPTION_KEY", "a2V5")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")

    names = set(Settings.from_env().user_environment)

    assert {"LC_ALL", "OPENBLAS_CORETYPE"} <= names
    assert "AWS_SECRET_ACCESS_KEY" not in names and "LEPTON_ENCRYPTION_KEY" not in names


def test_required_without_bubblewrap_refuses_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)

    with pytest.raises(ConfigError) as refused:
        Sandbox.detect(Settings(home=tmp_path, sandbox="required"))

    assert "bubblewrap" in refused.value.message
    assert "apt-get install bubblewrap" in refused.value.fix


def test_auto_without_bubblewrap_runs_unsandboxed_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)

    sandbox = Sandbox.detect(Settings(home=tmp_path))

    assert not sandbox.active and "not installed" in sandbox.describe()


def test_an_unknown_mode_is_refused_listing_the_modes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auto, bubblewrap, none, required"):
        Sandbox.detect(Settings(home=tmp_path, sandbox="strict"))
