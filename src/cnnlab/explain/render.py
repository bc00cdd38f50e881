"""Drawing maps: one helper puts any map onto its image; the rest lay figures out and save them.

Figures are made with matplotlib's object API on the Agg canvas (no pyplot,
no display needed) and written atomically.
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator
from matplotlib.figure import Figure

from cnnlab.files import atomic_write


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (C, H, W) tensor or (H, W[, C]) array in [0, 1] as an (H, W, 3) float array."""
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, float)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.clip(array, 0, 1)


Limits = tuple[float, float]


def _array(heatmap) -> np.ndarray:
    return heatmap.detach().cpu().float().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap, float)


def color_limits(heatmaps, percentile: float = 100.0) -> Limits:
    """(low, high): the colour scale of one map or several drawn together, from their minimum to their
    `percentile` (a constant map gets a scale of width one above its value, so it shows at the bottom).

    Gradient maps are spiky: a few pixels would take the whole colour range,
    so they are drawn to ``percentile=99``, as captum's visualiser does.
    """
    array = np.concatenate([_array(h).ravel() for h in heatmaps]) if isinstance(heatmaps, (list, tuple)) else \
        _array(heatmaps)
    low = float(array.min())
    high = float(array.max()) if percentile >= 100 else float(np.percentile(array, percentile))
    return (low, high) if high > low else (low, low + 1.0)


def normalize(heatmap: torch.Tensor | np.ndarray, percentile: float = 100.0,
              limits: Limits | None = None) -> np.ndarray:
    """A map scaled to [0, 1] over `limits` (default: `color_limits` of the map), clipped outside them."""
    array = _array(heatmap)
    low, high = limits or color_limits(array, percentile)
    return np.clip((array - low) / (high - low), 0, 1)


def overlay(image: torch.Tensor | np.ndarray, heatmap: torch.Tensor | np.ndarray, cmap: str = "jet",
            alpha: float = 0.5, percentile: float = 100.0, limits: Limits | None = None) -> np.ndarray:
    """`heatmap` (H, W), scaled by `normalize` and coloured with `cmap`, blended over `image`: (H, W, 3) uint8.

    The map must already be at the image's resolution (explanations return it so).
    """
    picture = to_numpy_image(image)
    heat = normalize(heatmap, percentile, limits)
    if heat.shape != picture.shape[:2]:
        raise ValueError(f"The map's shape {heat.shape} differs from the image's {picture.shape[:2]}.")
    coloured = colormaps[cmap](heat)[..., :3]
    return (255 * ((1 - alpha) * picture + alpha * coloured)).round().astype(np.uint8)


def colorbar(figure: Figure, axis, limits: Limits, units: str, cmap: str = "jet", **layout) -> None:
    """A colour bar beside `axis` (or in the axes ``cax=``) from limits[0] to limits[1], labelled `units`."""
    if "cax" not in layout:
        layout = {"ax": axis, "fraction": 0.046, "pad": 0.03, **layout}
    bar = figure.colorbar(ScalarMappable(Normalize(*limits), cmap), **layout)
    bar.set_label(units, fontsize=7)
    if bar.orientation == "vertical":
        bar.ax.yaxis.set_label_position("right")
    bar.ax.tick_params(labelsize=6)
    bar.locator = MaxNLocator(4)  # a few round numbers: a narrow bar under a column has room for no more
    bar.update_ticks()


def map_note(heatmap, units: str = "") -> str:
    """'max 0.42 drop in probability', or the warning that the map is zero everywhere."""
    array = _array(heatmap)
    if not np.any(array):
        return "map is zero everywhere: no positive evidence"
    return f"max {float(array.max()):.3g}{' ' + units if units else ''}"


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight", pad_inches=0.05)
    atomic_write(path, lambda temporary: open(temporary, "wb").write(buffer.getvalue()))


def _panel(axis, picture, title: str = "", fontsize: int = 9) -> None:
    axis.imshow(picture, interpolation="nearest" if picture.shape[0] < 64 else "antialiased")
    axis.set_title(title, fontsize=fontsize)
    axis.axis("off")


SCALES = ("fixed", "relative")  # occlusion: probabilities on [0, 1], or from the map's minimum to its maximum


def explanation_figure(image, heatmap, method: str, caption: str, percentile: float = 100.0, units: str = "",
                       limits: Limits | None = None, note: str | None = None) -> Figure:
    """Two panels: the image and the map over it with a colour bar in `units`; titled with the prediction and
    the map's maximum (or the warning that it is zero everywhere)."""
    picture = to_numpy_image(image)
    limits = limits or color_limits(heatmap, percentile)
    figure = Figure(figsize=(6.4, 2.9 * picture.shape[0] / picture.shape[1] + 0.8), dpi=120)
    left, right = figure.subplots(1, 2)
    _panel(left, picture, "input")
    _panel(right, overlay(image, heatmap, percentile=percentile, limits=limits), method)
    colorbar(figure, right, limits, units)
    figure.suptitle(f"{caption}\n{method}: {note or map_note(heatmap, units)}", fontsize=9)
    return figure


