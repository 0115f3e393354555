"""The Keras CNN on MNIST, trained as a Lepton job on the PyTorch backend, then deployed.

    lepton up                                        # in another terminal (or `make run`)
    .venv/bin/python examples/keras_mnist.py

Started by hand, this file pushes the bundled MNIST sample (the 10,000 test digits of MNIST),
runs itself as a job on a stratified 80/20 split (8,000 digits to train on, 2,000 held out;
the same as `lepton run examples/keras_mnist.py --dataset mnist --validation 0 --test 0.2`),
deploys the model the job registers, and checks that the deployment reads held-out digits and
explains one. Inside the job it is the classic Keras script, changed only where it loads its
data. It exits nonzero when a step does not do what it should.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def train() -> None:
    """The job: Keras's MNIST convnet, 5 epochs of Adam, tracked and registered."""
    import keras

    import lepton
    from lepton.keras import LeptonCallback

    # The one change: the digits come from the job's dataset, as float32 in [0, 1], (N, 28, 28, 1)
    x_train, y_train = lepton.load_arrays(split="train")
    x_test, y_test = lepton.load_arrays(split="test")

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, validation_split=0.1, callbacks=[LeptonCallback()])

    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy on {len(x_test)} held-out digits: {accuracy:.4f} (loss {loss:.4f})")
    lepton.save_model(
        model,
        name="keras-mnist",
        metrics={"accuracy": float(accuracy), "loss": float(loss)},
        background=x_test,  # the card summarises the saliency of 64 held-out digits
    )


def main() -> int:
    import numpy as np
    from _job_flow import drive

    from lepton import Client
    from lepton.data.samples import load_sample

    def check(client: Client, deployment: str, held_out: np.ndarray) -> bool:
        images, labels = client.datasets.to_numpy("mnist")
        picked = np.random.default_rng(0).choice(held_out, size=200, replace=False)
        digits = images[picked][..., None].astype(np.float32) / 255.0
        answer = client.deployments.predict(deployment, inputs=digits.tolist())
        predicted = [int(p) for p in answer["predictions"]]
        right = sum(p == int(t) for p, t in zip(predicted, labels[picked], strict=True))
        print(f"the deployment read {right} of {len(picked)} held-out digits right")
        # The same digits as PNG files, as a user would upload them: the signature says the
        # model takes [0, 1] pixels (load_arrays gave it those), so the replica scales them.
        pngs = [_png(image) for image in images[picked[:20]]]
        uploaded = client.deployments.predict(deployment, images=pngs)["predictions"]
        same = sum(int(a) == b for a, b in zip(uploaded, predicted[:20], strict=True))
        print(f"{same} of 20 digits uploaded as PNG got the same answer as their arrays")
        explained = client.deployments.explain(deployment, inputs=digits[:1].tolist())
        print(f"explained its answer {explained['rows'][0]['prediction']} by {explained['method']}")
        return right >= 0.9 * len(picked) and same == 20

    return drive(
        __file__,
        dataset="mnist",
        data=load_sample("mnist"),
        deployment="keras-mnist",
        check=check,
    )


def _png(image: Any) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    if "LEPTON_JOB_ID" in os.environ:
        train()
    else:
        sys.exit(main())
