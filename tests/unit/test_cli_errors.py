"""The CLI in-process, through its entry point ``main()`` as the console script runs it: bad input
is an ``error:`` and a ``fix:`` with the usual exit code, never a traceback; help texts render
whole; tables fit 80 columns. Nothing here reaches a server: every case is answered before one
would be called."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import typer.main

from lepton._version import __version__
from lepton.cli import output
from lepton.cli.main import app, main
from lepton.errors import ConfigError, InvalidRequest
from lepton.schemas import TokenCreate, TrainSpec


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


Lepton = Callable[..., Ran]


@pytest.fixture
def lepton(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Lepton]:
    """``lepton(*args)``: ``main()`` with that command line, at 80 columns, with an empty home
    and no ``LEPTON_*`` variable of the developer's."""
    for name in [k for k in __import__("os").environ if k.startswith("LEPTON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(output.console, "width", 80)
    monkeypatch.setattr(output.err_console, "width", 80)

    def run(*args: str) -> Ran:
        monkeypatch.setattr(sys, "argv", ["lepton", *args])
        with pytest.raises(SystemExit) as ended:
            main()
        captured = capsys.readouterr()
        code = ended.value.code
        return Ran(code if isinstance(code, int) else 0 if code is None else 1, *captured)

    yield run


def no_traceback(ran: Ran) -> bool:
    return "Traceback" not in ran.out + ran.err


# --- lepton --version -------------------------------------------------------------------------


def test_version_prints_the_version(lepton: Lepton) -> None:
    ran = lepton("--version")

    assert ran.code == 0
    assert ran.out.strip() == f"lepton {__version__}"


# --- help texts -------------------------------------------------------------------------------


def _flat(text: str) -> str:
    """Rendered help without rich's box and line breaks, so a wrapped text reads whole."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _helps(capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[str, click.Command, str]]:
    """Every command's rendered ``--help``, from one command tree (rebuilding it for each of the
    60 commands took 15 s). Typer's rich help prints rather than returns it."""
    root = typer.main.get_command(app)

    def walk(
        command: click.Command, ctx: click.Context
    ) -> Iterator[tuple[str, click.Command, str]]:
        command.get_help(ctx)
        yield ctx.command_path, command, capsys.readouterr().out
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))

    yield from walk(root, click.Context(root, info_name="lepton"))


def test_every_help_text_renders_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # "[default: x]" inside a help string is rich markup to rich, which ate it and left a stray
    # " ." behind ("Dataset name ."). Each text the code declares must come out as written.
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: wrapped cells interleave
    seen = 0
    for path, command, shown in _helps(capsys):
        seen += 1
        assert not re.search(r"\w \.(\s|$)", shown), (path, shown)
        flat = _flat(shown)
        for param in command.params:
            text = getattr(param, "help", None)
            if text and "[" not in text:  # texts with markup on purpose are checked above
                assert " ".join(text.split()) in flat, (path, param.name, text)
    assert seen > 50  # the walk reached the subcommands


def test_a_descriptive_default_shows_as_a_default(lepton: Lepton) -> None:
    ran = lepton("token", "create", "--help")

    assert re.search(r"admin, editor or viewer\.\s+\[default: \(viewer\)\]", _flat(ran.out))


# --- durations: lepton token create --expires, train --time-budget, audit --since --------------


def test_an_expiry_past_the_limit_names_it_and_how_to_fix_it(lepton: Lepton) -> None:
    ran = lepton("token", "create", "x", "--expires", "99999999d")

    assert ran.code == 2
    assert no_traceback(ran)
    assert "error: --expires 99999999d is longer than the limit, 3650d" in ran.err
    assert "fix: pass --expires 3650d or less, or leave --expires off" in ran.err


def test_duration_limits_are_the_schemas_own() -> None:
    most = output.most_allowed(TokenCreate, "expires_in")

    assert output.parse_duration("3650d", "--expires", most=most) == most
    TokenCreate(name="x", expires_in=most)  # the largest the CLI lets through is valid
    with pytest.raises(ConfigError):
        output.parse_duration("3651d", "--expires", most=most)
    assert output.spoken(output.most_allowed(TrainSpec, "time_budget_s")) == "1w"


def test_a_time_budget_past_the_limit_is_refused_before_anything_is_sent(lepton: Lepton) -> None:
    ran = lepton("train", "heart", "--time-budget", "8d")

    assert ran.code == 2
    assert "--time-budget 8d is longer than the limit, 1w" in ran.err
    assert no_traceback(ran)


def test_since_further_back_than_a_date_reaches_means_since_the_beginning() -> None:
    assert output.parse_since("99999999d") == datetime.min.replace(tzinfo=UTC)
    assert output.parse_since("999999999999d") == datetime.min.replace(tzinfo=UTC)


