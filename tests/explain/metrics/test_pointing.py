"""The pointing game's hits, its tolerance, and the regions file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import DataError
from cnnlab.explain.metrics import pointing_game, read_regions


def peak(height=40, width=60, row=10, col=20) -> np.ndarray:
    heatmap = np.random.default_rng(0).random((height, width)) * 0.5
    heatmap[row, col] = 1.0
    return heatmap


def box(x0, y0, x1, y1, height=40, width=60) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_a_hit_is_a_maximum_within_the_tolerance_of_the_region():
    heatmap = peak()  # maximum at x 20, y 10
    assert pointing_game([heatmap], [box(15, 5, 25, 15)], tolerance=0).tolist() == [1.0]
    assert pointing_game([heatmap], [box(35, 5, 45, 15)], tolerance=0).tolist() == [0.0]
    # The box's nearest pixel is x 35: 15 pixels to the right of the maximum.
    assert pointing_game([heatmap], [box(35, 5, 45, 15)], tolerance=15).tolist() == [1.0]
    assert pointing_game([heatmap], [box(35, 5, 45, 15)], tolerance=14.9).tolist() == [0.0]
    diagonal = box(29, 19, 40, 30)  # nearest pixel (29, 19): sqrt(81 + 81) = 12.7 away
    assert pointing_game([heatmap, heatmap], [diagonal, diagonal], tolerance=12.8).tolist() == [1.0, 1.0]
    assert pointing_game([heatmap], [diagonal], tolerance=12.7).tolist() == [0.0]


def test_a_tied_maximum_on_the_region_is_a_hit_and_no_region_is_no_score():
    heatmap = peak()
    heatmap[30, 50] = 1.0
    scores = pointing_game([heatmap, heatmap, heatmap], [box(45, 25, 55, 35), None, box(0, 0, 1, 1) & False],
                           tolerance=0)
    assert scores[0] == 1.0 and np.isnan(scores[1]) and np.isnan(scores[2])


def test_the_regions_file_takes_boxes_by_name_or_stem_and_mask_pngs(tmp_path):
    mask = np.zeros((40, 60), dtype=np.uint8)
    mask[5:10, 30:40] = 255
    Image.fromarray(mask).save(tmp_path / "cat-mask.png")
    (tmp_path / "regions.json").write_text(json.dumps({
        "a.png": [[10, 5, 20, 15], [0, 30, 5, 40]], "b": [50, 0, 70, 10], "c.png": "cat-mask.png",
        "not-asked.png": [[0, 0, 1, 1]]}))
    regions = read_regions(tmp_path / "regions.json", ["dir/a.png", "b.png", "c.png", "d.png"], [(40, 60)] * 4)
    assert np.array_equal(regions[0], box(10, 5, 20, 15) | box(0, 30, 5, 40))
    assert np.array_equal(regions[1], box(50, 0, 60, 10))  # clipped to the image
    assert np.array_equal(regions[2], mask > 0)
    assert regions[3] is None


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"a.png": [[20, 5, 10, 15]]}', "x0 < x1"),
    ('{"a.png": [[1, 2, 3]]}', "a list of boxes"),
    ('{"a.png": [[100, 100, 120, 120]]}', "lies outside the 60x40 image"),
    ('{"a.png": "missing.png"}', "is not a readable image"),
    ('{"other.png": [[0, 0, 5, 5]]}', "names none of the 1 images"),
])
def test_a_bad_regions_file_is_one_line_naming_what_is_wrong(tmp_path, content, message):
    (tmp_path / "regions.json").write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        read_regions(tmp_path / "regions.json", ["a.png"], [(40, 60)])
    assert "\n" not in str(caught.value)


def test_a_mask_of_another_size_is_refused(tmp_path):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "m.png")
    (tmp_path / "regions.json").write_text('{"a.png": "m.png"}')
    with pytest.raises(DataError, match="is 10x10 pixels; the image is 60x40"):
        read_regions(tmp_path / "regions.json", ["a.png"], [(40, 60)])
