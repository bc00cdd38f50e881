"""Each metric against an independent implementation, on the same maps: torchcam, pytorch-grad-cam, Quantus.

Where the definitions differ the test states the difference and checks it:
pytorch-grad-cam's DropInConfidence is our drop times Y (no division by the
confidence); ROAD in pytorch-grad-cam is parameterised by the percentile
kept (ROADMostRelevantFirst(80) removes 20%); Quantus seeds each layer
with seed + 1, as cnnlab does, and compares maps without abs or
normalisation when told so.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnlab import explain
from cnnlab.explain.metrics import (confidence_change, deletion, insertion, linear_imputation, pointing_game,
                                    randomisation, road)
from tests.explain.conftest import FunctionalNet


class GivenMaps:
    """torchcam's CAM-extractor interface over maps computed beforehand."""

    def __init__(self, model, maps: torch.Tensor):
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    @contextmanager
    def _hooks_off(self):
        yield


@pytest.fixture(scope="module")
def case():
    """A 5-class CNN on 16x16 RGB images (256 pixels, so 25% steps are whole pixels), 4 images, their predicted
    classes, and saliency and Grad-CAM maps."""
    torch.manual_seed(0)
    net = FunctionalNet(5).eval()
    with torch.no_grad():
        net.fc2.weight.mul_(8)  # confident predictions, so that probabilities move
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    targets = net(x).argmax(-1)
    maps = {"saliency": explain.saliency(net, x, targets), "gradcam": explain.gradcam(net, x, targets)}
    return net, x, targets, maps


def blurred(x: torch.Tensor) -> torch.Tensor:
    """RISE's 11x11 Gaussian of sigma 5 px, edges mirrored, by scipy."""
    return torch.from_numpy(np.stack([[ndimage.gaussian_filter(c, 5, mode="mirror", truncate=1.0) for c in image]
                                      for image in x.numpy()]))


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_deletion_and_insertion_equal_torchcam(case, method):
    from torchcam.metrics import DeletionInsertionMetric

    net, x, targets, maps = case
    if method == "gradcam":  # torchcam breaks ties in raster order, cnnlab at random: compare tie-free maps
        maps = {method: maps[method] + 1e-6 * torch.rand(maps[method].shape, generator=torch.Generator().manual_seed(2))}
    ours_deleted = deletion(net, x, maps[method], targets, steps=16, fill="mean").area
    ours_inserted = insertion(net, x, maps[method], targets, steps=16, fill="blur").area
    for i in range(len(x)):
        image, heatmap = x[i:i + 1], maps[method][i:i + 1]
        mean = DeletionInsertionMetric(GivenMaps(net, heatmap), partial(torch.softmax, dim=-1), steps=16,
                                       baseline=lambda t: t.mean(dim=(2, 3), keepdim=True))
        mean.update(image, int(targets[i]))
        blur = DeletionInsertionMetric(GivenMaps(net, heatmap), partial(torch.softmax, dim=-1), steps=16,
                                       baseline=blurred)
        blur.update(image, int(targets[i]))
        assert ours_deleted[i] == pytest.approx(mean.summary()["deletion_auc"], abs=1e-5)
        assert ours_inserted[i] == pytest.approx(blur.summary()["insertion_auc"], abs=1e-5)


def test_the_area_is_rises_auc_when_the_steps_divide_the_pixels(case):
    net, x, targets, maps = case
    curve = deletion(net, x, maps["saliency"], targets, steps=16)
    probabilities = curve.probabilities
    rise = (probabilities.sum(1) - probabilities[:, 0] / 2 - probabilities[:, -1] / 2) / (probabilities.shape[1] - 1)
    np.testing.assert_allclose(curve.area, rise, atol=1e-7)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_road_equals_pytorch_grad_cam_without_noise(case, method):
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                  RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    net, x, targets, maps = case
    # ROAD sees only the maps' order. pytorch-grad-cam thresholds at an interpolated percentile, which lands on
    # a neighbour when two float32 values are a rounding error apart; ranks (ties broken at random) are spaced.
    noisy = maps[method] + 1e-6 * torch.rand(maps[method].shape, generator=torch.Generator().manual_seed(3))
    heatmaps = noisy.flatten(1).argsort(1).argsort(1).view_as(noisy).float()
    ours = road(net, x, heatmaps, targets, percentages=(25, 50, 75), noise=0)
    outputs = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    for column, removed in enumerate((25, 50, 75)):
        for order, curve in ((RemoveMostRelevantFirst, ours.most_relevant_first),
                             (RemoveLeastRelevantFirst, ours.least_relevant_first)):
            metric = PerturbationConfidenceMetric(order(100 - removed, NoisyLinearImputer(noise=0)))
            theirs = metric(x, heatmaps.numpy(), outputs, net, return_diff=False)
            np.testing.assert_allclose(curve.probabilities[:, column], theirs, atol=2e-6)