# --- other bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("token", "revoke", ""),
        ("secret", "rm", " "),
        ("secret", "create", "", "--value", "x"),
        ("deployment", "show", ""),
        ("deployment", "scale", "", "2"),
        ("job", "show", ""),
        ("photon", "rm", ""),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_blank_name_is_a_usage_error(lepton: Lepton, args: tuple[str, ...]) -> None:
    # A blank name left "/api/v1/tokens/" as the path: the server redirected, and the CLI died
    # parsing the redirect's empty body as JSON.
    ran = lepton(*args)

    assert ran.code == 2
    assert "is empty" in ran.err
    assert no_traceback(ran)


def test_a_port_out_of_range_is_a_clear_error(
    lepton: Lepton, monkeypatch: pytest.MonkeyPatch
) -> None:
    option = lepton("up", "--port", "99999")
    monkeypatch.setenv("LEPTON_PORT", "99999")
    variable = lepton("up")

    assert option.code == 2 and "--port" in option.err
    assert variable.code == 2
    assert "cannot listen on port 99999: ports are 1 to 65535" in variable.err
    assert "LEPTON_PORT" in variable.err
    assert no_traceback(option) and no_traceback(variable)


def test_an_error_quoting_brackets_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    # Printed through rich: "[a-z0-9]" was taken for markup and vanished from the message.
    with pytest.raises(SystemExit):
        output.fail(InvalidRequest("name must match '^[a-z0-9][a-z-]*$'", fix="use [a-z]"))

    err = capsys.readouterr().err
    assert "'^[a-z0-9][a-z-]*$'" in err
    assert "fix: use [a-z]" in err


def test_a_download_into_a_missing_folder_is_refused_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        output.output_file(tmp_path / "nope" / "x.csv", "heart.csv")

    assert "does not exist" in caught.value.message
    assert "mkdir -p" in caught.value.fix
    assert output.output_file(tmp_path, "in/heart.csv") == tmp_path / "heart.csv"
    assert output.output_file(tmp_path / "x.csv", "heart.csv") == tmp_path / "x.csv"


def test_a_failed_write_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught, output.writing(tmp_path / "x.csv"):
        raise OSError(28, "No space left on device")

    assert caught.value.message == f"cannot write {tmp_path / 'x.csv'}: No space left on device"


# --- lepton photon run ------------------------------------------------------------------------


def test_photon_run_reports_a_failing_init_as_its_line(lepton: Lepton, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from lepton.photon import Photon\n"
        "\n"
        "class Echo(Photon):\n"
        "    def init(self):\n"
        "        self.scale = 1 / 0\n"
        "\n"
        "    @Photon.handler\n"
        "    def echo(self, x: str) -> str:\n"
        "        return x\n"
    )

    ran = lepton("photon", "run", "-m", f"{tmp_path / 'app.py'}:Echo", "--port", "0")

    assert ran.code == 2
    assert no_traceback(ran)
    assert "error: Echo.init() failed with ZeroDivisionError: division by zero" in ran.err
    assert "app.py line 5: self.scale = 1 / 0" in ran.err
    assert "fix: fix app.py line 5" in ran.err


def test_photon_run_reports_a_failed_import(lepton: Lepton, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import lepton_no_such_module\n")

    ran = lepton("photon", "run", "-m", f"{tmp_path / 'app.py'}:Echo")

    assert ran.code == 2
    assert no_traceback(ran)
    assert "app.py imports 'lepton_no_such_module', which is not installed" in ran.err
    assert "Echo.requirement_dependency" in ran.err


# --- tables at 80 columns ---------------------------------------------------------------------

AUDIT = ["time (UTC)", "actor", "action", "resource", "result"]
EVENTS = [
    ("12-02 05:16", "admin", "token.create", "token/e8dff332cb4772fa", "201 success"),
    ("12-02 05:16", "job-9f8e7d6c5b4a3210", "job.record_metrics", "jobs/9f8e7d6c5b4a3210/metrics",
     "201 success"),
    ("2025-12-02 05:16", "(no token)", "dataset.split_assignment",
     "datasets/heart-disease/versions/12/splits", "422 rejected"),
]  # fmt: skip
BREAKS = {"actor": "-_:", "action": "._", "resource": "/-"}


def test_a_wide_table_with_breaks_fits_80_columns_and_keeps_ids_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output.console, "width", 80)

    output.table(AUDIT, EVENTS, breaks=BREAKS)

    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    text = "\n".join(lines)
    for whole in ("e8dff332cb4772fa", "9f8e7d6c5b4a3210", "12-02 05:16"):
        assert whole in text, text  # never folded mid-id
    assert any("2025-12-02 05:16" in line for line in lines)


def test_a_table_that_fits_keeps_its_box(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output.console, "width", 160)

    output.table(AUDIT, EVENTS, breaks=BREAKS)

    out = capsys.readouterr().out
    assert "┃ time (UTC)" in out
    assert "jobs/9f8e7d6c5b4a3210/metrics" in out  # one line: nothing had to break


def test_the_time_drops_its_year_only_within_this_year() -> None:
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)

    assert output.when_short(datetime(2026, 1, 3, 4, 5, tzinfo=UTC), now) == "01-03 04:05"
    assert output.when_short(datetime(2025, 12, 31, 23, 59, tzinfo=UTC), now) == "2025-12-31 23:59"
