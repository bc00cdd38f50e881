"""`cnnlab samples DIR` writes the docs' images from the offline sources they name, and refuses a file as DIR."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image
from skimage import data as photos
from sklearn.datasets import load_digits

from cnnlab.samples import write_samples


def test_every_image_is_its_source_pixel_for_pixel(tmp_path):
    printed = []
    written = write_samples(tmp_path / "new" / "folder", print_fn=printed.append)
    folder = tmp_path / "new" / "folder"
    assert sorted(p for p in folder.rglob("*") if p.is_file()) == sorted(written)
    assert len(printed) == len(written) and all(line.startswith(str(folder)) for line in printed)
    digits = load_digits()
    for name, index in (("three.png", 3), ("digit1700.png", 1700), ("digit1720.png", 1720), ("digit1745.png", 1745)):
        pixels = np.asarray(Image.open(folder / name))
        np.testing.assert_array_equal(pixels, np.round(digits.images[index] * 255 / 16))
    assert digits.target[3] == 3
    last = range(len(digits.images) - 20, len(digits.images))
    assert sorted(folder.glob("digits/*/*.png")) == sorted(folder / f"digits/{digits.target[i]}/digit{i}.png" for i in last)
    for i in last:
        pixels = np.asarray(Image.open(folder / f"digits/{digits.target[i]}/digit{i}.png"))
        np.testing.assert_array_equal(pixels, np.round(digits.images[i] * 255 / 16))
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "face0.png")), np.round(photos.lfw_subset()[0] * 255))
    for name in ("chelsea", "coffee", "camera", "astronaut", "rocket"):
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"{name}.png")), getattr(photos, name)())
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "motorcycle.png")), photos.stereo_motorcycle()[0])
    regions = json.loads((folder / "regions.json").read_text())
    for name, boxes in regions.items():
        width, height = Image.open(folder / name).size
        for left, top, right, bottom in boxes:
            assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert not list(folder.glob(".*"))  # no temporaries left


def test_a_file_as_dir_is_one_line_and_exit_code_2(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = subprocess.run([sys.executable, "-m", "cnnlab", "samples", str(target)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"cnnlab samples: error: Cannot use {target} as a directory: it is a file.\n"
    assert target.read_text() == "x"
