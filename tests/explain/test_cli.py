"""`cnnlab explain` and `cnnlab visualize`, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main

METHODS = ["saliency", "guided", "gradcam", "guided-gradcam", "occlusion"]


def cnnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True)


def test_explain_writes_maps_at_each_images_resolution_and_a_contact_sheet(digits_run, tmp_path):
    run, images = digits_run
    out = tmp_path / "out"
    result = cnnlab("explain", run, *images, "--method", ",".join(METHODS), "--out", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(images[0]) and lines[1].strip().startswith("1. ") and lines[5].strip().startswith("5. ")
    for image in images:
        height, width = np.asarray(Image.open(image)).shape[:2]
        for method in METHODS:
            heatmap = np.load(out / f"{image.stem}.{method}.npy")
            assert heatmap.dtype == np.float32 and heatmap.shape == (height, width)
            assert np.isfinite(heatmap).all() and heatmap.max() > 0
            assert Image.open(out / f"{image.stem}.{method}.png").size[0] > 300
    assert (np.load(out / f"{images[2].stem}.gradcam.npy").shape) == (40, 56)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > sheet.size[1]  # six columns, three rows
    assert not list(out.glob(".*.tmp"))


def test_explain_target_by_name_and_layer(digits_run, digits_model, tmp_path):
    from captum.attr import LayerGradCam
    from torch.nn import functional as F

    from cnnlab.data.images import read_image

    run, images = digits_run
    image = read_image(images[0], 1)[None]
    with torch.no_grad():
        assert int(digits_model(image).argmax()) != 7, "the target must differ from the prediction to be seen"
    assert main(["explain", str(run), str(images[0]), "--method", "gradcam", "--target", "7", "--layer", "conv2",
                 "--out", str(tmp_path)]) == 0
    saved = np.load(tmp_path / f"{images[0].stem}.gradcam.npy")
    cam = LayerGradCam(digits_model, digits_model.conv2).attribute(image, target=7, relu_attributions=True)
    reference = F.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    np.testing.assert_allclose(saved, reference, rtol=1e-4, atol=1e-6 * float(np.abs(reference).max()))


def test_visualize_filters_feature_maps_and_activation_max(digits_run, tmp_path):
    run, images = digits_run
    assert main(["visualize", str(run), "--what", "activation-max", "--steps", "30", "--classes", "0,1,2",
                 "--out", str(tmp_path)]) == 0
    assert main(["visualize", str(run), "--what", "filters", "--out", str(tmp_path)]) == 0
    assert main(["visualize", str(run), "--what", "feature-maps", "--image", str(images[0]),
                 "--layer", "conv1,conv3", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "activation-max.png", "filters.png", f"{images[0].stem}.feature-maps.conv1.png",
        f"{images[0].stem}.feature-maps.conv3.png"}


def test_unknown_visualisation_is_one_line_and_exit_code_2(digits_run, capsys):
    assert main(["visualize", str(digits_run[0]), "--what", "filtres"]) == 2
    assert "Similar: 'filters'" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--method", "gradcan"], "Unknown method 'gradcan'. Similar: 'gradcam'"),
    (["--layer", "conv9"], "Unknown layer 'conv9'. Similar: 'conv3', 'conv2', 'conv1'"),
    (["--target", "seven"], "Unknown class 'seven'"),
    (["--target", "10"], "index in [0, 9]"),
])
def test_bad_input_is_one_line_and_exit_code_2(digits_run, tmp_path, capsys, args, message):
    run, images = digits_run
    assert main(["explain", str(run), str(images[0]), "--out", str(tmp_path), *args]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_unreadable_image_exits_2_in_a_subprocess(digits_run, tmp_path):
    run, _ = digits_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = cnnlab("explain", run, broken, "--out", tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("cnnlab explain: error: The file") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
