"""A deployment's folder under ``LEPTON_HOME/deployments/<id>``.

One sub-folder per generation holds what its replicas load (the unpacked model version with its
``signature.json``, or the unpacked photon), fetched from the blob store once however many
replicas start from it. It appears whole or not at all: it is built under a temporary name and
renamed; the temporary name says which process builds it (as a spool folder's does), so a
build cut short by a kill is found and removed (``remove_abandoned_builds``). Each replica's
own output goes to ``replicas/<id>.log``; the supervisor merges those, tagged, into
``deployment.log`` with its own event lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.spool import abandoned, owner_tag
from lepton.errors import NotFound
from lepton.store.models import DeploymentRevisionRow, DeploymentRow, ModelVersionRow, PhotonRow

__all__ = [
    "deployment_dir",
    "deployment_log",
    "generation_dir",
    "prepare_generation",
    "remove_abandoned_builds",
    "remove_generation",
    "replica_log",
]


def deployment_dir(home: Path, deployment_id: str) -> Path:
    return home / "deployments" / deployment_id


def deployment_log(home: Path, deployment_id: str) -> Path:
    return deployment_dir(home, deployment_id) / "deployment.log"


def replica_log(home: Path, deployment_id: str, replica_id: str) -> Path:
    return deployment_dir(home, deployment_id) / "replicas" / f"{replica_id}.log"


def generation_dir(home: Path, deployment_id: str, generation: int) -> Path:
    return deployment_dir(home, deployment_id) / f"gen-{generation}"


def prepare_generation(
    ctx: Context,
    session: Session,
    deployment: DeploymentRow,
    spec: DeploymentRow | DeploymentRevisionRow | None = None,
) -> list[str]:
    """The replica arguments that name what to serve, once its folder is in place: what the
    deployment serves now, or ``spec``'s generation (a canary's revision)."""
    spec = spec or deployment
    target = generation_dir(ctx.settings.home, deployment.id, spec.generation)
    if spec.photon_id is not None:
        photon = session.get(PhotonRow, spec.photon_id)
        if photon is None:
            raise NotFound(
                f"the photon deployment '{deployment.name}' serves no longer exists",
                fix=f"serve another: lepton deployment update {deployment.name} --photon NAME",
            )
        args = ["--photon-dir", str(target / "photon"), "--entry", photon.entry]
        if not target.exists():
            _build(ctx, target, photon.digest, photon=True, signature=None)
        return args
    version = session.get(ModelVersionRow, spec.model_version_id)
    if version is None or version.artifact_digest is None:
        raise NotFound(
            f"the model version deployment '{deployment.name}' serves was deleted",
            fix=f"serve another: lepton deployment update {deployment.name} --model REF",
        )
    if not target.exists():
        signature = json.loads(version.signature_json)
        _build(ctx, target, version.artifact_digest, photon=False, signature=signature)
    return ["--model-dir", str(target / "model")]


def _build(ctx: Context, target: Path, digest: str, *, photon: bool, signature: object) -> None:
    from lepton.photon.inspect import extract_package
    from lepton.registry.artifacts import unpack

    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{owner_tag()}@{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o700)
    try:
        archive = tmp / "package.zip"
        with archive.open("wb") as f:
            for chunk in ctx.blobs.open(digest):
                f.write(chunk)
        if photon:
            extract_package(archive, tmp / "photon")
        else:
            folder = unpack(archive, tmp / "model")
            if not (folder / "signature.json").exists():
                (folder / "signature.json").write_text(json.dumps(signature))
        archive.unlink()
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_generation(home: Path, deployment_id: str, generation: int) -> None:
    """Drop a generation's folder once no replica of it runs."""
    shutil.rmtree(generation_dir(home, deployment_id, generation), ignore_errors=True)


def remove_abandoned_builds(home: Path, deployment_id: str) -> None:
    """Drop the half-built generation folders of builds whose process ended (a control plane
    killed while unpacking what it serves)."""
    for tmp in deployment_dir(home, deployment_id).glob(".gen-*"):
        owned = tmp.name.split(".", 2)[2]  # ".gen-3.<owner>@<random>"; a host name has dots
        with contextlib.suppress(OSError):
            if abandoned(owned, tmp.stat().st_mtime):
                shutil.rmtree(tmp, ignore_errors=True)
