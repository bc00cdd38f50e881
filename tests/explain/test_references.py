"""Each method against a reference implementation on the same model and input.

References: captum (Saliency, GuidedBackprop, Deconvolution, LayerGradCam,
GuidedGradCam, Occlusion) and pytorch-grad-cam (GradCAM). Where no library
covers a case (ReLU6 and fused activations, Grad-CAM through modified ReLUs),
the reference is captum's own algorithm (backward hooks on activation
modules) applied to every ReLU-family module of an out-of-place copy.
"""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam, LayerGradCam, Occlusion, Saliency
from .conftest import FunctionalNet, ModuleNet, correlation, digits
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.nn import functional as F

from cnnlab import explain

RELU_FAMILY = (nn.ReLU, nn.ReLU6)
pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations")


def out_of_place(model: nn.Module) -> nn.Module:
    """A copy whose activations do not work in place, so module backward hooks can see them."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return twin


def hooked_reference(model: nn.Module, rule: str) -> nn.Module:
    """An out-of-place copy whose ReLU and ReLU6 modules pass gradients back by `rule` (captum's hooks, extended)."""
    twin = out_of_place(model)

    def guided(module, grad_input, grad_output):
        return (grad_input[0].clamp(min=0),)

    def rectified(module, grad_input, grad_output):
        return (grad_output[0].clamp(min=0),)

    for module in twin.modules():
        if isinstance(module, RELU_FAMILY):
            module.register_full_backward_hook(guided if rule == "guided" else rectified)
    return twin


def reference_input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return gradient


def captum_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """captum's LayerGradCam with ReLU, upsampled bilinearly: the definition DESIGN.md fixes."""
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def per_image_minmax(maps: torch.Tensor) -> torch.Tensor:
    low = maps.flatten(1).min(dim=1).values[:, None, None]
    high = maps.flatten(1).max(dim=1).values[:, None, None]
    return (maps - low) / (high - low + 1e-7)


@pytest.fixture
def seed_cnn(digits_model):
    return digits_model


def inputs(shape, count=3, seed=0):
    return torch.rand(count, *shape, generator=torch.Generator().manual_seed(seed))


CASES = {
    # name: (model fixture, input shape, default Grad-CAM layer: the last feature map after its activation)
    "seed-cnn": ("seed_cnn", (1, 28, 28), "tanh3"),
    "resnet18": ("resnet18", (3, 64, 64), "layer4"),
    "efficientnet": ("efficientnet", (3, 64, 64), "bn2"),
}


@pytest.fixture(params=list(CASES))
def case(request):
    fixture, shape, layer = CASES[request.param]
    model = request.getfixturevalue(fixture)
    x = digits(3)[0] if fixture == "seed_cnn" else inputs(shape)
    target = torch.tensor([1, 2, 3])
    return request.param, model, x, target, layer


def test_saliency_equals_captum(case):
    name, model, x, target, _ = case
    reference = Saliency(model).attribute(x.clone().requires_grad_(), target=target, abs=True).amax(dim=1)
    assert correlation(explain.saliency(model, x, target), reference) > 0.9999
    assert torch.allclose(explain.saliency(model, x, target), reference, atol=1e-6 * float(reference.abs().max()))


def test_gradcam_equals_captum_and_pytorch_grad_cam(case):
    name, model, x, target, layer = case
    ours = explain.gradcam(model, x, target)  # the default layer
    module = dict(model.named_modules())[layer]
    assert torch.allclose(ours, explain.gradcam(model, x, target, layer=layer))
    assert correlation(ours, captum_gradcam(model, module, x, target)) > 0.9999
    # pytorch-grad-cam min-max scales each map and resizes it with OpenCV; equal up to that scaling.
    with GradCAM(model=model, target_layers=[module]) as cam:
        theirs = torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target]))
    assert correlation(per_image_minmax(ours), theirs) > 0.99


def test_guided_and_rectified_equal_captum_on_resnet_with_in_place_relus(resnet18):
    x, target = inputs((3, 64, 64)), torch.tensor([0, 4, 9])
    assert any(getattr(m, "inplace", False) for m in resnet18.modules())
    # captum needs out-of-place ReLUs for its module backward hooks; cnnlab runs the model as it is.
    twin = out_of_place(resnet18)
    guided = GuidedBackprop(twin).attribute(x.clone().requires_grad_(), target=target).abs().amax(dim=1)
    assert correlation(explain.guided(resnet18, x, target), guided) > 0.9999
    deconv = Deconvolution(twin).attribute(x.clone().requires_grad_(), target=target).abs().amax(dim=1)
    assert correlation(explain.rectified(resnet18, x, target), deconv) > 0.9999
    assert correlation(explain.guided(resnet18, x, target), explain.saliency(resnet18, x, target)) < 0.9


