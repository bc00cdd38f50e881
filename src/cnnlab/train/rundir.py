"""The run directory: writing it atomically, and loading a model from it or from `pretrained:NAME`.

Layout (see DESIGN.md): config.json, model.safetensors, preprocess.safetensors
(only when ZCA whitening is on), history.csv, metrics.json, checkpoint/.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cnnlab.data.images import read_image, resize, to_channels
from cnnlab.data.preprocess import Preprocess
from cnnlab.errors import RunDirError

PRETRAINED_PREFIX = "pretrained:"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(temporary_path)`` then rename onto `path`, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(data, indent=2) + "\n"))


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda p: Path(p).write_text(text))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data))


def save_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors as safetensors (contiguous CPU copies; shared storage is copied apart)."""
    clean = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    atomic_write(path, lambda p: save_file(clean, p))


@dataclass
class LoadedModel:
    """A model ready to use: logits network, its preprocessing, class names and input shape."""

    model: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    input_shape: tuple[int, int, int]
    interpolation: str = "bilinear"
    source: str = ""
    config: dict = field(default_factory=dict)

    @property
    def network(self) -> nn.Module:
        """Preprocessing and model as one module that takes [0, 1] images (its layers named ``model.*``)."""
        return nn.Sequential(OrderedDict(preprocess=self.preprocess, model=self.model)).eval()

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Fit [0, 1] images of any size and channel count to the model's input shape (resized whole)."""
        channels, height, width = self.input_shape
        return resize(to_channels(images, channels), (height, width), self.interpolation)

    def load_images(self, paths: Sequence[str | os.PathLike]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Read image files: a prepared (N, C, H, W) batch and the originals at their own resolution."""
        originals = [read_image(p, 1 if self.input_shape[0] == 1 else 3) for p in paths]
        return torch.stack([self.prepare(o) for o in originals]), originals

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities for prepared [0, 1] images."""
        device = next(self.model.parameters()).device
        return self.network(images.to(device)).float().softmax(dim=-1).cpu()


def load_model(source: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a run directory or ``pretrained:NAME`` (e.g. ``pretrained:efficientnet_lite0``)."""
    source = str(source)
    if source.startswith(PRETRAINED_PREFIX):
        from cnnlab.models.backbones import get_backbone

        backbone = get_backbone(source[len(PRETRAINED_PREFIX):])
        model = backbone.create()
        preprocess = Preprocess(backbone.mean, backbone.std)
        size = backbone.input_size
        return LoadedModel(model.to(device).eval(), preprocess.to(device), backbone.categories, (3, size, size),
                           backbone.interpolation, source, {"backbone": backbone.name, **backbone.preprocessing})
    return load_run(source, device)


def read_config(run_dir: str | os.PathLike) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"The run directory {run_dir} does not exist; give a directory written by 'cnnlab train' "
                          f"or 'pretrained:NAME'.")
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunDirError(f"The run directory {run_dir} has no config.json; is it a finished cnnlab run?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RunDirError(f"The file {path} is not valid JSON ({error.msg} at line {error.lineno}).") from None


def build_model(config: dict) -> nn.Module:
    """The architecture a run's config describes, with fresh weights."""
    input_shape = tuple(config["input_shape"])
    if config.get("backbone"):
        from cnnlab.models.backbones import get_backbone, replace_head

        backbone = get_backbone(config["backbone"])
        model = backbone.build()
        replace_head(model, backbone.classifier, config["num_classes"])
        return model
    from cnnlab.models.registry import create_model

    return create_model(config["model"], config["num_classes"], input_shape)


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a run's model from config.json and load model.safetensors (no pickle, no code executed)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise RunDirError(f"The run directory {run_dir} has no model.safetensors; the run did not finish.")
    model = build_model(config)
    model.load_state_dict(load_file(str(weights)))
    extra = run_dir / "preprocess.safetensors"
    preprocess = Preprocess.from_config(config.get("preprocess", {}), load_file(str(extra)) if extra.is_file() else None)
    return LoadedModel(model.to(device).eval(), preprocess.to(device), list(config["class_names"]),
                       tuple(config["input_shape"]), config.get("interpolation", "bilinear"), str(run_dir), config)
