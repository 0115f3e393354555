"""Bundled sample datasets that need no network: three from scikit-learn, one from statsmodels,
and the 10,000-image MNIST test set shipped with this package (see ``mnist/README.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lepton.errors import InvalidRequest

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SAMPLES", "load_sample"]

SAMPLES: dict[str, str] = {
    "breast-cancer": "Wisconsin breast cancer: 569 tumours, 30 features, diagnosis (classification)",
    "digits": "8x8 handwritten digits: 1,797 images as 64 pixel columns, digit (classification)",
    "diabetes": "Diabetes: 442 patients, 10 features, disease progression (regression)",
    "co2": "Mauna Loa CO2: weekly ppm 1958-2001, with gaps (time series)",
    "mnist": "MNIST test set: 10,000 28x28 digit images in IDX format (image classification)",
}

MNIST_DIR = Path(__file__).with_name("mnist")


def load_sample(name: str) -> pd.DataFrame | Path:
    """The sample as a DataFrame, or, for MNIST, the folder holding its IDX files."""
    if name not in SAMPLES:
        raise InvalidRequest(
            f"there is no sample {name!r}; samples are: {', '.join(SAMPLES)}",
            fix="pass one of them, e.g. --sample breast-cancer",
        )
    if name == "mnist":
        return MNIST_DIR
    if name == "co2":
        import statsmodels.api as sm

        frame = sm.datasets.co2.load_pandas().data
        return frame.rename_axis("date").reset_index()
    from sklearn import datasets

    if name == "breast-cancer":
        bunch = datasets.load_breast_cancer(as_frame=True)
        frame = bunch.frame.drop(columns="target")
        frame["diagnosis"] = bunch.target.map(dict(enumerate(bunch.target_names)))
        return frame
    if name == "digits":
        bunch = datasets.load_digits(as_frame=True)
        return bunch.frame.rename(columns={"target": "digit"})
    bunch = datasets.load_diabetes(as_frame=True, scaled=False)
    return bunch.frame.rename(columns={"target": "progression"})
