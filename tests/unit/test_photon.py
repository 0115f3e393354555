"""The authoring API's checks, and packages: deterministic, never a pickle, verified on load."""

from __future__ import annotations

import hashlib
import json
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import lepton
from lepton.errors import InvalidRequest
from lepton.photon import File, Photon
from lepton.photon.package import build_package, load_class, load_package

SOURCE = textwrap.dedent(
    """
    from lepton import Photon, File
    from helper import greeting

    class Echo(Photon):
        requirement_dependency = ["numpy>=1.26", "pillow"]

        @Photon.handler
        def echo(self, text: str) -> str:
            return greeting(text)

        @Photon.handler("batch/double", max_batch_size=8, max_wait_time=0.01)
        def double(self, x: int) -> int:
            return [v * 2 for v in x]

        @Photon.handler(method="GET")
        def size(self, file: File) -> int:
            return len(file.get_content())
    """
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "app.py").write_text(SOURCE)
    (folder / "helper.py").write_text("def greeting(t):\n    return 'hi ' + t\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\x00junk")
    return folder


def test_handlers_are_collected_with_their_routes() -> None:
    class Base(Photon):
        @Photon.handler
        def ping(self) -> str:
            return "pong"

    class Child(Base):
        @Photon.handler("run", max_batch_size=4)
        def predict(self, x: int) -> int:
            return x

    specs = dict(Child.handler_specs())

    assert specs["ping"].path == "/ping" and specs["ping"].method == "POST"
    assert specs["predict"].path == "/run" and specs["predict"].max_batch_size == 4
    assert specs["predict"].max_wait_time is None  # opportunistic by default


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"method": "PUT"}, "method must be 'GET' or 'POST'"),
        ({"max_batch_size": 0}, "max_batch_size must be a whole number >= 1"),
        ({"max_wait_time": 0.1}, "max_wait_time needs max_batch_size"),
        ({"mount": True}, "mount=True is not supported"),
        ({"speed": "fast"}, "unknown option 'speed'"),
        ({"path": "/metrics"}, "path /metrics is reserved"),
        ({"max_batch_size": 4, "method": "GET"}, "a batched handler must use method='POST'"),
    ],
)
def test_bad_handler_options_fail_at_class_definition(
    options: dict[str, object], error: str
) -> None:
    with pytest.raises(TypeError, match=error):

        class Bad(Photon):
            @Photon.handler(**options)  # type: ignore[arg-type]
            def run(self, x: int) -> int:
                return x


def test_async_handlers_cannot_be_batched() -> None:
    with pytest.raises(TypeError, match="a batched handler must be a plain 'def'"):

        class Bad(Photon):
            @Photon.handler(max_batch_size=4)
            async def run(self, x: int) -> int:
                return x


def test_two_handlers_on_one_route_are_refused() -> None:
    class Twice(Photon):
        @Photon.handler("same")
        def a(self) -> int:
            return 1

        @Photon.handler("same")
        def b(self) -> int:
            return 2

    with pytest.raises(TypeError, match="handlers a and b both serve POST /same"):
        Twice.handler_specs()


def test_file_parses_data_uris_and_base64_but_not_urls() -> None:
    assert File.parse("data:text/plain;base64,aGk=").content == b"hi"
    assert File.parse("data:text/plain;base64,aGk=").content_type == "text/plain"
    assert File.parse("aGk=").get_bytesio().read() == b"hi"
    with pytest.raises(ValueError, match="URLs are not fetched"):
        File.parse("https://example.com/a.png")
    with pytest.raises(ValueError, match="neither a data URI nor valid base64"):
        File.parse("***")
    assert File(b"hi", content_type="text/plain").to_data_uri() == "data:text/plain;base64,aGk="


def test_the_authoring_api_is_exported_from_lepton() -> None:
    assert lepton.Photon is Photon and lepton.File is File
    assert lepton.PNGResponse.media_type == "image/png"
    assert lepton.WAVResponse.media_type == "audio/wav"


def test_package_is_deterministic_with_a_manifest(source: Path, tmp_path: Path) -> None:
    first, manifest = build_package(source, "app.py:Echo", out=tmp_path / "a.zip")
    second, _ = build_package(source, "app.py:Echo", out=tmp_path / "b.zip")

    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        stored = json.loads(archive.read("manifest.json"))
    assert names == ["app.py", "helper.py", "manifest.json"]  # no __pycache__
    assert stored == manifest
    assert manifest["entry"] == {"file": "app.py", "class": "Echo"}
    assert manifest["requirements"] == ["numpy>=1.26", "pillow"]
    assert manifest["handlers"] == [
        {"name": "double", "path": "/batch/double", "method": "POST", "max_batch_size": 8,
         "max_wait_time": 0.01, "timeout": None},
        {"name": "echo", "path": "/echo", "method": "POST", "max_batch_size": None,
         "max_wait_time": None, "timeout": None},
        {"name": "size", "path": "/size", "method": "GET", "max_batch_size": None,
         "max_wait_time": None, "timeout": None},
    ]  # fmt: skip
    app_digest = hashlib.sha256((source / "app.py").read_bytes()).hexdigest()
    assert manifest["files"][0] == {"path": "app.py", "sha256": app_digest, "size": len(SOURCE)}


