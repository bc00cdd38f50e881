"""The default layer (the last feature map after its activation), zero maps, scales, options, stems and `explain`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from PIL import Image
from torch import nn

from cnnlab import explain
from cnnlab.cli import main
from cnnlab.explain.api import explain_files, unique_stems
from cnnlab.explain.render import contact_sheet, explanation_figure, occlusion_figure
from cnnlab.models import create_model

from .conftest import DIGITS_SHAPE, FunctionalNet, ModuleNet, correlation, digits


class NormedNet(nn.Module):
    """A convolution, a batch-norm module, then a functional ReLU: the map is named after the norm."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(nn.functional.relu(self.norm(self.conv(x))).mean(dim=(2, 3)))


def _mobilenet():
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(num_classes=10)


# name: (model builder, input shape, the default layer)
ARCHITECTURES = {
    "seed-cnn": (lambda: create_model("seed-cnn", 10, DIGITS_SHAPE), DIGITS_SHAPE, "tanh3"),
    "mnist-cnn": (lambda: create_model("mnist-cnn", 10, DIGITS_SHAPE), DIGITS_SHAPE, "relu2"),
    "simple-cnn": (lambda: create_model("simple-cnn", 10, DIGITS_SHAPE), DIGITS_SHAPE, "sigmoid1"),
    "spec": (lambda: create_model("conv(4,3)-relu-conv(6,3)-tanh-avgpool(2)-flatten-dense(10)", 10,
                                  DIGITS_SHAPE), DIGITS_SHAPE, None),
    "resnet18": (lambda: __import__("torchvision").models.resnet18(num_classes=10), (3, 64, 64), "layer4"),
    # at 32x32 the last block is 1x1, as is the average pool after it: pooling ends the map, not its size
    "resnet18@32": (lambda: __import__("torchvision").models.resnet18(num_classes=10), (3, 32, 32), "layer4"),
    "mobilenet_v2": (_mobilenet, (3, 64, 64), "features"),
    "efficientnet_lite0": (lambda: __import__("cnnlab.models", fromlist=["get_backbone"]).get_backbone(
        "efficientnet_lite0").build(), (3, 64, 64), "bn2"),
    "functional": (FunctionalNet, (3, 16, 16), "conv2+relu"),
    "normed": (NormedNet, (3, 8, 8), "norm+relu"),
}


def _last_activation(model: nn.Module) -> str:
    """Reference for a Sequential spec model: the activation module after the last convolution."""
    names = [n for n, _ in model.named_modules() if n]
    modules = dict(model.named_modules())
    last_conv = max(i for i, n in enumerate(names) if isinstance(modules[n], nn.Conv2d))
    return next(n for n in names[last_conv:] if isinstance(modules[n], (nn.ReLU, nn.Tanh, nn.Sigmoid)))


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_default_layer_is_the_last_feature_map_after_its_activation(architecture):
    build, shape, expected = ARCHITECTURES[architecture]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(2, *shape)
    name, _ = explain.find_layer(model, None, x)
    assert name == (expected or _last_activation(model))
    assert explain.find_layer(model, None)[0] == name  # a probe image finds the same layer
    # The name is usable again, and it is the layer Grad-CAM uses by default.
    assert explain.find_layer(model, name)[0] == name
    assert torch.allclose(explain.gradcam(model, x, 1), explain.gradcam(model, x, 1, layer=name))


