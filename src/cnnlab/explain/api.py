"""What the command line calls: explain image files, visualise a model, and the demo's photo explanations.

Each function takes a run directory, ``pretrained:NAME`` or a `LoadedModel`,
writes PNGs (and raw maps as float32 .npy) atomically, prints through
`print_fn`, and returns the paths it wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from cnnlab.errors import ConfigError, invalid, similar, unknown
from cnnlab.explain.activation_max import activation_max
from cnnlab.explain.base import device_of, find_layer, targets_for, upsample
from cnnlab.explain.features import convolution_names, default_feature_layers, feature_maps, filters
from cnnlab.explain.metrics import Settings, plan_evaluation
from cnnlab.explain.methods.occlusion import occlusion
from cnnlab.explain.registry import get_method, parse_methods
from cnnlab.explain.render import (SCALES, contact_sheet, explanation_figure, grid_figure, occlusion_figure,
                                   save_figure, to_numpy_image)
from cnnlab.files import atomic_write
from cnnlab.progress import progress
from cnnlab.run import LoadedModel, load_model

VISUALIZATIONS = ("filters", "feature-maps", "activation-max")
IMAGES_PER_PASS = 8


@dataclass
class Explanation:
    """What `explain` returns: the maps as NumPy arrays with what they mean."""

    maps: np.ndarray  # (N, H, W) float32, at the images' own resolution
    method: str
    layer: str | None  # the layer the maps come from, as `layer=` takes it (None: not a layer method)
    targets: np.ndarray  # (N,) the class each map explains
    units: str  # what one unit of a map means
    maximum: np.ndarray  # (N,) each map's maximum (0 where a map is zero everywhere)
    images: np.ndarray = field(repr=False)  # (N, H, W, 3) the images in [0, 1], for drawing
    class_names: list[str] | None = field(default=None, repr=False)

    def plot(self, index: int | None = None, percentile: float | None = None):
        """A matplotlib Figure: image `index` (default: the only one) with its map and colour bar, or, for
        several images, one row each on a shared scale."""
        percentile = get_method(self.method).percentile if percentile is None else percentile
        name = self.class_names or [str(i) for i in range(int(self.targets.max()) + 1)]
        if index is not None or len(self.maps) == 1:
            index = index or 0
            return explanation_figure(self.images[index], self.maps[index], self.method,
                                      f"explaining {name[int(self.targets[index])]}", percentile, self.units)
        captions = [f"explaining {name[int(t)]}" for t in self.targets]
        return contact_sheet(list(self.images), {self.method: list(self.maps)}, captions,
                             {self.method: percentile}, {self.method: self.units})


def explain(model, images, method: str = "gradcam", target: int | str | Sequence | None = None,
            layer: str | None = None, device: str = "cpu", **options) -> Explanation:
    """Explain `images` with `method` for a notebook: the maps as NumPy arrays, with their layer and units.

    `model` is a run directory, ``pretrained:NAME``, a `LoadedModel` (images
    are prepared as the run's images are: channels, size, normalisation) or a
    bare ``nn.Module`` (images used as given). `images` is one image or a list
    or batch of them: torch tensors (C, H, W) or (N, C, H, W), NumPy arrays
    (H, W), (H, W, C) or (C, H, W), uint8 or float in [0, 1], or PIL images.
    `target` is a class index or name (default: the predicted class).
    """
    chosen = get_method(method)
    loaded = model if isinstance(model, (LoadedModel, torch.nn.Module)) else load_model(model, device)
    originals = as_images(images)
    if isinstance(loaded, LoadedModel):
        network, class_names = loaded.network, loaded.class_names
        inputs = torch.stack([loaded.prepare(image) for image in originals]).to(loaded.device)
        target = class_index(target, class_names) if isinstance(target, (str, int)) else target
    else:
        network, class_names = loaded, None
        if len({tuple(i.shape) for i in originals}) > 1:
            raise ConfigError("Images for a bare model must share one shape; the model takes them as given.")
        inputs = torch.stack(originals)
    layer_name = resolved_layer(network, layer, inputs) if chosen.layer else None
    inputs = inputs.to(device_of(network))
    with torch.no_grad():
        logits = network(inputs)
    targets = targets_for(logits, target).cpu()
    maps = chosen(network, inputs, targets, layer=layer_name, **options).detach().cpu().float()
    full = [upsample(m[None], image.shape[-2:])[0].numpy().astype(np.float32) for m, image in zip(maps, originals)]
    if len({m.shape for m in full}) > 1:
        raise ConfigError("Images explained together must share one size; explain them one call each.")
    stacked = np.stack(full)
    pictures = np.stack([to_numpy_image(image) for image in originals]).astype(np.float32)
    return Explanation(stacked, chosen.name, layer_name, targets.numpy(), chosen.units,
                       stacked.reshape(len(stacked), -1).max(axis=1), pictures, class_names)


def as_images(images) -> list[torch.Tensor]:
    """One image or several (tensors, NumPy arrays, PIL images, or a list of them) as float (C, H, W) tensors."""
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in as_images(item)]
    if isinstance(images, torch.Tensor):
        batch = images.detach().cpu()
        batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
        if batch.dim() == 2:
            batch = batch[None]
        if batch.dim() == 3:
            batch = batch[None]
        if batch.dim() != 4:
            raise ConfigError(invalid("image tensor", "explain", "(C, H, W) or (N, C, H, W)", tuple(batch.shape)))
        return list(batch)
    if hasattr(images, "getbands"):  # a PIL image
        images = np.asarray(images.convert("RGB") if images.mode not in ("L", "RGB") else images)
    if isinstance(images, np.ndarray):
        array = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images.astype(np.float32)
        if array.ndim == 2:
            array = array[None]
        elif array.ndim == 3 and array.shape[-1] in (1, 3) and array.shape[0] not in (1, 3):
            array = array.transpose(2, 0, 1)  # HWC
        elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
            array = array.transpose(0, 3, 1, 2)  # NHWC
        return as_images(torch.from_numpy(np.ascontiguousarray(array)))
    raise ConfigError(f"Cannot explain an image of type {type(images).__name__}; give a torch tensor, a NumPy "
                      "array or a PIL image.")


def explain_files(model: str | os.PathLike | LoadedModel, images: Sequence[str | os.PathLike],
                  methods: str | Sequence[str] = "gradcam", target: int | str | None = None, layer: str | None = None,
                  out: str | os.PathLike = "explanations", batch: int | None = None, patch: int | None = None,
                  stride: int | None = None, fill: float = 0.5, top_k: int = 5, device: str = "auto",
                  evaluate: str | None = None, regions: str | os.PathLike | None = None,
                  evaluate_settings: Settings | None = None, options: dict | Sequence[str] | None = None,
                  scale: str = "fixed", print_fn: Callable[[str], None] = print) -> list[Path]:
    """Explain each image with each method: ``<stem>.<method>.png`` and ``.npy`` in `out`, plus a contact sheet.

    Prints each image's top-`top_k` predictions, and a warning for any map
    that is zero everywhere. `target` is a class index or name (default: each
    image's predicted class); `layer` is the layer of the layer methods
    (default: the last spatial feature map after its activation,
    `cnnlab.explain.layers`); `batch`, `patch`, `stride` and `fill` tune
    occlusion, drawn on the probability scale [0, 1] (``scale="relative"``:
    from its minimum to its maximum). `options` (``{"steps": 16}`` or
    ``["steps=16"]``) go to each method that takes them. Images with the same
    file name get stems ``x``, ``x-2``, ... Maps are saved at each image's own
    resolution. `evaluate` (``all`` or metric names) then ranks the methods by
    faithfulness (`cnnlab.explain.metrics`), with `regions` for the pointing game.
    """
    methods = parse_methods(methods)
    if scale not in SCALES:
        raise ConfigError(unknown("scale", scale, SCALES))
    extra_options = method_options(methods, options)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    network = loaded.network
    target_index = class_index(target, loaded.class_names)
    inputs, originals = loaded.load_images(images)
    shown_layer = resolved_layer(network, layer, inputs) if any(m.layer for m in methods) else None
    evaluation = plan_evaluation(evaluate, regions, evaluate_settings, images, originals) if evaluate else None
    probabilities = loaded.predict(inputs)
    names = loaded.class_names
    for path, row in zip(images, probabilities):
        print_fn(f"{path}")
        values, indices = row.topk(min(top_k, len(row)))
        for rank, (p, i) in enumerate(zip(values.tolist(), indices.tolist()), start=1):
            print_fn(f"  {rank}. {names[i]:<28} {p:.3f}")
    out = Path(out)
    stems = unique_stems(images)
    predicted = probabilities.argmax(dim=-1)
    targets = predicted if target_index is None else torch.full_like(predicted, target_index)
    captions = [_caption(Path(p).name, names, row, int(t)) for p, row, t in zip(images, probabilities, targets)]
    written: list[Path] = []
    sheet: dict[str, list[np.ndarray]] = {}
    percentiles, used_options, units, limits = {}, {}, {}, {}
    for method in methods:
        options = {"layer": shown_layer} if method.layer else {}
        if method.figure == "occlusion":
            options = {"batch": batch, "patch": patch, "stride": stride, "fill": fill}
        options = used_options[method.name] = method.check({**options, **extra_options.get(method.name, {})})
        column = "occlusion (drop in p)" if method.figure == "occlusion" else method.name
        sheet[column], percentiles[column], units[column] = [], method.percentile, method.units
        if method.figure == "occlusion" and scale == "fixed":
            limits[column] = (0.0, 1.0)
        chunks = range(0, len(inputs), IMAGES_PER_PASS)
        if method.slow:
            chunks = progress(chunks, desc=method.name)
        for start in chunks:
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
                stem = out / f"{stems[index]}.{method.name}"
                written.append(_save_array(stem.with_name(stem.name + ".npy"), full))
                if extra is None:
                    note = None
                    if not np.any(full):
                        note = zero_map_note(method, names[int(targets[index])], shown_layer, network)
                        print_fn(f"{Path(images[index]).name}: {method.name} map {note}")
                    figure = explanation_figure(original, full, method.name, captions[index], method.percentile,
                                                method.units, note=note and f"map {note.split(';')[0]}")
                    sheet[column].append(full)
                else:
                    figure = occlusion_figure(original, full, extra.predicted[k].numpy(), names, captions[index],
                                              names[int(targets[index])], scale)
                    print_fn(f"{Path(images[index]).name}: occlusion {_class_counts(extra.counts[k], names)}")
                    sheet[column].append(extra.unoccluded[k].item() - full)  # the drop, so hot means important
                save_figure(figure, stem.with_name(stem.name + ".png"))
                written.append(stem.with_name(stem.name + ".png"))
    if len(inputs) > 1:
        save_figure(contact_sheet(originals, sheet, captions, percentiles, units, limits), out / "contact_sheet.png")
        written.append(out / "contact_sheet.png")
    print_fn(f"wrote {len(written)} files to {out}")
    if evaluation is not None:
        written += evaluation.run(loaded, inputs, methods, targets, used_options, out, print_fn)
    return written


def resolved_layer(network: torch.nn.Module, layer: str | None, inputs: torch.Tensor) -> str:
    """The name of the layer the layer methods use (`layer`, or the default for `inputs`), as `layer=` takes it."""
    return find_layer(network, layer, inputs[:1])[0].removeprefix("model.")


def zero_map_note(method, class_name: str, layer: str | None, network: torch.nn.Module) -> str:
    """'is zero everywhere: no positive evidence for class 5 at layer relu2; try --layer conv2 or another method'."""
    if not method.layer:
        return f"is zero everywhere: no positive evidence for class {class_name}; try another method"
    others = [n.removeprefix("model.") for n in convolution_names(network)]
    alternative = next((n for n in reversed(others) if n != layer), None) if others else None
    hint = f"--layer {alternative} or another method" if alternative else "another --layer or another method"
    return f"is zero everywhere: no positive evidence for class {class_name} at layer {layer}; try {hint}"


def method_options(methods, options: dict | Sequence[str] | None) -> dict[str, dict]:
    """`options` (a dict, or ``NAME=VALUE`` strings) split among `methods`: {method name: {option: value}},
    each value converted to the type the method declares. An option no method takes raises ConfigError."""
    if not options:
        return {}
    if not isinstance(options, dict):
        pairs = {}
        for text in options:
            name, equals, value = str(text).partition("=")
            if not equals or not name.strip():
                raise ConfigError(invalid("option", "cnnlab explain", "NAME=VALUE", text))
            pairs[name.strip().replace("-", "_")] = value.strip()
        options = pairs
    split: dict[str, dict] = {}
    for name, value in options.items():
        takers = [m for m in methods if name in m.options or (name == "layer" and m.layer)]
        if not takers:
            methods[0].check({name: value})  # raises the one-line error naming what the method takes
        for method in takers:
            split.setdefault(method.name, {})[name] = _typed(method, name, value)
    return split


def _typed(method, name: str, value):
    option = method.options.get(name)
    if option is None or not isinstance(value, str):
        return value
    try:
        if option.type is bool:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        return option.type(value)
    except ValueError:
        raise ConfigError(invalid(f"{name!r} option", f"method {method.name!r}", f"a {option.type.__name__}",
                                  value)) from None


def unique_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Each file's stem, with ``-2``, ``-3``, ... added to repeats, so outputs never overwrite each other."""
    stems: list[str] = []
    for path in paths:
        stem = candidate = Path(path).stem
        copy = 2
        while candidate in stems:
            candidate, copy = f"{stem}-{copy}", copy + 1
        stems.append(candidate)
    return stems


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
                                    tile_inches=0.9, units="activation"), path)
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