def test_a_pickle_is_never_packaged(source: Path) -> None:
    (source / "weights.bin").write_bytes(b"\x80\x04\x95junk")
    with pytest.raises(InvalidRequest, match=r"weights\.bin is a pickle"):
        build_package(source, "app.py:Echo")


def test_load_package_checks_every_file_before_importing(source: Path, tmp_path: Path) -> None:
    archive, _ = build_package(source, "app.py:Echo", out=tmp_path / "echo.zip")
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)

    cls, manifest = load_package(folder)
    assert cls.__name__ == "Echo" and manifest["name"] == "echo"
    assert load_package(archive)[0].__name__ == "Echo"

    (folder / "helper.py").write_text("import os; os.system('echo owned')\n")
    with pytest.raises(InvalidRequest, match=r"helper\.py is missing or does not match"):
        load_package(folder)


def test_loading_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import not_a_real_module_xyz\n")
    (tmp_path / "b.py").write_text("from lepton import Photon\nclass Real(Photon):\n    pass\n")

    with pytest.raises(InvalidRequest, match="pip install not_a_real_module_xyz"):
        load_class(tmp_path / "a.py", "A")
    with pytest.raises(InvalidRequest) as caught:
        load_class(tmp_path / "b.py", "Typo")
    assert caught.value.fix == "photons in it: Real"
    with pytest.raises(InvalidRequest, match=r"is not FILE\.py:Class"):
        build_package(tmp_path, "b.py")


# --- the author's mistakes: their error and line, exit 2, never a traceback -------------------


def _photon(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_missing_module_names_it_and_the_requirements(tmp_path: Path) -> None:
    path = _photon(tmp_path, "from lepton import Photon\nimport skimage.io\n")

    with pytest.raises(InvalidRequest) as caught:
        load_class(path, "Echo")

    assert caught.value.message.startswith("app.py imports 'skimage")
    assert "which is not installed, at app.py line 2: import skimage.io" in caught.value.message
    assert "pip install scikit-image" in caught.value.fix  # its pip name, not its import name
    assert "Echo.requirement_dependency" in caught.value.fix


def test_a_name_missing_from_a_package_says_which_import(tmp_path: Path) -> None:
    path = _photon(tmp_path, "from json import no_such_name\n")

    with pytest.raises(InvalidRequest) as caught:
        load_class(path, "Echo")

    assert caught.value.message == (
        "app.py: cannot import name 'no_such_name' from 'json', "
        "at app.py line 1: from json import no_such_name"
    )
    assert "pin it in Echo.requirement_dependency" in caught.value.fix


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("x = 1\ndef f(:\n", "SyntaxError: invalid syntax, at app.py line 2: def f(:"),
        ("x = {}['k']\n", "KeyError: 'k', at app.py line 1: x = {}['k']"),
        (
            "from lepton import Photon\nclass Echo(Photon):\n"
            "    @Photon.handler(max_batch_size=0)\n    def f(self, x: int) -> int:\n"
            "        return x\n",
            "at app.py line 3: @Photon.handler(max_batch_size=0)",
        ),
    ],
    ids=["syntax", "runtime", "handler-options"],
)
def test_a_module_that_fails_to_import_names_its_line(tmp_path: Path, body: str, said: str) -> None:
    _photon(tmp_path, body)

    with pytest.raises(InvalidRequest) as caught:
        build_package(tmp_path, "app.py:Echo")

    assert caught.value.message.startswith("importing app.py failed with ")
    assert said in caught.value.message
    assert caught.value.fix.startswith("fix app.py line ")


def test_a_failure_outside_the_authors_code_is_left_as_a_bug(tmp_path: Path) -> None:
    from lepton.photon.failure import run_failure

    try:
        raise RuntimeError("in lepton itself")
    except RuntimeError as exc:
        assert run_failure(exc, tmp_path, "Echo.init()") is None  # no line under tmp_path


def test_building_a_package_leaves_nothing_in_the_temp_folder(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    archive, _ = build_package(source, "app.py:Echo")
    assert archive.parent == temp and archive.name.startswith("lepton-photon-")
    archive.unlink()  # what the SDK's push does once the bytes are sent
    (source / "weights.pkl").write_bytes(b"x")
    with pytest.raises(InvalidRequest):
        build_package(source, "app.py:Echo")

    assert list(temp.iterdir()) == []
