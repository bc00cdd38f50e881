"""The pointing game (Zhang et al., 2016): does the map's maximum fall on the object?

A hit when a maximal pixel of the map lies within `tolerance` pixels
(Euclidean, at the image's own resolution) of the object's region; the
score is the share of hits (higher is better). Zhang et al. and TorchRay
allow 15 pixels; Quantus' ``PointingGame`` allows none (tolerance 0). When
several pixels share the maximum, one of them on target is a hit, as in
Quantus.

Regions come from a JSON file that maps image file names to boxes or to a
mask PNG::

    {"chelsea.png": [[140, 20, 330, 300]],      # boxes [x0, y0, x1, y1] in the image's pixels,
     "coffee.png": [[30, 40, 420, 300], [0, 0, 50, 50]],   # x right, y down, x1 and y1 exclusive
     "rocket.png": "masks/rocket.png"}          # a mask beside the JSON file: non-zero pixels are the object

A name matches an image by its file name (``chelsea.png``) or its stem
(``chelsea``); images the file does not name are left out of the game.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from cnnlab.errors import ConfigError, DataError, invalid
from cnnlab.explain.metrics.settings import Settings, check_tolerance

TOLERANCE = Settings.tolerance  # pixels, Zhang et al.


def pointing_game(maps: Sequence[torch.Tensor | np.ndarray], regions: Sequence[np.ndarray | None],
                  tolerance: float = TOLERANCE) -> np.ndarray:
    """1.0 for a hit, 0.0 for a miss, NaN where an image has no region; one map and region (H, W) per image."""
    check_tolerance(tolerance)
    scores = []
    for heatmap, region in zip(maps, regions):
        if region is None or not np.any(region):
            scores.append(np.nan)
            continue
        heatmap = np.asarray(heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap, np.float64)
        if heatmap.shape != region.shape:
            raise ConfigError(invalid("region", "the pointing game", f"the map's shape {heatmap.shape}",
                                      region.shape))
        distance = distance_transform_edt(~region.astype(bool))  # 0 on the region
        scores.append(float(np.any(distance[heatmap == heatmap.max()] <= tolerance)))
    return np.array(scores, dtype=np.float64)


def read_regions(path: str | os.PathLike, names: Sequence[str], sizes: Sequence[tuple[int, int]]
                 ) -> list[np.ndarray | None]:
    """The region of each image (H, W, bool) from the regions file at `path`; None for images it does not name."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except OSError as error:
        raise DataError(f"Cannot read the regions file {path}: {error.strerror or error}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"The regions file {path} is not valid JSON ({error}).") from None
    if not isinstance(entries, dict):
        raise DataError(f"The regions file {path} must hold a JSON object mapping image names to boxes or a mask "
                        f"PNG. Got a {type(entries).__name__} instead.")
    regions = []
    for name, (height, width) in zip(names, sizes):
        key = next((k for k in (Path(name).name, Path(name).stem, str(name)) if k in entries), None)
        if key is None:
            regions.append(None)
            continue
        entry = entries[key]
        if isinstance(entry, str):
            mask_path = path.parent / entry
            try:
                mask = np.asarray(Image.open(mask_path).convert("L")) > 0
            except (OSError, UnidentifiedImageError):
                raise DataError(f"The mask {mask_path} named for {key!r} in {path} is not a readable image.") from None
            if mask.shape != (height, width):
                raise DataError(f"The mask {mask_path} for {key!r} is {mask.shape[1]}x{mask.shape[0]} pixels; the "
                                f"image is {width}x{height}.")
            regions.append(mask)
        else:
            regions.append(_boxes(entry, key, path, height, width))
    if all(region is None for region in regions):
        raise DataError(f"The regions file {path} names none of the {len(names)} images "
                        f"({', '.join(Path(n).name for n in names[:3])}{' ...' if len(names) > 3 else ''}).")
    return regions


def _boxes(entry, key: str, path: Path, height: int, width: int) -> np.ndarray:
    """The union of `entry`'s boxes as an (H, W) mask."""
    expected = "a list of boxes [x0, y0, x1, y1] (pixels, x0 < x1, y0 < y1) or a mask PNG's path"
    if not isinstance(entry, list) or not entry:
        raise DataError(invalid(f"entry {key!r}", f"the regions file {path}", expected, entry))
    if all(isinstance(v, (int, float)) for v in entry):
        entry = [entry]  # one box given without the outer list
    mask = np.zeros((height, width), dtype=bool)
    for box in entry:
        if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                or not (box[0] < box[2] and box[1] < box[3])):
            raise DataError(invalid(f"entry {key!r}", f"the regions file {path}", expected, box))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise DataError(f"The box {box} for {key!r} in {path} lies outside the {width}x{height} image.")
        mask[max(0, y0):y1, max(0, x0):x1] = True
    return mask
