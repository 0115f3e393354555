"""Saliency maps for image classifiers, and their PNG overlay.

:class:`IntegratedGradients` (captum) explains the built-in CNN, whose gradients it can follow;
:class:`Occlusion` explains any other image classifier (an ONNX graph, a Keras model) from its
probabilities alone.

Integrated gradients walks a straight path from a baseline image to the input and sums the
gradients of the explained class's probability along it; per pixel, that is the pixel's share
of ``p(input) - p(baseline)``. The sum holds up to the error of the path integral, which captum
calls the convergence delta and every row carries. Attributions are summed over channels into
an H x W map: positive where the pixel raises the class's probability.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.explain.explanation import Explanation, RowExplanation, json_label
from lepton.explain.targets import check_count, target_indices

__all__ = ["BASELINES", "MAX_IMAGES", "N_STEPS", "IntegratedGradients", "Occlusion", "overlay_png"]

N_STEPS = 32
"""Path steps (Gauss-Legendre). Measured on 64 MNIST test digits (a small CNN, black baseline):
the median |delta| is 5.7e-3 at 8 steps, 3.3e-3 at 16, 1.4e-3 at 32 and 8.7e-4 at 64, which
costs ~1.5x the time of 32 for little gain."""

MAX_IMAGES = 64
"""Images per call: each costs ``N_STEPS`` forward and backward passes."""

BASELINES = ("black", "blur")
"""``black``: all-zero pixels (what "no digit" looks like on MNIST); ``blur``: the image under a
heavy Gaussian blur, for photos where black is itself a strong signal."""

# The blur's standard deviation as a share of the shorter side: 1/7 is 4 px on 28 x 28, enough
# to erase strokes while keeping the overall brightness.
_BLUR_SHARE = 1 / 7
# Images per forward pass inside the path integral (steps x images): ~4 digits' worth of steps.
_PASS_IMAGES = 128
# Overlays are drawn at least this many pixels wide (nearest-neighbour upscaling).
_OVERLAY_SIDE = 224


class IntegratedGradients:
    """Integrated gradients for a :class:`~lepton.algorithms.cnn.CNNModel`."""

    kind = "image"
    method = "integrated_gradients"
    output_space = "probability"

    def __init__(self, model: Any, *, baseline: str = "black", n_steps: int = N_STEPS) -> None:
        if baseline not in BASELINES:
            raise InvalidRequest(
                f"baseline {baseline!r} is not one of: {', '.join(BASELINES)}",
                fix="pass baseline='black' or baseline='blur'",
            )
        if not 2 <= n_steps <= 1024:
            raise InvalidRequest(f"n_steps={n_steps} is outside 2..1024", fix="pass n_steps=32")
        self.model, self.baseline, self.n_steps = model, baseline, n_steps
        self.classes: list[Any] = list(model.classes)
        c, h, w = (int(s) for s in model.config["shape"])
        self.shape = (c, h, w)

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        import torch
        from captum.attr import IntegratedGradients as CaptumIG

        from lepton.algorithms.cnn import as_nchw

        images = as_nchw(X, self.shape)  # (N, C, H, W) uint8; refuses other sizes
        check_count(len(images), MAX_IMAGES)
        net = self.model.net

        def probability(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(net(x), dim=1)

        inputs = self.model.normalise(images)
        baselines = self.model.normalise(self._baselines(images))
        with torch.no_grad():
            proba = probability(inputs).cpu().numpy().astype(np.float64)
            base_proba = probability(baselines).cpu().numpy().astype(np.float64)
        wanted = target_indices(self.classes, target, proba.argmax(axis=1))
        attributions = CaptumIG(probability).attribute(
            inputs,
            baselines=baselines,
            target=[int(c) for c in wanted],
            n_steps=self.n_steps,
            internal_batch_size=max(len(images), _PASS_IMAGES),
        )
        maps = attributions.detach().sum(dim=1).cpu().numpy().astype(np.float64)  # (N, H, W)
        out = Explanation(self.kind, self.method, self.output_space, additive=True)
        pixels = images.numpy()
        for i, c in enumerate(wanted):
            output, base = float(proba[i, c]), float(base_proba[i, c])
            out.rows.append(
                RowExplanation(
                    prediction=json_label(self.classes[int(proba[i].argmax())]),
                    target=json_label(self.classes[int(c)]),
                    output=output,
                    base_value=base,
                    attributions=maps[i],
                    probability=output,
                    delta=float(output - base - maps[i].sum()),
                    overlay_png=overlay_png(pixels[i], maps[i]) if overlay else None,
                )
            )
        return out

    def _baselines(self, images: Any) -> Any:
        import torch
        import torch.nn.functional as F

        if self.baseline == "black":
            return torch.zeros_like(images)
        sigma = max(1.0, min(images.shape[2:]) * _BLUR_SHARE)
        radius = int(3 * sigma)
        grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(grid**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        channels = images.shape[1]
        x = F.pad(images.float(), (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
        return x.round().clamp(0, 255).to(torch.uint8)


class Occlusion:
    """Occlusion for an image classifier seen only through ``predict_proba``.

    Each image is cut into a grid of square windows (a seventh of the shorter side: 4 px on
    28 x 28); each window in turn is set to black, and the drop in the explained class's
    probability is spread over the window's pixels. Positive where covering the pixels lowers
    the probability, that is where they raise it. Not additive: the windows' drops need not
    sum to ``p(image) - p(black image)``, and each row says by how much they miss in ``delta``.
    One call costs one model batch of (windows + 2) images per image.
    """

    kind = "image"
    method = "occlusion"
    output_space = "probability"

    def __init__(self, model: Any, shape: list[int]) -> None:
        if len(shape) not in (2, 3):
            raise InvalidRequest(
                f"an input of shape {shape} is not an image (H x W, with channels first or last)",
                fix="explain image models whose signature shape is [H, W], [H, W, C] or [C, H, W]",
            )
        self.model, self.shape = model, [int(d) for d in shape]
        self.classes: list[Any] = list(model.classes)
        # channels first when the first axis is a channel count and the last is not
        self.first = len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4)
        h, w = (shape[1], shape[2]) if self.first else (shape[0], shape[1])
        self.side = max(1, round(min(h, w) / 7))
        self.windows = [
            (top, left) for top in range(0, h, self.side) for left in range(0, w, self.side)
        ]

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        images = np.asarray(X, dtype=np.float32)
        if list(images.shape[1:]) != self.shape:
            if list(images.shape) != self.shape:
                raise InvalidRequest(
                    f"the images have shape {list(images.shape)}; the model takes "
                    f"[N, {', '.join(map(str, self.shape))}]",
                    fix="send images as the model's predict takes them",
                )
            images = images[None]
        check_count(len(images), MAX_IMAGES)
        out = Explanation(self.kind, self.method, self.output_space, additive=False)
        for image in images:
            batch = np.stack(
                [image, np.zeros_like(image), *(self._cover(image, w) for w in self.windows)]
            )
            proba = np.asarray(self.model.predict_proba(batch), dtype=np.float64)
            c = int(target_indices(self.classes, target, proba[:1].argmax(axis=1))[0])
            output, base = float(proba[0, c]), float(proba[1, c])
            saliency = np.zeros(self._plane(image).shape, dtype=np.float64)
            for (top, left), p in zip(self.windows, proba[2:, c], strict=True):
                window = saliency[top : top + self.side, left : left + self.side]
                window += (output - float(p)) / window.size
            out.rows.append(
                RowExplanation(
                    prediction=json_label(self.classes[int(proba[0].argmax())]),
                    target=json_label(self.classes[c]),
                    output=output,
                    base_value=base,
                    attributions=saliency,
                    probability=output,
                    delta=float(output - base - saliency.sum()),
                    overlay_png=overlay_png(self._pixels(image), saliency) if overlay else None,
                )
            )
        return out

    def _plane(self, image: np.ndarray) -> np.ndarray:
        """The H x W plane of one image (its channels averaged)."""
        if image.ndim == 2:
            return image
        return np.asarray(image.mean(axis=0) if self.first else image.mean(axis=-1))

    def _cover(self, image: np.ndarray, window: tuple[int, int]) -> np.ndarray:
        top, left = window
        covered = image.copy()
        rows, cols = slice(top, top + self.side), slice(left, left + self.side)
        if self.first:
            covered[:, rows, cols] = 0
        else:
            covered[rows, cols] = 0
        return covered

    def _pixels(self, image: np.ndarray) -> np.ndarray:
        """The image as uint8 grey levels for the overlay (floats in [0, 1] are scaled)."""
        plane = self._plane(image)
        if float(plane.max(initial=0.0)) <= 1.0:
            plane = plane * 255.0
        return np.asarray(np.clip(plane, 0, 255).astype(np.uint8))


def overlay_png(image: np.ndarray, saliency: np.ndarray) -> bytes:
    """A PNG of ``image`` (C x H x W or H x W, uint8) in grey with the saliency map over it: red
    where pixels raise the explained probability, blue where they lower it."""
    from PIL import Image

    grey = np.asarray(image, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=0)
    scale = float(np.percentile(np.abs(saliency), 99)) or 1.0
    strength = np.clip(np.abs(saliency) / scale, 0.0, 1.0)[..., None]
    colour = np.where((saliency >= 0)[..., None], [255.0, 40.0, 40.0], [40.0, 90.0, 255.0])
    rgb = (grey[..., None] * 0.6) * (1 - strength) + colour * strength
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")
    factor = max(1, _OVERLAY_SIDE // max(picture.size))
    if factor > 1:
        picture = picture.resize(
            (picture.width * factor, picture.height * factor), Image.Resampling.NEAREST
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
