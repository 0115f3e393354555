"""Per-token attributions for the text classifiers.

* TF-IDF + a linear head (``LinearTfidf``), exact: the class's log-odds is
  ``intercept + sum_j w_j * tfidf_j(text)``. Each n-gram's term ``w_j * tfidf_j`` is shared
  equally among its occurrences in the text, and an occurrence's share equally among the n words
  it spans. The words' attributions therefore add up to the log-odds minus the intercept (the
  log-odds of a text with no known word), exactly.
* Anything else, the MiniLM embedding model included (``Occlusion``): a word's attribution is
  how much the explained class's probability drops when that one word is removed. It needs no
  tokenizer, nothing downloaded, and ``words + 2`` predictions in one batch; it is not additive
  (words interact through the embedding), which the explanation says (``additive: false``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.explain.explanation import Explanation, RowExplanation, json_label
from lepton.explain.targets import check_count, check_no_overlay, class_columns, target_indices

__all__ = ["MAX_TEXTS", "MAX_WORDS", "LinearTfidf", "Occlusion", "tfidf_parts"]

MAX_TEXTS = 100
"""Texts per call; occlusion embeds ``words + 2`` texts for each."""

MAX_WORDS = 512
"""Words per text for occlusion: 512 removals of one word each cost ~1 s of MiniLM on 2 cores."""


def tfidf_parts(model: Any) -> tuple[Any, Any] | None:
    """``(vectorizer, linear head)`` of a TF-IDF word model, or None for any other model."""
    from lepton.explain.tabular import is_linear, split_pipeline

    pre, head = split_pipeline(model)
    steps = getattr(pre, "steps", None) or []
    if len(steps) != 1 or not is_linear(head):
        return None
    vectorizer = steps[0][1]
    if type(vectorizer).__name__ != "TfidfVectorizer" or vectorizer.analyzer != "word":
        return None
    return vectorizer, head


class LinearTfidf:
    """Exact per-token attributions of a TF-IDF + logistic-regression model, in log-odds."""

    kind = "text"
    method = "linear_tfidf"

    def __init__(self, model: Any) -> None:
        parts = tfidf_parts(model)
        if parts is None:
            raise InvalidRequest(
                f"{type(model).__name__} is not a TF-IDF + linear model",
                fix="explain it by occlusion",
            )
        self.model = model
        self.vectorizer, self.head = parts
        self.classes: list[Any] = list(model.classes)
        self.coef = np.atleast_2d(np.asarray(self.head.coef_, dtype=np.float64))
        self.intercept = np.atleast_1d(np.asarray(self.head.intercept_, dtype=np.float64))
        self.output_space = "log_odds" if self.coef.shape[0] == 1 else "logit"
        self.preprocess = self.vectorizer.build_preprocessor()
        self.tokenize = self.vectorizer.build_tokenizer()
        self.stop = self.vectorizer.get_stop_words()

    def words(self, text: str) -> list[str]:
        """The words the vectorizer counts, in order (lower-cased, stop words removed)."""
        tokens = self.tokenize(self.preprocess(text))
        return [t for t in tokens if not self.stop or t not in self.stop]

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        from lepton.algorithms.sklearn_model import as_texts, class_proba

        check_no_overlay(overlay, self.kind)
        texts = as_texts(X)
        check_count(len(texts), MAX_TEXTS)
        counts = self.vectorizer.transform(texts).tocsr()
        proba = class_proba(self.head, counts, len(self.classes))
        # The log-odds in float64 (the vectorizer yields float32): the same number the head
        # computes, to ~1e-7, and the attributions add up to it to ~1e-15.
        raw = np.asarray(counts.astype(np.float64) @ self.coef.T) + self.intercept
        wanted = target_indices(self.classes, target, proba.argmax(axis=1))
        cols, signs = class_columns(self.head.classes_, wanted, raw.shape[1], self.classes)
        out = Explanation(self.kind, self.method, self.output_space, additive=True)
        for i, text in enumerate(texts):
            words = self.words(text)
            weights = self.coef[cols[i]] * signs[i]
            row = counts.getrow(i)
            terms = dict(
                zip(row.indices.tolist(), (row.data * weights[row.indices]).tolist(), strict=True)
            )
            attributions = self._share(words, terms)
            base = float(self.intercept[cols[i]] * signs[i])
            output = float(raw[i, cols[i]] * signs[i])
            out.rows.append(
                RowExplanation(
                    prediction=json_label(self.classes[int(proba[i].argmax())]),
                    target=json_label(self.classes[int(wanted[i])]),
                    output=output,
                    base_value=base,
                    attributions=attributions,
                    names=words,
                    probability=float(proba[i, wanted[i]]),
                    delta=output - base - float(attributions.sum()),
                )
            )
        return out

    def _share(self, words: list[str], terms: dict[int, float]) -> np.ndarray:
        """Each n-gram's term shared over its occurrences, then over the words it spans."""
        low, high = self.vectorizer.ngram_range
        vocabulary = self.vectorizer.vocabulary_
        found: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for n in range(low, high + 1):
            for start in range(len(words) - n + 1):
                j = vocabulary.get(" ".join(words[start : start + n]))
                if j is not None:
                    found[j].append((start, n))
        attributions = np.zeros(len(words))
        for j, term in terms.items():
            places = found.get(j, [])
            for start, n in places:
                attributions[start : start + n] += term / len(places) / n
        return attributions


class Occlusion:
    """Leave-one-word-out attributions for any text classifier, in probability."""

    kind = "text"
    method = "occlusion"
    output_space = "probability"

    def __init__(self, model: Any) -> None:
        if model.classes is None:
            raise InvalidRequest(
                "text explanations are for classifiers; this model has no classes",
                fix="explain a text classification model",
            )
        self.model = model
        self.classes: list[Any] = list(model.classes)

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        from lepton.algorithms.sklearn_model import as_texts

        check_no_overlay(overlay, self.kind)
        texts = as_texts(X)
        check_count(len(texts), MAX_TEXTS)
        split = [text.split() for text in texts]
        longest = max(len(words) for words in split)
        if longest > MAX_WORDS:
            raise InvalidRequest(
                f"a text has {longest:,} words; occlusion explains at most {MAX_WORDS} per text",
                fix=f"explain a shorter excerpt (up to {MAX_WORDS} words)",
            )
        batch = [*texts, ""]
        for words in split:
            batch += [" ".join(words[:k] + words[k + 1 :]) for k in range(len(words))]
        proba = np.asarray(self.model.predict_proba(batch), dtype=np.float64)
        full, empty = proba[: len(texts)], proba[len(texts)]
        wanted = target_indices(self.classes, target, full.argmax(axis=1))
        out = Explanation(self.kind, self.method, self.output_space, additive=False)
        at = len(texts) + 1
        for i, words in enumerate(split):
            c = int(wanted[i])
            without = proba[at : at + len(words), c]
            at += len(words)
            attributions = full[i, c] - without
            out.rows.append(
                RowExplanation(
                    prediction=json_label(self.classes[int(full[i].argmax())]),
                    target=json_label(self.classes[c]),
                    output=float(full[i, c]),
                    base_value=float(empty[c]),
                    attributions=attributions,
                    names=words,
                    probability=float(full[i, c]),
                    delta=float(full[i, c] - empty[c] - attributions.sum()),
                )
            )
        return out