def occlusion_figure(image, probability, predicted: np.ndarray, class_names: Sequence[str], caption: str,
                     target_name: str, scale: str = "fixed") -> Figure:
    """Three panels: the image, the target's probability as the patch moves (on [0, 1], or from its minimum
    to its maximum with ``scale="relative"``), and the class predicted there."""
    picture = to_numpy_image(image)
    probability = np.asarray(probability)
    figure = Figure(figsize=(9.6, 2.8 * picture.shape[0] / picture.shape[1] + 0.8), dpi=100)
    left, middle, right = figure.subplots(1, 3)
    _panel(left, to_numpy_image(image), "input")
    limits = (0.0, 1.0) if scale == "fixed" else color_limits(probability)
    middle.imshow(probability, cmap="viridis", vmin=limits[0], vmax=limits[1])
    middle.set_title(f"p({_short(target_name)}) with the patch here", fontsize=9)
    middle.axis("off")
    colorbar(figure, middle, limits, "probability" if scale == "fixed" else "probability (relative scale)",
             cmap="viridis")
    classes, counts = np.unique(predicted, return_counts=True)
    order = classes[np.argsort(-counts)]
    palette = colormaps["tab10"]
    colour_of = {c: palette(i % 10) for i, c in enumerate(order)}
    height, width = picture.shape[:2]  # the grid of patch positions, stretched over the image
    right.imshow(np.array([[colour_of[c] for c in row] for row in predicted]), interpolation="nearest",
                 extent=(0, width, height, 0))
    right.set_title("predicted class with the patch here", fontsize=9)
    right.axis("off")
    handles = [right.scatter([], [], color=colour_of[c], marker="s", label=_short(class_names[c])) for c in order[:6]]
    right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    figure.suptitle(f"{caption}\np with the patch from {probability.min():.3g} to {probability.max():.3g}",
                    fontsize=9)
    return figure


def contact_sheet(images: Sequence, heatmaps: dict[str, Sequence], captions: Sequence[str],
                  percentiles: dict[str, float] | None = None, units: dict[str, str] | None = None,
                  limits: dict[str, Limits] | None = None) -> Figure:
    """Rows = images, columns = the input then one overlay per method, each column on one colour scale
    (`limits`, default: over the column's maps to its `percentiles` entry) with a colour bar in its `units`."""
    percentiles, units, limits = percentiles or {}, units or {}, dict(limits or {})
    columns = 1 + len(heatmaps)
    aspect = float(np.mean([to_numpy_image(i).shape[0] / to_numpy_image(i).shape[1] for i in images]))
    figure = Figure(figsize=(1.9 * columns, (1.9 * aspect + 0.3) * len(images) + 0.6), dpi=100)
    grid = np.array(figure.subplots(len(images) + 1, columns, squeeze=False,
                                    gridspec_kw={"height_ratios": [1.9 * aspect] * len(images) + [0.08]}))
    axes, bars = grid[:-1], grid[-1]
    bars[0].axis("off")
    for method, maps in heatmaps.items():
        limits.setdefault(method, color_limits(list(maps), percentiles.get(method, 100.0)))
    for row, image in enumerate(images):
        _panel(axes[row, 0], to_numpy_image(image), captions[row], fontsize=7)
        for column, (method, maps) in enumerate(heatmaps.items(), start=1):
            picture = overlay(image, maps[row], limits=limits[method])
            title = method if row == 0 else ""
            if not np.any(_array(maps[row])):
                title = (title + "\n" if title else "") + "zero everywhere"
            _panel(axes[row, column], picture, title, fontsize=7)
    for column, method in enumerate(heatmaps, start=1):
        colorbar(figure, None, limits[method], units.get(method, ""), cax=bars[column], orientation="horizontal")
    figure.subplots_adjust(wspace=0.08, hspace=0.3)
    return figure


def grid_figure(tiles: Sequence[np.ndarray], titles: Sequence[str] | None = None, title: str = "",
                columns: int | None = None, cmap: str = "gray", tile_inches: float = 1.0,
                units: str | None = None) -> Figure:
    """Tiles (H, W) or (H, W, 3) in a grid, each scaled on its own, with optional titles; with `units`, all
    on one scale with a colour bar in those units (feature maps: which channels fire most)."""
    count = len(tiles)
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    height = tile_inches * rows + (0.4 if title else 0)
    figure = Figure(figsize=(tile_inches * columns, height), dpi=100)
    axes = np.array(figure.subplots(rows, columns, squeeze=False)).flatten()
    limits = color_limits(list(tiles)) if units is not None else None
    for index, axis in enumerate(axes):
        axis.axis("off")
        if index < count:
            tile = normalize(tiles[index], limits=limits)
            axis.imshow(tile, cmap=None if tile.ndim == 3 else cmap, interpolation="nearest")
            if titles:
                axis.set_title(titles[index], fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.08 / height)
    figure.subplots_adjust(wspace=0.08, hspace=0.3 if titles else 0.08, top=1 - (0.4 if title else 0.05) / height)
    if limits is not None:
        colorbar(figure, list(axes), limits, units, cmap=cmap, shrink=0.6)
    return figure


def _short(name: str, width: int = 18) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"
