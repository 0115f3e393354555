"""``client.models``: the registry from Python: list, show, pull, load, register your own model,
aliases, descriptions, deletion, comparison, evaluation jobs, model cards and lineage."""

from __future__ import annotations

import builtins
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lepton.client.bodies import checked
from lepton.errors import InvalidRequest
from lepton.refs import parse_ref
from lepton.schemas import (
    EvaluateSpec,
    Evaluation,
    Job,
    Lineage,
    Model,
    ModelVersion,
)

if TYPE_CHECKING:
    from lepton.client.client import Client
    from lepton.registry.flavours import LoadedModel

__all__ = ["Models"]


def _path(ref: str) -> str:
    """``/api/v1/models/NAME/versions/VERSION`` of a reference (``heart@3``, ``heart@prod``)."""
    name, version = parse_ref(ref)
    return f"/api/v1/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> builtins.list[Model]:
        data = self._client.collect("/api/v1/models")
        return [Model.model_validate(item) for item in data]

    def get(self, ref: str) -> ModelVersion:
        """A model version: ``heart`` (latest), ``heart@3`` or ``heart@production`` (an alias)."""
        return ModelVersion.model_validate(self._client.request("GET", _path(ref)).json())

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        data = self._client.collect(f"/api/v1/models/{quote(name, safe='')}/versions")
        return [ModelVersion.model_validate(item) for item in data]

    def pull(self, ref: str, path: str | os.PathLike[str]) -> Path:
        """Download the packed model (a zip of safe files) to ``path``, verified: the file
        appears only whole and with the registered hash."""
        return self._download(self.get(ref), Path(path))

    def _download(self, version: ModelVersion, target: Path) -> Path:
        return self._client.download(
            f"{_path(version.ref)}/artifact", target, digest=version.artifact_digest
        )

    def load(self, ref: str) -> LoadedModel:
        """Load a registered model into this process (no unpickling): a
        :class:`~lepton.registry.flavours.LoadedModel` with ``predict`` and, for classifiers,
        ``predict_proba``, whatever flavour it was registered in."""
        from lepton.registry.artifacts import unpack
        from lepton.registry.flavours import load_model

        version = self.get(ref)
        with tempfile.TemporaryDirectory(prefix="lepton-load-") as tmp:
            archive = self._download(version, Path(tmp) / "model.zip")
            directory = unpack(archive, Path(tmp) / "model")
            return load_model(directory, signature=version.signature)

    def register(
        self,
        name: str,
        model: Any,
        *,
        signature: dict[str, Any] | None = None,
        description: str | None = None,
        parent: str | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        background: Any = None,
        X_sample: Any = None,
    ) -> ModelVersion:
        """Register a model trained elsewhere: a scikit-learn estimator or pipeline (saved with
        skops), a ``torch.nn.Module`` (exported to ONNX), or the path of an ``.onnx`` file.

        The signature is inferred where the model tells it and checked by running the model on
        a zero row of it; a signature the model refuses is an error and nothing is registered.
        With ``background`` or ``X_sample`` (tabular models), the version also records a global
        explanation for its model card, and ``/explain`` of its deployments measures against
        the background packed with it; without them, the card has no explanations section.

        Args:
            signature: ``{"inputs": [{"name", "dtype"}, ...]}`` for named columns or
                ``{"inputs": {"shape": [...], "dtype": "float32"}}``, and optionally
                ``{"outputs": {"classes": [...]}}`` (needed for a PyTorch or ONNX classifier).
            description: the intended use, quoted by the model card.
            parent: ``name@N`` this model was derived from.
            background: training rows (a DataFrame or 2-D array in the input columns),
                summarised to 100 weighted representatives and packed with the model.
            X_sample: rows explained for the card (200 at most are used); the background's
                rows when not given, and the background when that is not given.
        """
        from lepton.registry.artifacts import pack
        from lepton.registry.byo import prepare_model
        from lepton.registry.explanations import explain_prepared

        explanations: dict[str, Any] | None = None
        with tempfile.TemporaryDirectory(prefix="lepton-register-") as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            flavour, algorithm, task, sig = prepare_model(model, folder, signature)
            plot = None
            if background is not None or X_sample is not None:
                explanations, plot = explain_prepared(folder, sig, background, X_sample)
            archive = Path(tmp) / "model.zip"
            pack(folder, archive)
            blob = self._client.blobs.upload(archive)
        if explanations is not None and plot is not None:
            explanations["plot"] = self._client.blobs.upload(plot).digest
        body = {
            "artifact_digest": blob.digest,
            "flavour": flavour,
            "algorithm": algorithm,
            "task": task,
            "signature": sig,
            "metrics": metrics or {},
            "params": params or {},
            "description": description,
            "parent": parent,
            "explanations": explanations,
        }
        answer = self._client.request(
            "POST", f"/api/v1/models/{quote(name, safe='')}/versions", json=body
        )
        return ModelVersion.model_validate(answer.json())

    def alias(self, ref: str, alias: str) -> ModelVersion:
        """Point ``alias`` at the version ``ref`` names (``heart@3``); moves it if it exists."""
        name, version = parse_ref(ref)
        answer = self._client.request(
            "PUT",
            f"/api/v1/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}",
            json={"version": version},
        )
        return ModelVersion.model_validate(answer.json())

    def delete_alias(self, name: str, alias: str) -> None:
        self._client.request(
            "DELETE", f"/api/v1/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
        )

    def describe(self, ref: str, description: str) -> ModelVersion:
        """Set the intended-use text of a version (what the model card quotes)."""
        answer = self._client.request("PATCH", _path(ref), json={"description": description})
        return ModelVersion.model_validate(answer.json())

    def delete(self, ref: str, *, force: bool = False) -> None:
        """Delete a version; refused while an alias points at it unless ``force``."""
        self._client.request("DELETE", _path(ref), params={"force": force})

    def evaluations(self, ref: str) -> builtins.list[Evaluation]:
        data = self._client.request("GET", f"{_path(ref)}/evaluations").json()
        return [Evaluation.model_validate(item) for item in data]

    def explanation(self, ref: str) -> dict[str, Any]:
        """The global explanation recorded at registration (see ``lepton.explain``)."""
        data: dict[str, Any] = self._client.request("GET", f"{_path(ref)}/explanation").json()
        return data

    def evaluate(
        self,
        ref: str,
        dataset: str,
        *,
        target: str | None = None,
        slices: builtins.list[str] | None = None,
        cpus: float = 1,
        memory_mb: int | None = None,
    ) -> Job:
        """Submit an ``evaluate`` job of ``ref`` on ``dataset``; follow it with
        ``client.jobs.wait``. An alias is resolved now: the job evaluates that version. It
        reserves ``cpus`` and ``memory_mb`` where it runs, as a training job does."""
        with checked("evaluate spec", fix="see lepton evaluate --help"):
            spec = EvaluateSpec(
                model=ref,
                dataset=dataset,
                target=target,
                slices=slices or [],
                cpus=cpus,
                memory_mb=memory_mb,
            )
        answer = self._client.request(
            "POST", "/api/v1/jobs", json={"spec": spec.model_dump(mode="json")}
        )
        return Job.model_validate(answer.json())

    def card(self, ref: str, *, format: str = "markdown") -> str:
        """The model card: Markdown with YAML front matter, or (``format="html"``) one page."""
        return self._client.request("GET", f"{_path(ref)}/card", params={"format": format}).text

    def lineage(self, ref: str, *, kind: str = "model") -> Lineage:
        """Nodes and edges around a model version (``kind="model"``) or a dataset version."""
        if kind not in ("model", "dataset"):
            raise InvalidRequest(
                f"kind must be model or dataset, not {kind!r}",
                fix='pass kind="model" or kind="dataset"',
            )
        answer = self._client.request("GET", f"/api/v1/lineage/{kind}s/{quote(ref, safe='@')}")
        return Lineage.model_validate(answer.json())

    def compare(self, refs: builtins.list[str]) -> dict[str, Any]:
        """Versions side by side: ``{"versions": [...], "metrics": {name: [value or None]},
        "params": {name: [value or None]} (only those that differ), "datasets": [...]}``."""
        if len(refs) < 2:
            raise InvalidRequest(
                "compare needs at least two versions", fix="lepton model compare heart@1 heart@2"
            )
        versions = [self.get(ref) for ref in refs]
        metric_names = sorted({k for v in versions for k in v.metrics})
        param_names = sorted({k for v in versions for k in v.params})
        params = {
            name: [v.params.get(name) for v in versions]
            for name in param_names
            if len({repr(v.params.get(name)) for v in versions}) > 1
        }
        return {
            "versions": [v.ref for v in versions],
            "algorithms": [v.algorithm for v in versions],
            "metrics": {name: [v.metrics.get(name) for v in versions] for name in metric_names},
            "params": params,
            "same_params": [n for n in param_names if n not in params],
            "datasets": [v.dataset_version for v in versions],
        }
