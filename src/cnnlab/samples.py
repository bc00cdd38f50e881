"""`write_samples`: the images the README and the docs run their commands on, from data that ships offline.

Digits come from scikit-learn's `load_digits` (8x8, 0..16, written as 8x8 grey
PNGs scaled to 0..255): four at the top, and its last 20 in ``digits/<class>/``
(a folder to predict, and the images the faithfulness tables are measured on); faces from scikit-image's `lfw_subset`, photos from
scikit-image's bundled pictures; `regions.json` holds boxes around the objects
of three photos, for the pointing game of ``cnnlab explain --evaluate``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from cnnlab.files import atomic_write, make_directory, write_text

DIGITS = {"three.png": 3, "digit1700.png": 1700, "digit1720.png": 1720, "digit1745.png": 1745}
LAST_DIGITS = 20
PHOTOS = ("chelsea", "coffee", "camera", "astronaut", "rocket")
# (left, top, right, bottom) in pixels of each photo's object: the cup, the camera and its tripod, the motorcycle
REGIONS = {"coffee.png": [[170, 15, 425, 305]], "camera.png": [[225, 140, 410, 512]],
           "motorcycle.png": [[90, 95, 690, 450]]}


def write_samples(directory: str | os.PathLike = ".", print_fn: Callable[[str], None] = print) -> list[Path]:
    """Write the sample images (and regions.json) into `directory`, each atomically; return their paths."""
    from skimage import data as photos
    from sklearn.datasets import load_digits

    folder = make_directory(directory)
    digits = load_digits()
    pictures = {name: ((digits.images[i] * 255 / 16).round().astype(np.uint8),
                       f"a handwritten {digits.target[i]} (sklearn digits #{i}, 8x8)") for name, i in DIGITS.items()}
    for i in range(len(digits.images) - LAST_DIGITS, len(digits.images)):
        pictures[f"digits/{digits.target[i]}/digit{i}.png"] = (
            (digits.images[i] * 255 / 16).round().astype(np.uint8), f"a handwritten {digits.target[i]} (#{i}, 8x8)")
    pictures["face0.png"] = ((photos.lfw_subset()[0] * 255).round().astype(np.uint8),
                             "a face (skimage lfw_subset #0, 25x25)")
    for name in PHOTOS:
        pictures[f"{name}.png"] = (getattr(photos, name)(), f"skimage.data.{name}()")
    pictures["motorcycle.png"] = (photos.stereo_motorcycle()[0], "skimage.data.stereo_motorcycle()[0]")
    written = []
    for name, (array, what) in pictures.items():
        path = folder / name
        atomic_write(path, lambda temporary, array=array: Image.fromarray(array).save(temporary, format="PNG"))
        height, width = array.shape[:2]
        print_fn(f"{path}  {width}x{height}  {what}")
        written.append(path)
    path = folder / "regions.json"
    write_text(path, json.dumps(REGIONS, indent=1) + "\n")
    print_fn(f"{path}  object boxes of coffee.png, camera.png, motorcycle.png for 'cnnlab explain --regions'")
    return written + [path]