def test_guided_gradcam_equals_captum(resnet18):
    x, target = inputs((3, 64, 64)), torch.tensor([0, 4, 9])
    twin = out_of_place(resnet18)
    # captum upsamples with 'nearest' unless told; cnnlab uses bilinear everywhere. captum keeps the sign and
    # the channels; cnnlab's map is their max |.| over channels, which equals it because Grad-CAM is >= 0.
    theirs = GuidedGradCam(twin, twin.layer4).attribute(
        x.clone().requires_grad_(), target=target, interpolate_mode="bilinear").detach().abs().amax(dim=1)
    ours = explain.guided_gradcam(resnet18, x, target)
    assert correlation(ours, theirs) > 0.9999
    assert torch.allclose(ours, theirs, atol=1e-5 * float(theirs.max()))


def test_functional_relus_are_modified_like_relu_modules():
    torch.manual_seed(0)
    functional = FunctionalNet().eval()
    modules = ModuleNet(functional).eval()
    x, target = inputs((3, 16, 16), count=4), torch.tensor([0, 1, 2, 3])
    guided = GuidedBackprop(modules).attribute(x.clone().requires_grad_(), target=target).abs().amax(dim=1)
    deconv = Deconvolution(modules).attribute(x.clone().requires_grad_(), target=target).abs().amax(dim=1)
    assert torch.allclose(explain.guided(functional, x, target), guided, atol=1e-6)
    assert torch.allclose(explain.rectified(functional, x, target), deconv, atol=1e-6)
    assert not torch.allclose(explain.guided(functional, x, target), explain.saliency(functional, x, target))


@pytest.mark.parametrize("rule", ["guided", "rectified"])
def test_efficientnet_relu6_inside_batchnormact_is_modified(efficientnet, rule):
    """timm's BatchNormAct2d applies ReLU6 inside; captum's GuidedBackprop hooks only nn.ReLU and returns the
    plain gradient on this network. cnnlab must modify every ReLU6."""
    x, target = inputs((3, 64, 64), count=2), torch.tensor([3, 7])
    ours = (explain.guided if rule == "guided" else explain.rectified)(efficientnet, x, target)
    reference = reference_input_gradient(hooked_reference(efficientnet, rule), x, target).abs().amax(dim=1)
    plain = explain.saliency(efficientnet, x, target)
    assert correlation(ours, reference) > 0.9999
    assert correlation(ours, plain) < 0.9


def test_gradcam_variants_equal_layergradcam_through_hooked_relus(resnet18, efficientnet):
    for model, layer in ((resnet18, "layer4.1.conv2"), (efficientnet, "conv_head")):
        x, target = inputs((3, 64, 64), count=2), torch.tensor([3, 7])
        for rule, method in (("guided", explain.gradcam_guided), ("rectified", explain.gradcam_rectified)):
            twin = hooked_reference(model, rule)
            reference = captum_gradcam(twin, dict(twin.named_modules())[layer], x, target)
            assert correlation(method(model, x, target, layer=layer), reference) > 0.999


@pytest.mark.parametrize("patch,stride", [(6, 3), (7, 4)])
def test_occlusion_equals_captum_on_softmax(digits_model, patch, stride):
    x = digits(4)[0]
    result = explain.occlusion(digits_model, x, patch=patch, stride=stride, fill=0.25, batch=5)
    theirs = Occlusion(lambda z: digits_model(z).softmax(dim=-1)).attribute(
        x, sliding_window_shapes=(1, patch, patch), strides=(1, stride, stride), baselines=0.25,
        target=result.targets)[:, 0]
    assert torch.allclose(result.importance, theirs, atol=1e-5)
    assert correlation(result.importance, theirs) > 0.9999


def test_occlusion_equals_captum_on_resnet(resnet18):
    x = inputs((3, 32, 32), count=2)
    result = explain.occlusion(resnet18, x, target=torch.tensor([2, 5]), patch=8, stride=8, fill=0.0)
    theirs = Occlusion(lambda z: resnet18(z).softmax(dim=-1)).attribute(
        x, sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8), baselines=0.0, target=torch.tensor([2, 5]))
    assert torch.allclose(result.importance, theirs.amax(dim=1), atol=1e-6)
