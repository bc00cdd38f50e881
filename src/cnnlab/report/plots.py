"""The report's charts as PNG bytes: training curves, confusion matrices, and image cards.

Matplotlib's object API on the Agg canvas (no pyplot, no display); the
explanation grids come from `cnnlab.explain.render`.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cnnlab.explain.render import to_numpy_image

DPI = 110
NAMED_CLASSES = 20
TRAIN, VALIDATION = "#1f77b4", "#ff7f0e"


def png(figure: Figure) -> bytes:
    """The figure rendered by Agg as PNG bytes, trimmed to its contents."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    return buffer.getvalue()


def array_png(array: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def curve_figure(history: dict[str, list[float]], metric: str, title: str) -> Figure:
    """`metric` on the training and validation sets per epoch, the best validation epoch marked."""
    figure = Figure(figsize=(4.6, 3.1))
    axis = figure.subplots()
    epochs = history["epoch"]
    marker = "o" if len(epochs) <= 30 else None
    axis.plot(epochs, history[metric], color=TRAIN, marker=marker, markersize=3, label="training")
    validation = np.asarray(history.get(f"val_{metric}", []), float)
    if len(validation) and np.isfinite(validation).any():
        axis.plot(epochs, validation, color=VALIDATION, marker=marker, markersize=3, label="validation")
        best = int(np.nanargmin(validation) if metric == "loss" else np.nanargmax(validation))
        axis.scatter([epochs[best]], [validation[best]], s=70, facecolors="none", edgecolors="black", zorder=3,
                     label=f"best validation (epoch {epochs[best]:g})")
    _epoch_axis(axis, epochs)
    axis.set_ylabel(metric)
    axis.set_title(title, fontsize=11)
    axis.legend(fontsize=8, frameon=False)
    return figure


def lr_figure(history: dict[str, list[float]]) -> Figure:
    """The learning rate at the end of each epoch."""
    figure = Figure(figsize=(4.6, 3.1))
    axis = figure.subplots()
    epochs, rates = history["epoch"], np.asarray(history["lr"], float)
    axis.plot(epochs, rates, color="#2ca02c", marker="o" if len(epochs) <= 30 else None, markersize=3)
    low, high = np.nanmin(rates), np.nanmax(rates)
    if low > 0 and high / low > 20:
        axis.set_yscale("log")
    elif high > 0 and (high - low) / high < 0.01:
        axis.set_ylim(0, high * 1.25)  # a flat schedule reads as flat, not as noise around a constant
    _epoch_axis(axis, epochs)
    axis.set_ylabel("learning rate")
    axis.set_title("learning rate", fontsize=11)
    return figure


def _epoch_axis(axis, epochs: Sequence[float]) -> None:
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3)
    if len(epochs) <= 12:
        axis.set_xticks(list(epochs))
    axis.spines[["top", "right"]].set_visible(False)


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], normalised: bool) -> Figure:
    """The matrix as a heat map, rows = true class; each cell annotated, and the classes named, while they are few
    (beyond NAMED_CLASSES they are numbered)."""
    classes = len(class_names)
    side = min(max(0.42 * classes + 1.6, 4.2), 13.0)
    figure = Figure(figsize=(side + 0.8, side))
    axis = figure.subplots()
    shown = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalised else max(int(matrix.max()), 1))
    figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.03)
    names = [_short(n, 12) for n in class_names] if classes <= NAMED_CLASSES else [str(i) for i in range(classes)]
    step = max(1, math.ceil(classes / 40))
    ticks = list(range(0, classes, step))
    axis.set_xticks(ticks, [names[i] for i in ticks], rotation=90 if max(map(len, names)) > 2 else 0, fontsize=8)
    axis.set_yticks(ticks, [names[i] for i in ticks], fontsize=8)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title("share of each true class" if normalised else "image counts", fontsize=11)
    if classes <= NAMED_CLASSES:
        limit = 1 if normalised else max(int(matrix.max()), 1)
        for (row, column), value in np.ndenumerate(matrix):
            if value == 0:
                continue
            text = (f"{value:.2f}".lstrip("0") if value < 1 else "1") if normalised else f"{value:d}"
            axis.text(column, row, text, ha="center", va="center", fontsize=7 if classes > 12 else 8,
                      color="white" if value > 0.55 * limit else "black")
    return figure


def upscale(image, side: int = 112, largest: int = 160) -> np.ndarray:
    """A (C, H, W) [0, 1] image or (H, W, 3) uint8 array as uint8 (H, W, 3): a small one enlarged by a whole
    factor (nearest neighbour, so pixels stay sharp) to at least `side` pixels high, a large one shrunk to
    `largest` pixels high (so a page of 224x224 panels stays light)."""
    picture = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else (
        (255 * to_numpy_image(image)).round().astype(np.uint8))
    height, width = picture.shape[:2]
    if height > largest:
        size = (max(1, round(width * largest / height)), largest)
        return np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))
    scale = max(1, math.ceil(side / height))
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def image_strip(panels: Sequence, side: int = 112) -> np.ndarray:
    """Images of one size side by side, each enlarged by `upscale`, with thin white gaps."""
    enlarged = [upscale(p, side) for p in panels]
    gap = np.full((enlarged[0].shape[0], max(4, enlarged[0].shape[0] // 28), 3), 255, np.uint8)
    return np.concatenate([part for panel in enlarged for part in (panel, gap)][:-1], axis=1)


def image_card(image, heat_overlay: np.ndarray, side: int = 112) -> np.ndarray:
    """The image and its overlay side by side."""
    return image_strip([image, heat_overlay], side)


def _short(name: str, width: int) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"
