"""The CAM family against pytorch-grad-cam (and torchcam where it differs), on raw, un-normalised maps.

pytorch-grad-cam min-max scales each map and resizes it with cv2; the
reference here is its un-normalised map instead (`get_cam_image` on its own
captured activations and gradients, then its ReLU), upsampled bilinearly as
cnnlab upsamples. Where the definitions match the maps are allclose:
HiRes-CAM, LayerCAM and XGrad-CAM (pytorch-grad-cam adds 1e-7 to XGrad-CAM's
channel sums), and Grad-CAM++ on models whose logits are scaled by 1e4 so
that the 1e-6 pytorch-grad-cam adds to alpha's denominator is negligible.
Where they differ, the test checks the documented relation:

- Eigen-CAM: cnnlab = ReLU(s * projection), pytorch-grad-cam = ReLU(projection),
  s = +-1 the sign that makes the projection rise with the channels' summed
  activation (pytorch-grad-cam keeps the SVD's arbitrary sign).
- Score-CAM: cnnlab's weights are p_c(X * M_k) (0 for a constant channel, as in
  the authors' code); pytorch-grad-cam's are softmax over channels of the logits
  y_c(X * M_k), with masks upsampled with align_corners=True. Given cnnlab's
  upsampling and a probability target, pytorch-grad-cam's masked scores s_k give
  cnnlab's map as ReLU(sum_k s_k A^k) over the channels that are not constant.
- Ablation-CAM: cnnlab's weights are the logit drops y_c - y_c^k; pytorch-grad-cam's
  are (y_c - y_c^k) / y_c, so on a layer whose output has minimum 0 (where it ablates to 0,
  as cnnlab does) cnnlab = y_c * pytorch-grad-cam when y_c > 0.
- torchcam's GradCAMpp divides alpha on a copy (boolean indexing), so its weights are
  sum_ij ReLU(g)^3: checked, and far from Grad-CAM++.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.nn import functional as F

from cnnlab import explain
from cnnlab.explain.cam import bytes_per_copy
from cnnlab.explain.methods.occlusion import default_batch

pytestmark = pytest.mark.filterwarnings("ignore")
GRADIENT_CAMS = {"gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM, "layercam": LayerCAM}
OURS = ["gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam", "ablation-cam"]


class TinyCNN(nn.Module):
    """Two convolutions with ReLU modules, global pooling and a linear head: 16 channels at conv2."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.relu2(self.conv2(F.max_pool2d(self.relu1(self.conv1(x)), 2)))
        return self.fc(x.mean(dim=(2, 3)))


class ConcatNet(nn.Module):
    """Concatenates an early feature map with a later one, so a batch of one cannot broadcast past conv2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        early = F.relu(self.conv1(x))
        return self.fc(torch.cat([early, F.relu(self.conv2(early))], dim=1).mean(dim=(2, 3)))


class TinyResidual(nn.Module):
    """A basic residual block after a convolution: the skip tensor joins the block's output by `+=`."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.conv1, self.conv2 = nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        identity = F.relu(self.stem(x))
        out = self.conv2(F.relu(self.conv1(identity)))
        out += identity
        return self.fc(F.relu(out).mean(dim=(2, 3)))


class Scaled(nn.Module):
    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.model(x) * self.factor


def tiny():
    torch.manual_seed(0)
    return TinyCNN().eval(), torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(weights=None).eval(), torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


MODELS = {"tiny": tiny, "resnet18": resnet}
SIGNED_LAYER = {"tiny": "conv2", "resnet18": "layer4.1.conv2"}  # convolution outputs, before any activation
RELU_LAYER = {"tiny": "relu2", "resnet18": "layer4"}  # outputs with minimum 0