def test_a_functional_activation_is_captured_after_it():
    torch.manual_seed(0)
    functional = FunctionalNet().eval()
    twin = ModuleNet(functional).eval()  # the same weights, with nn.ReLU modules captum can hook
    x, target = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 4])
    reference = LayerGradCam(twin, twin.relu2).attribute(x, target=target, relu_attributions=True).detach()
    reference = nn.functional.interpolate(reference, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    ours = explain.gradcam(functional, x, target)
    assert torch.allclose(ours, reference, atol=1e-6 * float(reference.abs().max()))
    # The pre-activation output of conv2 is a different layer, with a different map.
    assert correlation(explain.gradcam(functional, x, target, layer="conv2"), reference) < 0.999
    features = explain.feature_maps(functional, x, ["conv2+relu"])["conv2+relu"]
    assert torch.equal(features, torch.relu(functional.conv2(nn.functional.max_pool2d(
        torch.relu(functional.conv1(x)), 2))))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo recipe, cut to three epochs."""
    from cnnlab.demo import DEMO_RECIPE
    from cnnlab.train.api import train

    out = tmp_path_factory.mktemp("demo") / "run"
    train(**{**DEMO_RECIPE, "epochs": 3}, out=out, overwrite=True, quiet=True, progress=False)
    return out


def test_the_demo_models_test_digits_get_non_zero_gradcam_maps(demo_run):
    from cnnlab.run import Run, load_model

    loaded = load_model(demo_run, "cpu")
    test = Run.open(demo_run).splits().test
    x = torch.stack([test[i][0] for i in range(len(test))])
    network = loaded.network
    assert explain.find_layer(network, None, x)[0] == "model.relu2"
    maps = torch.cat([explain.gradcam(network, x[s:s + 60]) for s in range(0, len(x), 60)])
    non_zero = int((maps.flatten(1).amax(dim=1) > 0).sum())
    assert non_zero > 0.8 * len(x)


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory):
    """mnist-cnn whose second convolution never fires: Grad-CAM at relu2 is zero everywhere."""
    from cnnlab.run import Run, RunConfig, TrainConfig

    torch.manual_seed(0)
    model = create_model("mnist-cnn", 10, DIGITS_SHAPE)
    with torch.no_grad():
        model.conv2.bias.fill_(-1e3)
    root = tmp_path_factory.mktemp("dead")
    config = RunConfig(model="mnist-cnn", backbone=None, num_classes=10, class_names=[str(i) for i in range(10)],
                       input_shape=list(DIGITS_SHAPE), data="digits", train=TrainConfig(model="mnist-cnn"))
    with Run.create(root / "run", config) as written:
        written.finish(model.state_dict(), {})
    path = root / "seven.png"
    Image.fromarray((digits(8)[0][7, 0].numpy() * 255).astype(np.uint8)).save(path)
    return root / "run", path


def test_a_zero_map_is_reported_and_captioned(dead_run, tmp_path, capsys):
    run, image = dead_run
    assert main(["explain", str(run), str(image), "--method", "gradcam", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "seven.png: gradcam map is zero everywhere: no positive evidence for class" in printed
    assert "at layer relu2; try --layer conv2 or another method" in printed
    assert not np.load(tmp_path / "seven.gradcam.npy").any()
    figure = explanation_figure(np.zeros((8, 8)), np.zeros((8, 8)), "gradcam", "x.png", units="u")
    assert "zero everywhere" in figure._suptitle.get_text()


def test_figures_carry_colour_bars_in_the_methods_units_and_the_maximum():
    image, heatmap = np.zeros((8, 8)), np.outer(np.arange(8), np.ones(8)) / 7 * 0.25
    figure = explanation_figure(image, heatmap, "occlusion", "x.png", units="drop in probability")
    labels = [axis.get_ylabel() for axis in figure.axes]
    assert "drop in probability" in labels and "max 0.25 drop in probability" in figure._suptitle.get_text()
    sheet = contact_sheet([image, image], {"gradcam": [heatmap, 2 * heatmap]}, ["a", "b"], units={"gradcam": "u"})
    bars = [axis for axis in sheet.axes if axis.get_xlabel() == "u"]
    assert len(bars) == 1 and bars[0].get_xlim() == pytest.approx((0.0, 0.5))  # one scale for the column


def test_occlusion_is_drawn_on_a_fixed_probability_scale_unless_relative():
    image, probability, predicted = np.zeros((8, 8)), np.full((8, 8), 0.9997), np.zeros((2, 2), int)
    probability[0, 0] = 0.9994

    def limits(scale):
        figure = occlusion_figure(image, probability, predicted, ["a"], "x.png", "a", scale)
        return figure.axes[1].images[0].get_clim()

    assert limits("fixed") == (0.0, 1.0)
    assert limits("relative") == pytest.approx((0.9994, 0.9997))


def test_options_reach_the_methods_that_take_them(digits_run, tmp_path, capsys):
    run, images = digits_run
    assert main(["explain", str(run), str(images[0]), "--method", "occlusion,saliency", "--option", "patch=7",
                 "--option", "stride=7", "--out", str(tmp_path)]) == 0
    loaded = __import__("cnnlab.run", fromlist=["load_model"]).load_model(run, "cpu")
    inputs, _ = loaded.load_images(images[:1])
    saved = np.load(tmp_path / f"{images[0].stem}.occlusion.npy")  # p(target) with the patch over each pixel
    assert np.allclose(saved, explain.occlusion(loaded.network, inputs, patch=7, stride=7).probability[0].numpy(),
                       atol=1e-6)
    assert not np.allclose(saved, explain.occlusion(loaded.network, inputs).probability[0].numpy(), atol=1e-3)
    assert main(["explain", str(run), str(images[0]), "--option", "stepz=3", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "'stepz'" in error


def test_images_with_the_same_name_keep_their_own_outputs(digits_run, tmp_path):
    run, images = digits_run
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    first.write_bytes(images[0].read_bytes()), second.write_bytes(images[1].read_bytes())
    assert unique_stems([first, second, tmp_path / "x.jpg"]) == ["x", "x-2", "x-3"]
    explain_files(run, [first, second], methods="saliency", out=tmp_path / "out", print_fn=lambda line: None)
    one, two = np.load(tmp_path / "out" / "x.saliency.npy"), np.load(tmp_path / "out" / "x-2.saliency.npy")
    loaded = __import__("cnnlab.run", fromlist=["load_model"]).load_model(run, "cpu")
    inputs, _ = loaded.load_images([first, second])
    assert np.allclose(one, explain.saliency(loaded.network, inputs[:1])[0].numpy(), atol=1e-6)
    assert np.allclose(two, explain.saliency(loaded.network, inputs[1:])[0].numpy(), atol=1e-6)


def test_explain_takes_tensors_arrays_and_pil_images_alike(digits_run, digits_model):
    from cnnlab.run import load_model

    run, images = digits_run
    picture = Image.open(images[0])
    grey = np.array(picture)  # (H, W) uint8
    rgb = np.repeat(grey[..., None], 3, axis=-1)  # (H, W, 3) uint8: the run's model is grey, so averaged
    forms = [picture, grey, rgb, grey.astype(np.float32) / 255, torch.from_numpy(grey)[None].float() / 255,
             (grey.astype(np.float32) / 255)[None], [picture]]
    loaded = load_model(run, "cpu")
    reference = explain.gradcam(loaded.network, loaded.load_images(images[:1])[0])[0].numpy()
    for form in forms:
        result = explain.explain(run, form, "gradcam")
        assert result.maps.dtype == np.float32 and result.maps.shape == (1, 28, 28)
        assert np.allclose(result.maps[0], reference, atol=1e-6)
        assert result.layer == "tanh3" and result.units == "Grad-CAM (logit units)"
        assert result.maximum[0] == pytest.approx(reference.max())
    # A bare module takes the images as given.
    bare = explain.explain(digits_model, torch.from_numpy(grey)[None].float() / 255, "saliency", target=3)
    assert bare.layer is None and list(bare.targets) == [3]
    assert np.allclose(bare.maps[0], explain.saliency(digits_model, torch.from_numpy(grey)[None, None] / 255, 3)[0])
    assert bare.plot().axes


def test_progress_is_silent_off_a_terminal():
    from cnnlab.progress import progress

    steps = range(3)
    assert progress(steps, desc="x") is steps  # pytest's stderr is not a terminal
