"""Text explanations: exact TF-IDF token attributions, and occlusion, on a synthetic corpus.

Each review is filler words around one deciding word ("excellent" or "awful"); the label
follows that word alone, so it must be the top-ranked token of every review.
"""

from __future__ import annotations

import functools

import numpy as np
import orjson
import pytest

from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.sklearn_model import SklearnModel
from lepton.algorithms.text import TfidfLinear
from lepton.errors import InvalidRequest
from lepton.explain import explainer_for
from lepton.explain.text import LinearTfidf, Occlusion

FILLER = [
    "the",
    "a",
    "movie",
    "film",
    "plot",
    "actor",
    "scene",
    "story",
    "was",
    "it",
    "and",
    "very",
    "quite",
]
DECIDERS = {"excellent": "good", "awful": "bad"}


def corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        word = list(DECIDERS)[i % 2]
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 12))))
        words.insert(int(rng.integers(0, len(words) + 1)), word)
        texts.append(" ".join(words).capitalize() + "!")
        labels.append(DECIDERS[word])
    return texts, labels


@functools.cache
def tfidf() -> SklearnModel:
    texts, labels = corpus(120, 0)
    data = TrainData(Task.classification, InputKind.text, np.array(texts, dtype=object), labels)
    return TfidfLinear().fit(data, {}, NullCallbacks())


def test_tfidf_attributions_are_exact_and_the_deciding_word_ranks_first() -> None:
    model = tfidf()
    explainer = explainer_for(model)
    assert isinstance(explainer, LinearTfidf)
    texts, labels = corpus(20, 1)
    explanation = explainer.explain(texts)
    assert explanation.output_space == "log_odds" and explanation.additive
    proba = model.predict_proba(texts)
    assert proba is not None
    for text, label, row, p in zip(texts, labels, explanation.rows, proba, strict=True):
        assert row.prediction == label
        assert row.ranked()[0][0] in DECIDERS, (text, row.ranked()[:3])
        assert DECIDERS[row.ranked()[0][0]] == label
        # base (the intercept) + the words' shares is the served log-odds, exactly.
        assert row.base_value + row.attributions.sum() == pytest.approx(row.output, abs=1e-9)
        chosen = max(p)
        assert row.output == pytest.approx(np.log(chosen / (1 - chosen)), abs=1e-5)
        assert len(row.names or []) == len(row.attributions)


def test_repeated_words_share_their_term() -> None:
    explainer = explainer_for(tfidf())
    row = explainer.explain(["Excellent, excellent"], target="good").rows[0]
    assert row.names == ["excellent", "excellent"]
    assert row.attributions[0] == pytest.approx(row.attributions[1], abs=1e-12)
    assert row.attributions[0] > 0 > explainer.explain(["awful"], target="good").rows[0].output


def test_occlusion_finds_the_deciding_word_of_any_text_model() -> None:
    occlusion = Occlusion(tfidf())
    texts, labels = corpus(10, 2)
    explanation = occlusion.explain(texts)
    assert explanation.method == "occlusion" and not explanation.additive
    for row, label in zip(explanation.rows, labels, strict=True):
        word = row.ranked()[0][0].strip("!").lower()
        assert DECIDERS.get(word) == label, row.ranked()[:3]
        assert row.probability == pytest.approx(row.output)


def test_text_errors_and_json() -> None:
    explainer = explainer_for(tfidf())
    with pytest.raises(InvalidRequest, match="one string"):
        explainer.explain("excellent")
    with pytest.raises(InvalidRequest, match="'meh' is not a class"):
        explainer.explain(["excellent"], target="meh")
    with pytest.raises(InvalidRequest, match="at most 100"):
        explainer.explain(["excellent"] * 101)
    with pytest.raises(InvalidRequest, match="image models only"):
        explainer.explain(["excellent"], overlay=True)
    with pytest.raises(InvalidRequest, match="at most 512"):
        Occlusion(tfidf()).explain([" ".join(["plot"] * 513)])
    data = orjson.loads(orjson.dumps(explainer.explain(["An excellent film"]).to_dict()))
    assert data["rows"][0]["names"] == ["an", "excellent", "film"]
    assert data["method"] == "linear_tfidf"