def pgc_raw(cam_class, model: nn.Module, layer: str, x: torch.Tensor, targets, **options) -> torch.Tensor:
    """pytorch-grad-cam's map before its min-max scaling and cv2 resize: get_cam_image on its own captured
    activations and gradients, its ReLU, then bilinear upsampling; on a copy (it writes .grad)."""
    twin = copy.deepcopy(model)
    module = dict(twin.named_modules())[layer]
    cam = cam_class(twin, [module], **options)
    try:
        outputs = cam.activations_and_grads(x)
        if cam.uses_gradients:
            sum(target(output) for target, output in zip(targets, outputs)).backward()
            gradients = cam.activations_and_grads.gradients[0].numpy()
        else:
            gradients = None
        activations = cam.activations_and_grads.activations[0].numpy()
        raw = cam.get_cam_image(x, module, targets, activations, gradients, False)
    finally:
        cam.activations_and_grads.release()
    return upsampled(torch.from_numpy(np.maximum(raw, 0)), x)


def upsampled(maps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(maps[:, None].float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def logit_targets(targets) -> list:
    return [ClassifierOutputTarget(int(t)) for t in targets]


def close(ours: torch.Tensor, reference: torch.Tensor, rtol: float = 1e-4) -> bool:
    return torch.allclose(ours, reference, rtol=rtol, atol=rtol * float(reference.abs().max()))


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", GRADIENT_CAMS)
def test_gradient_cams_equal_pytorch_grad_cam(method, model_name):
    model, x = MODELS[model_name]()
    if method == "gradcam++":
        model = Scaled(model, 1e4)
    targets = model(x).argmax(dim=1)
    prefix = "model." if method == "gradcam++" else ""
    layers = [SIGNED_LAYER[model_name], RELU_LAYER[model_name]]
    for layer in layers if method != "xgradcam" else layers[1:]:  # XGrad-CAM divides by channel sums
        ours = explain.METHODS[method](model, x, targets, layer=prefix + layer)
        reference = pgc_raw(GRADIENT_CAMS[method], model, prefix + layer, x, logit_targets(targets))
        assert reference.amax() > 0
        assert close(ours, reference), (method, layer)


def test_xgradcam_equals_pytorch_grad_cam_on_signed_activations_too():
    model, x = tiny()
    targets = model(x).argmax(dim=1)
    reference = pgc_raw(XGradCAM, model, "conv2", x, logit_targets(targets))
    assert close(explain.xgradcam(model, x, targets, layer="conv2"), reference, rtol=1e-3)


@pytest.mark.parametrize("model_name", MODELS)
def test_eigencam_is_pytorch_grad_cams_projection_signed_by_the_summed_activation(model_name):
    model, x = MODELS[model_name]()
    layer = SIGNED_LAYER[model_name]
    twin = copy.deepcopy(model)
    cam = EigenCAM(twin, [dict(twin.named_modules())[layer]])
    try:
        cam.activations_and_grads(x)
        activation = cam.activations_and_grads.activations[0]
    finally:
        cam.activations_and_grads.release()
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    projection = torch.from_numpy(get_2d_projection(activation.numpy()))  # (N, h, w), before the ReLU
    summed = activation.sum(dim=1)
    sign = torch.sign((projection * (summed - summed.mean(dim=(1, 2), keepdim=True))).sum(dim=(1, 2)))
    reference = upsampled((sign[:, None, None] * projection).relu(), x)
    ours = explain.eigencam(model, x, layer=layer)
    assert close(ours, reference, rtol=1e-3)
    assert torch.equal(ours, explain.eigencam(model, x, target=1, layer=layer)), "Eigen-CAM ignores the target"


class ProbabilityTarget:
    """pytorch-grad-cam target: the softmax probability of `index`, recording every score it gives."""

    def __init__(self, index: int):
        self.index, self.scores = index, []

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        probability = output.softmax(dim=-1)[self.index]
        self.scores.append(float(probability))
        return probability


@pytest.mark.parametrize("model_name", MODELS)
def test_scorecam_weights_are_pytorch_grad_cams_masked_probabilities(model_name, monkeypatch):
    model, x = MODELS[model_name]()
    x = x[:2] if model_name == "tiny" else x[:1]
    layer = SIGNED_LAYER[model_name]
    targets = model(x).argmax(dim=1)
    # pytorch-grad-cam upsamples its masks with align_corners=True; cnnlab, as everywhere, with False.
    monkeypatch.setattr(torch.nn, "UpsamplingBilinear2d", lambda size: lambda t: F.interpolate(
        t, size=size, mode="bilinear", align_corners=False))
    twin = copy.deepcopy(model)
    module = dict(twin.named_modules())[layer]
    recorders = [ProbabilityTarget(int(t)) for t in targets]
    cam = ScoreCAM(twin, [module])
    try:
        cam.activations_and_grads(x)
        activation = cam.activations_and_grads.activations[0]
        cam.get_cam_weights(x, module, recorders, activation.numpy(), None)
    finally:
        cam.activations_and_grads.release()
    flat = activation.flatten(2)
    constant = flat.amax(dim=2) == flat.amin(dim=2)  # pytorch-grad-cam scores the black image for these
    weights = torch.tensor([r.scores for r in recorders]).masked_fill(constant, 0)  # (N, K)
    reference = upsampled((weights[:, :, None, None] * activation).sum(dim=1).relu(), x)
    ours = explain.scorecam(model, x, targets, layer=layer)
    assert reference.amax() > 0
    assert close(ours, reference, rtol=1e-3)


@pytest.mark.parametrize("model_name", MODELS)
def test_ablation_cam_is_the_logit_times_pytorch_grad_cams_ratio(model_name):
    model, x = MODELS[model_name]()
    layer = RELU_LAYER[model_name]
    with torch.no_grad():
        logits = model(x)
    targets = logits.argmax(dim=1)
    scores = logits.gather(1, targets[:, None])[:, 0]
    assert (scores > 0).all(), "the relation holds for positive logits"
    reference = pgc_raw(AblationCAM, model, layer, x, logit_targets(targets))
    ours = explain.ablation_cam(model, x, targets, layer=layer)
    assert reference.amax() > 0
    assert close(ours, scores[:, None, None] * reference, rtol=1e-3)


def ablated_reference(model: nn.Module, layer: str, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Ablation-CAM by its definition: the whole model once per image and zeroed channel."""
    module = dict(model.named_modules())[layer]
    captured = {}
    handle = module.register_forward_hook(lambda m, i, o: captured.setdefault("value", o.clone()))
    with torch.no_grad():
        scores = model(x).gather(1, targets[:, None])[:, 0]
    handle.remove()
    activation = captured["value"]
    drops = torch.zeros(activation.shape[:2])
    for k in range(activation.shape[1]):
        def zero(m, i, output, k=k):
            output = output.clone()
            output[:, k] = 0
            return output
        handle = module.register_forward_hook(zero)
        with torch.no_grad():
            drops[:, k] = scores - model(x).gather(1, targets[:, None])[:, 0]
        handle.remove()
    return upsampled((drops[:, :, None, None] * activation).sum(dim=1).relu(), x)


def test_ablation_cam_inside_a_residual_block_equals_its_definition():
    """The ablated copies broadcast past the block's skip connection (a batch of one) correctly."""
    torch.manual_seed(0)
    model, x = TinyResidual().eval(), torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([1, 3])
    reference = ablated_reference(model, "conv1", x, targets)
    assert reference.amax() > 0
    assert close(explain.ablation_cam(model, x, targets, layer="conv1"), reference)


def test_ablation_cam_runs_the_image_repeated_where_a_batch_of_one_cannot_broadcast():
    torch.manual_seed(0)
    model, x = ConcatNet().eval(), torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 2])
    reference = ablated_reference(model, "conv2", x, targets)
    assert reference.amax() > 0
    assert close(explain.ablation_cam(model, x, targets, layer="conv2"), reference)


def test_torchcams_gradcampp_weights_are_the_cubed_positive_gradient():
    """Why torchcam is not Grad-CAM++'s reference: its map is ReLU(sum_k (sum_ij ReLU(g)^3) A^k)."""
    from torchcam.methods import GradCAMpp

    model, x = tiny()
    targets = model(x).argmax(dim=1)
    with GradCAMpp(model, target_layer="conv2") as extractor:
        scores = model(x)
        (torchcam,) = extractor(class_idx=targets.tolist(), scores=scores, normalized=False)
        activation, gradient = extractor.hook_a[0], extractor.hook_g[0]
    cubed = ((gradient.relu() ** 3).sum(dim=(2, 3))[:, :, None, None] * activation).sum(dim=1).relu()
    assert torch.allclose(torchcam, cubed, rtol=1e-4, atol=1e-6 * float(cubed.max()))
    ours = explain.METHODS["gradcam++"](model, x, targets, layer="conv2")
    from .conftest import correlation

    assert correlation(upsampled(torchcam, x), ours) < 0.99


@pytest.mark.parametrize("method", OURS)
def test_a_batch_equals_each_image_alone_and_the_target_is_respected(method):
    model, x = tiny()
    layer = RELU_LAYER["tiny"] if method == "xgradcam" else None
    run = explain.METHODS[method]
    options = {"layer": layer}
    batch = run(model, x, 1, **options)
    for i in range(len(x)):
        assert close(batch[i:i + 1], run(model, x[i:i + 1], 1, **options)), i
    other = run(model, x, 3, **options)
    if method == "eigencam":
        assert torch.equal(batch, other)
    else:
        assert not torch.allclose(batch, other, rtol=1e-3, atol=1e-3 * float(batch.abs().max())), method


@pytest.mark.parametrize("method", ["scorecam", "ablation-cam"])
def test_the_budget_bounds_every_pass_and_leaves_the_map_as_it_is(method):
    model, x = tiny()
    x = F.interpolate(x[:2], size=(128, 128))  # 1.2 MB a copy; one thread keeps 12 copies a pass busy
    sizes = []
    handle = model.fc.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    run = explain.METHODS[method]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        unlimited = run(model, x, budget_mb=1e6)
        unlimited_sizes, sizes[:] = list(sizes), []
        budget_mb = 4.0
        bounded = run(model, x, budget_mb=budget_mb)
        busy = default_batch(x[0].numel(), x.device)
    finally:
        handle.remove()
        torch.set_num_threads(threads)
    per_copy = bytes_per_copy(model, x[:1])
    assert max(sizes) * per_copy <= budget_mb * 2**20 < (max(sizes) + 1) * per_copy  # full passes, none larger
    assert max(sizes) < max(unlimited_sizes) == busy < 16 * len(x)  # an unlimited budget: passes keep busy
    assert sum(sizes) >= 16 * len(x)  # every channel of every image was scored
    assert close(bounded, unlimited, rtol=1e-5)


def test_the_budget_counts_the_largest_layer_output_not_only_the_input():
    model, x = tiny()  # the largest output is conv1's (8, 16, 16) float32: twice the input's 3 channels and more
    assert bytes_per_copy(model, x[:1]) == 4 * (3 * 16 * 16 + 2 * 8 * 16 * 16)


@pytest.mark.parametrize("method", OURS)
def test_registered_with_units_references_and_the_many_pass_methods_slow(method):
    entry = explain.METHODS[method]
    assert entry.layer and entry.units and entry.reference.startswith("pytorch-grad-cam")
    assert entry.slow == (method in ("scorecam", "ablation-cam"))
    assert entry.gradients == (method not in ("eigencam", "scorecam", "ablation-cam"))


@pytest.mark.parametrize("method", ["scorecam", "ablation-cam"])
def test_channels_that_cannot_change_the_score_are_not_run(method):
    """Score-CAM's constant channels give no mask, Ablation-CAM's zero channels ablate nothing: both weights
    are 0 by definition, so only the other channels take forward passes."""
    model, x = tiny()
    with torch.no_grad():
        model.conv2.bias[:10] = -100.0  # relu2's channels 0-9 are 0 everywhere
    targets = model(x).argmax(dim=1)
    sizes = []
    handle = model.fc.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    try:
        maps = explain.METHODS[method](model, x, targets, layer="relu2")
    finally:
        handle.remove()
    extra = len(x) + 1  # the intact batch and the size probe
    relu2 = {}
    handle = model.relu2.register_forward_hook(lambda module, inputs, output: relu2.setdefault("value", output))
    with torch.no_grad():
        model(x)
    handle.remove()
    flat = relu2["value"].flatten(2)
    live = flat.amax(dim=2) > (flat.amin(dim=2) if method == "scorecam" else 0)
    assert not live[:, :10].any() and live.sum() > len(x)
    assert sum(sizes) - extra == live.sum()
    if method == "ablation-cam":
        assert close(maps, ablated_reference(model, "relu2", x, targets))
