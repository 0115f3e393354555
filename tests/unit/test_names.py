"""Every name the API stores is checked whole: a trailing newline is refused with a 422 that
says what a name may hold, and nothing is stored (``re.match`` with ``$`` let ``evil\\n`` in)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lepton.client import Client
from lepton.errors import InvalidRequest
from lepton.names import fits
from lepton.refs import parse_ref, version_number
from lepton.schemas import DATASET_NAME_PATTERN

if TYPE_CHECKING:
    from conftest import Platform


def photon(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("echo.py", "class Echo:\n    pass\n")
        archive.writestr("manifest.json", json.dumps({"entry": "echo.py:Echo", "name": name}))
    return buffer.getvalue()


def test_names_with_a_trailing_newline_are_refused_and_nothing_is_stored(
    platform: Platform, admin_client: Client
) -> None:
    auth = {"Authorization": f"Bearer {platform.admin}"}
    api = platform.api
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    admin_client.models.register("m", LogisticRegression().fit(X, X.a > 9))

    answers = {
        "photon in manifest": api.post("/api/v1/photons", content=photon("evil\n"), headers=auth),
        "photon by query": api.post(
            "/api/v1/photons", content=photon("ok"), params={"name": "evil\n"}, headers=auth
        ),
        "alias": api.put("/api/v1/models/m/aliases/prod%0A", json={"version": "1"}, headers=auth),
        "secret": api.put("/api/v1/secrets/HF%0A", json={"value": "x" * 8}, headers=auth),
        "workspace": api.post("/api/v1/workspaces", json={"name": "team\n"}, headers=auth),
        "deployment": api.post(
            "/api/v1/deployments", json={"name": "web\n", "model": "m@1"}, headers=auth
        ),
    }

    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 422)
    assert all(r.json()["error"]["fix"] for r in answers.values())
    assert api.get("/api/v1/photons", headers=auth).json() == []
    assert api.get("/api/v1/secrets", headers=auth).json() == []
    assert admin_client.models.get("m@1").aliases == []
    assert api.get("/api/v1/deployments", headers=auth).json() == []
    assert [w["name"] for w in api.get("/api/v1/workspaces", headers=auth).json()] == ["default"]


def test_the_rule_is_the_whole_text() -> None:
    assert fits(DATASET_NAME_PATTERN, "heart")
    assert not fits(DATASET_NAME_PATTERN, "heart\n")
    assert not fits(DATASET_NAME_PATTERN, None)
    assert version_number("3", example="") == 3
    for bad in ("3\n", "٣"):  # a newline, an Arabic-Indic digit
        with pytest.raises(InvalidRequest, match="is not a version"):
            version_number(bad, example="heart@v2")
    assert parse_ref(" heart@v2 ") == ("heart", "v2")