def test_linear_imputation_equals_pytorch_grad_cam_and_quantus():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation

    rng = np.random.default_rng(4)
    image = rng.random((3, 18, 23))
    removed = rng.random((18, 23)) < 0.6
    removed[:9, :11] = True  # a large hole as well as scattered pixels
    ours = linear_imputation(image, removed)
    pgc = NoisyLinearImputer(noise=0)(torch.from_numpy(image).float(), torch.from_numpy((~removed).astype(np.float32)))
    np.testing.assert_allclose(ours, pgc.numpy(), atol=1e-6)  # float32 there
    quantus = quantus_imputation(image, np.flatnonzero(removed), noise=0.0)
    np.testing.assert_allclose(ours, quantus, atol=1e-10)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_average_drop_and_increase_equal_torchcam_and_pytorch_grad_cam(case, method):
    from pytorch_grad_cam.metrics.cam_mult_image import (CamMultImageConfidenceChange, DropInConfidence,
                                                         IncreaseInConfidence)
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    from torchcam.methods.core import _CAM
    from torchcam.metrics import ClassificationMetric

    net, x, targets, maps = case
    ours = confidence_change(net, x, maps[method], targets)
    outputs = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    cams = scale_cam_image(maps[method].numpy())
    np.testing.assert_allclose(ours.after - ours.before, CamMultImageConfidenceChange()(x, cams, outputs, net),
                               atol=1e-5)
    # pytorch-grad-cam's drop is absolute, max(0, Y - O); torchcam's and the paper's divide by Y.
    np.testing.assert_allclose(ours.drop / 100 * ours.before, DropInConfidence()(x, cams, outputs, net), atol=1e-5)
    np.testing.assert_allclose(ours.increase / 100, IncreaseInConfidence()(x, cams, outputs, net))
    torchcam = ClassificationMetric(GivenMaps(net, _CAM._normalize(maps[method].clone())),
                                    partial(torch.softmax, dim=-1))
    torchcam.update(x, targets.tolist())
    summary = torchcam.summary()
    assert ours.drop.mean() / 100 == pytest.approx(summary["avg_drop"], abs=1e-5)
    assert ours.increase.mean() / 100 == pytest.approx(summary["conf_increase"], abs=1e-9)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_randomisation_equals_quantus_mprt_layer_by_layer(case, method):
    import quantus

    net, x, targets, maps = case
    ours = randomisation(net, x, explain.METHODS[method], targets, stages=4, seed=5)

    def explain_func(model, inputs, targets, **kwargs):
        return explain.METHODS[method](model, torch.as_tensor(inputs), torch.as_tensor(targets))[:, None].numpy()

    mprt = quantus.MPRT(layer_order="top_down", seed=5, abs=False, normalise=False, disable_warnings=True,
                        display_progressbar=False)
    theirs = mprt(model=net, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[method][:, None].numpy(),
                  explain_func=explain_func, device="cpu")
    assert ours.layers == [name for name in theirs if name != "original"] == ["fc2", "fc1", "conv2", "conv1"]
    for stage, layer in enumerate(ours.layers):
        np.testing.assert_allclose(ours.correlations[:, stage], theirs[layer], atol=1e-6)


def test_pointing_game_equals_quantus_without_tolerance(case):
    import quantus

    net, x, targets, maps = case
    heatmaps = maps["saliency"].numpy()
    masks = np.zeros((4, 16, 16), dtype=bool)
    for i, heatmap in enumerate(heatmaps):
        row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
        if i < 2:  # around the maximum: hits
            masks[i, max(0, row - 2):row + 3, max(0, col - 2):col + 3] = True
        else:  # the opposite corner: misses
            masks[i, (0 if row > 7 else 10):(6 if row > 7 else 16), (0 if col > 7 else 10):(6 if col > 7 else 16)] = 1
    ours = pointing_game(heatmaps, list(masks), tolerance=0)
    theirs = quantus.PointingGame(disable_warnings=True, display_progressbar=False, abs=False, normalise=False)(
        model=net, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=heatmaps[:, None],
        s_batch=masks[:, None].astype(np.float32), device="cpu")
    np.testing.assert_array_equal(ours, theirs)
    assert ours.tolist() == [1, 1, 0, 0]
