"""What `cnnlab export` calls: the model and its preprocessing as one ONNX or TorchScript file, checked on write.

The exported graph is `LoadedModel.network` (the run's samplewise, featurewise
and ZCA preprocessing, then the model) followed by a softmax: the exact
computation `LoadedModel.predict` runs on prepared images. Its input is
(N, C, H, W) float32 in [0, 1] at the run's input shape; fitting other sizes
to it (the run's antialiased resize, `LoadedModel.prepare`) stays outside the
graph, since the TorchScript-based ONNX exporter has no antialiased resize.
ONNX goes through that exporter (``dynamo=False``): it needs no onnxscript and
writes the same bytes for the same model. Every file is run once before it is
renamed into place (onnxruntime for ONNX, torch.jit.load for TorchScript) and
compared with the run's own `predict`; a file that disagrees is never written.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import torch
from torch import nn

from cnnlab.errors import ConfigError, ModelError, unknown
from cnnlab.files import atomic_write
from cnnlab.run import PRETRAINED_PREFIX, load_model

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17
TOLERANCE = 1e-5  # the largest |p_exported - p_run| a written file may show on the check images
CHECK_IMAGES = 4
INSTALL_HINT = "pip install 'cnnlab[export]'"


@dataclass
class ExportResult:
    """A written export: where, its format, whether any batch size fits, and its largest difference from the run."""

    path: Path
    format: str
    dynamic_batch: bool
    max_abs_diff: float


class _Probabilities(nn.Module):
    """Preprocessing, model and softmax: [0, 1] images in, class probabilities out."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images).float().softmax(dim=-1)


class _ShapeChecked(nn.Module):
    """A traced module behind a check of the input shape (-1: any size), so a wrong batch is refused by name."""

    def __init__(self, inner: nn.Module, shape: List[int]):
        super().__init__()
        self.inner, self.shape = inner, shape

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = self.shape
        got = images.shape
        fits = len(got) == len(expected)
        for axis in range(len(expected)):
            if fits and expected[axis] != -1 and got[axis] != expected[axis]:
                fits = False
        if not fits:
            raise ValueError("The exported model takes images of shape {} (-1: any); got {}.".format(expected,
                                                                                                       list(got)))
        return self.inner(images)


def export_model(source: str | os.PathLike, format: str = "onnx", out: str | os.PathLike | None = None, *,
                 dynamic_batch: bool = False, batch: int = 1, print_fn: Callable[[str], None] = print) -> ExportResult:
    """Write the model of `source` (a run directory or ``pretrained:NAME``) with its preprocessing as `format`.

    `out` defaults to the run directory's path with the format's suffix
    (``runs/demo.onnx``). A fixed export takes batches of `batch` images
    only; `dynamic_batch` takes any number. The file is checked against the
    run's `predict` before it is renamed into place, and the largest
    difference is printed and returned.
    """
    if format not in FORMATS:
        raise ConfigError(unknown("--format value", format, FORMATS))
    if batch < 1:
        raise ConfigError(f"The --batch option of cnnlab export must be an integer >= 1. Got {batch} instead.")
    if format == "onnx":
        _require_onnx()
    loaded = load_model(source, "cpu")
    path = Path(out) if out is not None else default_out(source, format)
    example = check_images(loaded.input_shape, CHECK_IMAGES if dynamic_batch else batch)
    expected = loaded.predict(example)
    module = _Probabilities(loaded.network).eval()
    found: dict = {}

    def write(temporary: str) -> None:
        with torch.no_grad():
            (_write_onnx if format == "onnx" else _write_torchscript)(module, example, temporary, dynamic_batch)
        found["diff"] = float((run_exported(temporary, example, format) - expected).abs().max())
        if not found["diff"] < TOLERANCE:
            raise ModelError(f"The {format} export of {source} gives probabilities {found['diff']:.2g} away from the "
                             f"run's own (more than {TOLERANCE:g}); nothing was written.")

    atomic_write(path, write)
    result = ExportResult(path, format, dynamic_batch, found["diff"])
    c, h, w = loaded.input_shape
    rows = "N" if dynamic_batch else str(batch)
    print_fn(f"Wrote {path} ({format}): ({rows}, {c}, {h}, {w}) float32 images in [0, 1] -> probabilities of "
             f"{len(loaded.class_names)} classes")
    print_fn(f"max |p_{format} - p_run| = {result.max_abs_diff:.2g} on "
             f"{len(example)} check images")
    return result


def default_out(source: str | os.PathLike, format: str) -> Path:
    """``RUN_DIR.onnx`` beside the run directory, or ``NAME.onnx`` for ``pretrained:NAME``."""
    text = str(source).rstrip("/\\")
    if text.startswith(PRETRAINED_PREFIX):
        return Path(text[len(PRETRAINED_PREFIX):] + FORMATS[format])
    return Path(text + FORMATS[format])


def check_images(input_shape, count: int) -> torch.Tensor:
    """`count` seeded uniform [0, 1] images of `input_shape`: the example the export traces, and its check."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(count, *input_shape, generator=generator)


def run_exported(path: str | os.PathLike, images: torch.Tensor, format: str | None = None) -> torch.Tensor:
    """Class probabilities from an exported file for (N, C, H, W) [0, 1] images; ModelError for a shape it
    does not take (a fixed export refuses another batch size)."""
    format = format or ("onnx" if str(path).endswith(".onnx") else "torchscript")
    images = images.float().contiguous()
    if format == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit's notice that torch.export is newer
                module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as error:
            raise ModelError(f"The file {path} is not a readable TorchScript model ({_last_line(error)}).") from None
        try:
            with torch.no_grad():
                return module(images)
        except torch.jit.Error as error:
            raise ModelError(_last_line(error)) from None
    _require_onnx()
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types, one per way a file can be wrong
        raise ModelError(f"The file {path} is not a readable ONNX model ({_last_line(error)}).") from None
    declared = session.get_inputs()[0].shape
    if len(declared) != images.dim() or any(isinstance(d, int) and d != g for d, g in zip(declared, images.shape)):
        shape = [d if isinstance(d, int) else -1 for d in declared]
        raise ModelError(f"The exported model takes images of shape {shape} (-1: any); got {list(images.shape)}.")
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if "exported model takes" in line), lines[-1])
    return message.split("Error: ", 1)[-1]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(f"ONNX export needs the onnx and onnxruntime packages: {INSTALL_HINT}") from None


def _write_onnx(module: nn.Module, example: torch.Tensor, path: str, dynamic_batch: bool) -> None:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice, and tracer notes on constant shapes
        torch.onnx.export(module, (example,), path, dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=["probabilities"],
                          dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}} if dynamic_batch
                          else None)
    onnx.checker.check_model(path)


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: str, dynamic_batch: bool) -> None:
    shape = [-1 if dynamic_batch else len(example), *example.shape[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's notice that torch.export is newer, and tracer notes
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(torch.jit.script(_ShapeChecked(traced, shape)), path)

