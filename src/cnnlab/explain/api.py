"""What the command line calls: explain image files, visualise a model, and the demo's photo explanations.

Each function takes a run directory, ``pretrained:NAME`` or a `LoadedModel`,
writes PNGs (and raw maps as float32 .npy) atomically, prints through
`print_fn`, and returns the paths it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from cnnlab.errors import ConfigError, invalid, similar, unknown
from cnnlab.explain.activation_max import activation_max
from cnnlab.explain.base import find_layer, upsample
from cnnlab.explain.features import default_feature_layers, feature_maps, filters
from cnnlab.explain.metrics import Settings, plan_evaluation
from cnnlab.explain.methods.occlusion import occlusion
from cnnlab.explain.registry import parse_methods
from cnnlab.explain.render import contact_sheet, explanation_figure, grid_figure, occlusion_figure, save_figure
from cnnlab.files import atomic_write
from cnnlab.run import LoadedModel, load_model

VISUALIZATIONS = ("filters", "feature-maps", "activation-max")
IMAGES_PER_PASS = 8


def explain_files(model: str | os.PathLike | LoadedModel, images: Sequence[str | os.PathLike],
                  methods: str | Sequence[str] = "gradcam", target: int | str | None = None, layer: str | None = None,
                  out: str | os.PathLike = "explanations", batch: int | None = None, patch: int | None = None,
                  stride: int | None = None, fill: float = 0.5, top_k: int = 5, device: str = "auto",
                  evaluate: str | None = None, regions: str | os.PathLike | None = None,
                  evaluate_settings: Settings | None = None, print_fn: Callable[[str], None] = print) -> list[Path]:
    """Explain each image with each method: ``<stem>.<method>.png`` and ``.npy`` in `out`, plus a contact sheet.

    Prints each image's top-`top_k` predictions. `target` is a class index or
    name (default: each image's predicted class); `layer` is the Grad-CAM
    layer (default: the last convolutional one); `batch`, `patch`, `stride`
    and `fill` tune occlusion. Maps are saved at the image's own resolution.
    `evaluate` (``all`` or metric names) then ranks the methods by faithfulness
    (`cnnlab.explain.metrics`), with `regions` for the pointing game.
    """
    methods = parse_methods(methods)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    network = loaded.network
    if layer is not None and any(m.layer for m in methods):
        find_layer(network, layer)
    target_index = class_index(target, loaded.class_names)
    inputs, originals = loaded.load_images(images)
    evaluation = plan_evaluation(evaluate, regions, evaluate_settings, images, originals) if evaluate else None
    probabilities = loaded.predict(inputs)
    names = loaded.class_names
    for path, row in zip(images, probabilities):
        print_fn(f"{path}")
        values, indices = row.topk(min(top_k, len(row)))
        for rank, (p, i) in enumerate(zip(values.tolist(), indices.tolist()), start=1):
            print_fn(f"  {rank}. {names[i]:<28} {p:.3f}")
    out = Path(out)
    predicted = probabilities.argmax(dim=-1)
    targets = predicted if target_index is None else torch.full_like(predicted, target_index)
    captions = [_caption(Path(p).name, names, row, int(t)) for p, row, t in zip(images, probabilities, targets)]
    written: list[Path] = []
    sheet: dict[str, list[np.ndarray]] = {}
    percentiles, method_options = {}, {}
    for method in methods:
        options = {"layer": layer} if method.layer else {}
        if method.figure == "occlusion":
            options = {"batch": batch, "patch": patch, "stride": stride, "fill": fill}
        options = method_options[method.name] = method.check(options)
        sheet[method.name], percentiles[method.name] = [], method.percentile
        for start in range(0, len(inputs), IMAGES_PER_PASS):
            chunk = slice(start, start + IMAGES_PER_PASS)
            if method.figure == "occlusion":
                result = occlusion(network, inputs[chunk], targets[chunk], **options)
                maps, extra = result.probability, result
            else:
                maps, extra = method(network, inputs[chunk], targets[chunk], **options).cpu(), None
            for k, heatmap in enumerate(maps):
                index = start + k
                original = originals[index]
                full = upsample(heatmap[None].float(), original.shape[-2:])[0].numpy().astype(np.float32)
                stem = out / f"{Path(images[index]).stem}.{method.name}"
                written.append(_save_array(stem.with_name(stem.name + ".npy"), full))
                if extra is None:
                    figure = explanation_figure(original, full, method.name, captions[index], method.percentile)
                    sheet[method.name].append(full)
                else:
                    figure = occlusion_figure(original, full, extra.predicted[k].numpy(), names, captions[index],
                                              names[int(targets[index])])
                    print_fn(f"{Path(images[index]).name}: occlusion {_class_counts(extra.counts[k], names)}")
                    sheet[method.name].append(extra.unoccluded[k].item() - full)  # the drop, so hot means important
                save_figure(figure, stem.with_name(stem.name + ".png"))
                written.append(stem.with_name(stem.name + ".png"))
    if len(inputs) > 1:
        columns = {("occlusion (drop in p)" if m == "occlusion" else m): maps for m, maps in sheet.items()}
        percentiles = {("occlusion (drop in p)" if m == "occlusion" else m): p for m, p in percentiles.items()}
        save_figure(contact_sheet(originals, columns, captions, percentiles), out / "contact_sheet.png")
        written.append(out / "contact_sheet.png")
    print_fn(f"wrote {len(written)} files to {out}")
    if evaluation is not None:
        written += evaluation.run(loaded, inputs, methods, targets, method_options, out, print_fn)
    return written


def visualize(model: str | os.PathLike | LoadedModel, what: str, layer: str | None = None,
              image: str | os.PathLike | None = None, classes: str | Sequence | None = None,
              out: str | os.PathLike = "visualizations", steps: int = 200,
              input_range: str | tuple[float, float] = (0.0, 1.0), device: str = "auto",
              print_fn: Callable[[str], None] = print, **regularisers) -> list[Path]:
    """Draw `what`: ``filters`` (of `layer`, default the first convolution), ``feature-maps`` of `layer`
    (comma-separated; default a few convolutions) for `image`, or ``activation-max`` for `classes`
    (names or indices; with `layer`, channel numbers of that layer). Returns the PNGs written.
    """
    if what not in VISUALIZATIONS:
        raise ConfigError(unknown("visualisation", what, VISUALIZATIONS))
    input_range = _range(input_range)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    network, out = loaded.network, Path(out)
    if what == "filters":
        weights = filters(network, layer)
        tiles = [w.permute(1, 2, 0).numpy() if w.shape[0] == 3 else w.mean(dim=0).numpy() for w in weights]
        kind = "RGB" if weights.shape[1] == 3 else ("grey" if weights.shape[1] == 1 else "mean over input channels")
        path = out / "filters.png"
        save_figure(grid_figure(tiles, title=f"{len(tiles)} filters {tuple(weights.shape[2:])}, {kind}",
                                tile_inches=0.6), path)
        print_fn(f"filters {tuple(weights.shape)} -> {path}")
        return [path]
    if what == "feature-maps":
        if image is None:
            raise ConfigError("Feature maps need an image: pass --image FILE.")
        inputs, _ = loaded.load_images([image])
        layers = [name.strip() for name in layer.split(",")] if layer else [
            name.removeprefix("model.") for name in default_feature_layers(network)]
        written = []
        for name, maps in feature_maps(network, inputs, layers).items():
            name = name.removeprefix("model.")
            channels = maps[0][:64]
            path = out / f"{Path(image).stem}.feature-maps.{name}.png"
            save_figure(grid_figure([c.numpy() for c in channels], title=f"{name}: {channels.shape[0]} of "
                                    f"{maps.shape[1]} channels, {tuple(maps.shape[2:])}", cmap="viridis",
                                    tile_inches=0.9), path)
            print_fn(f"{name} {tuple(maps.shape[1:])} -> {path}")
            written.append(path)
        return written
    if layer is None:
        indices = _class_list(classes, loaded.class_names)
        titles = [loaded.class_names[i] for i in indices]
    else:
        indices = [int(c) for c in _split(classes)] if classes else list(range(16))
        titles = [f"{layer}[{i}]" for i in indices]
    images = activation_max(network, indices, loaded.input_shape, layer=layer, steps=steps, input_range=input_range,
                            **regularisers)
    low, high = input_range
    tiles = [((x - low) / (high - low)).permute(1, 2, 0).squeeze(-1).cpu().numpy() for x in images]
    path = out / ("activation-max.png" if layer is None else f"activation-max.{layer}.png")
    title = "the network's idea of each class" if layer is None else f"what excites {layer}'s channels"
    save_figure(grid_figure(tiles, [t[:14] for t in titles], title, columns=min(len(tiles), 5),
                            tile_inches=1.2), path)
    print_fn(f"activation maximisation of {len(indices)} {'classes' if layer is None else 'channels'} -> {path}")
    return [path]


def demo_photos(out: str | os.PathLike, device: str = "auto", print_fn: Callable[[str], None] = print) -> list[Path]:
    """EfficientNet-Lite0 (ImageNet) on skimage's `chelsea` and `coffee`: top-5 labels and Grad-CAM overlays."""
    from PIL import Image
    from skimage import data

    out = Path(out)
    paths = []
    for name in ("chelsea", "coffee"):
        path = out / f"{name}.png"
        picture = Image.fromarray(getattr(data, name)())
        atomic_write(path, lambda temporary: picture.save(temporary, format="PNG"))
        paths.append(path)
    return paths + explain_files("pretrained:efficientnet_lite0", paths, methods=("gradcam",), out=out,
                                 device=device, print_fn=print_fn)


def class_index(target: int | str | None, class_names: Sequence[str]) -> int | None:
    """A class given by index or by name (case-insensitive) as an index; None stays None."""
    if target is None:
        return None
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise ConfigError(f"The target class must be an index in [0, {len(class_names) - 1}] or a class name. "
                              f"Got {index} instead.")
        return index
    folded = [name.lower() for name in class_names]
    if text.lower() in folded:
        return folded.index(text.lower())
    raise ConfigError(f"Unknown class {text!r}.{similar(text, class_names)} The model has {len(class_names)} "
                      f"classes; give a class name or an index in [0, {len(class_names) - 1}].")


def _class_list(classes, class_names: Sequence[str]) -> list[int]:
    if not classes:
        return list(range(min(len(class_names), 10)))
    return [class_index(c, class_names) for c in _split(classes)]


def _range(values) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in _split(values))
    except (TypeError, ValueError):
        raise ConfigError(invalid("input range", "activation maximisation", "two numbers LOW,HIGH", values)) from None
    return low, high


def _split(values) -> list[str]:
    if isinstance(values, (str, int)):
        values = str(values).split(",")
    return [str(v).strip() for v in values if str(v).strip()]


def _class_counts(counts: torch.Tensor, class_names: Sequence[str], most: int = 4) -> str:
    """'predicted 9 at 60 of 64 patch positions, 2 at 3, 7 at 1'."""
    order = [int(c) for c in counts.argsort(descending=True)[:most] if counts[c] > 0]
    parts = [f"{class_names[c]} at {int(counts[c])}" for c in order]
    return f"predicted {parts[0]} of {int(counts.sum())} patch positions" + "".join(f", {p}" for p in parts[1:])


def _caption(name: str, class_names: Sequence[str], probabilities: torch.Tensor, target: int) -> str:
    predicted = int(probabilities.argmax())
    caption = f"{name}: {class_names[predicted]} ({probabilities[predicted]:.2f})"
    if target != predicted:
        caption += f"; explaining {class_names[target]} ({probabilities[target]:.2f})"
    return caption


def _save_array(path: Path, array: np.ndarray) -> Path:
    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    atomic_write(path, write)
    return path
