"""`write_report`: one self-contained HTML page showing a run, and every plot on it as a PNG beside it."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Callable

import torch

from cnnlab import __version__
from cnnlab.explain import activation_max, feature_maps, filters, gradcam, guided, occlusion, overlay, saliency
from cnnlab.explain.features import convolution_names
from cnnlab.explain.render import grid_figure
from cnnlab.files import check_writable, make_directory, output_error, write_text
from cnnlab.models.summary import Summary, summary
from cnnlab.progress import progress
from cnnlab.report import metrics as scores
from cnnlab.report.diagram import diagram_figure, shape_text
from cnnlab.report.evaluation import Evaluation, evaluate
from cnnlab.report.faithfulness import faithfulness_section
from cnnlab.report.html import Picture, cards, figure, grid, img, page, section, table
from cnnlab.report.plots import (NAMED_CLASSES, array_png, confusion_figure, curve_figure, image_card, image_strip,
                                 lr_figure, png, upscale)
from cnnlab.run import DEFAULT_LR, LoadedModel, Run, RunConfig, read_history
from cnnlab.run.rundir import HISTORY

TOP_LOSSES = 12
MOST_CLASSES = 10  # classes shown in the per-class explanation and activation-maximisation panels
# A network costing more multiply-adds per image than this (a 224x224 backbone, not a digits CNN) gets the
# per-class panels for fewer classes and a coarser occlusion grid, so its report takes a minute or two on a CPU.
BIG_NETWORK = 5e7
MOST_CLASSES_BIG = 4
MOST_FEATURE_LAYERS = 8
MOST_CHANNELS = 32
ACTIVATION_STEPS = 200
# Multiply-adds allowed for activation maximisation (about half a minute on 2 CPU cores): big backbones get
# fewer steps, never fewer than MIN_ACTIVATION_STEPS.
ACTIVATION_BUDGET = 1e11
MIN_ACTIVATION_STEPS = 10
SMALL_INPUT = 3 * 64 * 64  # input values per image below which the report runs torch on one thread


class _Pictures(list):
    """The PNGs of one report, in page order."""

    def add(self, name: str, data: bytes, alt: str) -> Picture:
        picture = Picture(name, data, alt)
        self.append(picture)
        return picture


def write_report(run_dir: str | os.PathLike, data: str | None = None, samples: int | None = 1000,
                 out: str | os.PathLike | None = None, device: str = "auto",
                 print_fn: Callable[[str], None] = print) -> Path:
    """Write the report of `run_dir` to `out` (default ``RUN_DIR/report.html``); return its path.

    Metrics, top losses and explanations come from the run's test split (or
    the test split of `data`, which must have the same classes), of which at
    most `samples` images drawn at random are evaluated. The PNGs go to a
    folder beside the page, named after it (``report_files/``). The page and
    its folder appear together or not at all.
    """
    started = time.perf_counter()
    run = Run.open(run_dir)
    loaded = run.load_model(device)
    out = Path(out) if out is not None else run.path / "report.html"
    if out.is_dir():
        raise output_error(out, IsADirectoryError(21, "Is a directory"))
    check_writable(make_directory(out.parent))
    with _threads_for(loaded.input_shape):
        text, pictures = _build(run, loaded, data, samples, print_fn)
    folder = out.with_name(out.stem + "_files")
    _write_pictures(folder, pictures)
    write_text(out, text)
    print_fn(f"Report written to {out} ({len(text.encode()) / 2**20:.1f} MB; {len(pictures)} PNGs in {folder}) "
             f"in {time.perf_counter() - started:.1f} s")
    return out


@contextmanager
def _threads_for(input_shape):
    """One torch thread for small inputs: their tensors are too small for intra-op threads to pay, and on a busy
    machine the threads only wait on each other (activation maximisation of 28x28 digits took 5x longer with two)."""
    threads = torch.get_num_threads()
    if math.prod(input_shape) <= SMALL_INPUT:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _build(run: Run, loaded: LoadedModel, data, samples, print_fn) -> tuple[str, list[Picture]]:
    run_dir = run.path
    evaluation = evaluate(run, loaded, data, samples)
    print_fn(f"Evaluated {len(evaluation.positions):,} of {evaluation.total:,} test images of {evaluation.spec}: "
             f"accuracy {evaluation.accuracy:.4f}")
    history = read_history(run.file(HISTORY))
    run_metrics = run.metrics()
    pictures = _Pictures()
    network = loaded.network
    has_conv = bool(convolution_names(network))
    layers = summary(loaded.model, loaded.input_shape, title=run.config.name, print_fn=None)
    # each section is built when the bar reaches it: a report of a big network takes a minute or two
    builders = [
        ("overview", "Overview", lambda: _overview(run.config, loaded, run_metrics, evaluation)),
        ("curves", "Training", lambda: _curves(history, pictures)),
        ("errors", "Errors", lambda: _errors(evaluation, pictures)),
        ("top-losses", "Top losses", lambda: _top_losses(evaluation, network, has_conv, pictures)),
        ("architecture", "Architecture", lambda: _architecture(loaded, layers, pictures)),
        ("inside", "Inside the network", lambda: _inside(evaluation, network, has_conv, layers.mult_adds, pictures)),
        ("faithfulness", "Faithfulness", lambda: faithfulness_section(evaluation, network, has_conv,
                                                                      layers.mult_adds > BIG_NETWORK, pictures)),
    ]
    sections = [(key, title, build()) for key, title, build in progress(builders, desc="report")]
    name = run_dir.resolve().name
    subtitle = escape(f"{run.config.name} on {run.config.data} · "
                      f"{len(loaded.class_names)} classes · input {shape_text(loaded.input_shape)}")
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    footer = escape(f"cnnlab {__version__} · report of {run_dir} · written {written}")
    return page(f"{name} · cnnlab report", f"Run {name}", subtitle, sections, footer), pictures


def _write_pictures(folder: Path, pictures: list[Picture]) -> None:
    """Each picture as ``folder/NAME.png``, written to a fresh folder that then replaces the old one whole."""
    building = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        if building.exists():
            shutil.rmtree(building)
        make_directory(building)
        for picture in pictures:
            (building / f"{picture.name}.png").write_bytes(picture.data)
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old.tmp")
        if folder.is_dir():
            folder.rename(old)
        building.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise output_error(folder, error) from None


def _percent(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"


def _number(value, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _overview(config: RunConfig, loaded: LoadedModel, run_metrics: dict, evaluation: Evaluation) -> str:
    train = config.train
    figures = cards([
        (_percent(run_metrics.get("test_accuracy", evaluation.accuracy)), "test accuracy"),
        (_number(run_metrics.get("test_loss")), "test loss"),
        (_percent(run_metrics.get("val_accuracy")), "validation accuracy"),
        (str(run_metrics.get("epochs", train.epochs)), "epochs"),
        (_duration(run_metrics.get("train_seconds")), "training time"),
        (f"{config.n_params:,}", "parameters"),
    ])
    names = config.class_names
    lr = train.lr if train.lr is not None else f"{DEFAULT_LR[train.optimizer]} (default)"
    finetune = dataclasses.asdict(config.finetune) if config.finetune else {}
    rows = [
        ("model", config.model or ""),
        ("backbone", config.backbone or ""),
        ("spec", config.model_spec or ""),
        ("data", config.data),
        ("input (C×H×W)", shape_text(loaded.input_shape)),
        ("classes", f"{len(names)}: " + ", ".join(names[:12]) + (" …" if len(names) > 12 else "")),
        ("fine-tuning", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in finetune.items()
                                  if v is not None and k not in ("backbone", "cache"))),
        ("preprocessing", _preprocessing(config.preprocess, getattr(loaded.preprocess, "zca", None) is not None)),
        ("optimizer", f"{train.optimizer}, lr {lr}"
                      + (f", momentum {train.momentum}" + (" (Nesterov)" if train.nesterov else "")
                         if train.optimizer == "sgd" else "")),
        ("schedule", train.schedule + (f", decay {train.decay:g}" if train.schedule == "time" else "")),
        ("batch size", train.batch_size),
        ("augmentation", train.augment or "none"),
        ("splits", f"test {train.test_split}, validation {train.validation_split} of the rest, seed {train.seed}"),
        ("engine · precision", f"{config.engine} · {train.precision}"),
    ]
    rows = [(k, v) for k, v in rows if v not in ("", None)]
    everything = table(["option", "value"], sorted(dataclasses.asdict(train).items()), css_class="settings")
    note = (f"This page's own evaluation: accuracy {_percent(evaluation.accuracy)} on "
            f"{len(evaluation.positions):,} of {evaluation.total:,} test images of <code>{escape(evaluation.spec)}"
            f"</code>" + (f", drawn at random (seed {evaluation.seed})" if evaluation.sampled else "")
            + ". The errors, top losses and explanations below use these images.")
    return section("overview", "Overview", figures + table(["setting", "value"], rows, css_class="settings")
                   + f"<details><summary>All training options</summary>{everything}</details>"
                   + f'<p class="note">{note}</p>')


def _preprocessing(preprocess: dict, zca: bool) -> str:
    parts = [f"{name} " + ", ".join(f"{v:.3g}" for v in values[:6]) + (" …" if len(values) > 6 else "")
             for name, values in ((n, preprocess.get(n)) for n in ("mean", "std")) if values]
    parts += [name.replace("_", " ") for name in ("samplewise_center", "samplewise_std") if preprocess.get(name)]
    parts += ["ZCA whitening"] if zca else []
    return "; ".join(parts) or "none (inputs in [0, 1])"


def _curves(history: dict[str, list[float]], pictures: _Pictures) -> str:
    if not history.get("epoch"):
        return section("curves", "Training curves", '<p class="note">This run has no history.csv.</p>')
    parts = [figure(pictures.add("curves-loss", png(curve_figure(history, "loss", "loss")),
                                 "loss per epoch, training and validation"),
                    "Cross-entropy per epoch. Validation loss rising while training loss falls means overfitting."),
             figure(pictures.add("curves-accuracy", png(curve_figure(history, "accuracy", "accuracy")),
                                 "accuracy per epoch, training and validation"),
                    "Accuracy per epoch on the training and validation images.")]
    if "lr" in history:
        parts.append(figure(pictures.add("curves-lr", png(lr_figure(history)), "learning rate per epoch"),
                            "Learning rate at the end of each epoch."))
    columns = [c for c in ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds") if c in history]
    rows = [[f"{history[c][i]:g}" if c in ("epoch", "lr") else _number(history[c][i], 2 if c == "seconds" else 4)
             for c in columns] for i in range(len(history["epoch"]))]
    numbers = table(columns, rows, numeric=range(len(columns)), tall=True)
    return section("curves", "Training curves", grid(parts) + f"<details><summary>Per-epoch numbers</summary>"
                   f"{numbers}</details>")


def _errors(evaluation: Evaluation, pictures: _Pictures) -> str:
    names = evaluation.loaded.class_names
    matrix = scores.confusion_matrix(evaluation.labels, evaluation.predicted, len(names))
    plots = grid([
        figure(pictures.add("confusion-counts", png(confusion_figure(matrix, names, False)),
                            "confusion matrix, image counts"), "Rows are true classes, columns predicted ones."),
        figure(pictures.add("confusion-normalised", png(confusion_figure(scores.row_normalised(matrix), names, True)),
                            "confusion matrix, each row divided by its total"),
               "Each row divided by its total: the diagonal is each class's recall."),
    ], wide=True)
    per_class = scores.class_scores(matrix)
    rows = [(names[c], f"{per_class.precision[c]:.3f}", f"{per_class.recall[c]:.3f}", f"{per_class.f1[c]:.3f}",
             int(per_class.support[c])) for c in range(len(names))]
    for label, weighted in (("macro average", False), ("weighted average", True)):
        rows.append((label, *(f"{v:.3f}" for v in per_class.average(weighted)), int(per_class.support.sum())))
    headers = ["class", "precision", "recall", "F1", "images"]
    if len(names) > NAMED_CLASSES:  # the matrices number the classes: give the numbers here
        headers, rows = ["#"] + headers, [(c if c < len(names) else "", *row) for c, row in enumerate(rows)]
    class_table = table(headers, rows, numeric=range(len(headers) - 4, len(headers)), total_rows=2,
                        tall=len(names) > NAMED_CLASSES)
    pairs = scores.confused_pairs(matrix)
    if pairs:
        pair_rows = [(names[t], names[p], n, f"{100 * n / max(matrix[t].sum(), 1):.1f}%") for t, p, n in pairs]
        pair_table = table(["true class", "predicted as", "images", "share of true"], pair_rows,
                           numeric=(2, 3))
    else:
        pair_table = '<p class="note">No image is misclassified.</p>'
    lead = (f"{len(evaluation.labels):,} test images, accuracy {_percent(evaluation.accuracy)}.")
    return section("errors", "Errors", plots + '<div class="split"><div><h3>Per class</h3>' + class_table
                   + "</div><div><h3>Most confused pairs</h3>" + pair_table + "</div></div>", lead)


def _top_losses(evaluation: Evaluation, network, has_conv: bool, pictures: _Pictures) -> str:
    names = evaluation.loaded.class_names
    chosen = scores.top_losses(evaluation.labels, evaluation.probabilities, TOP_LOSSES)
    if not len(chosen):
        return section("top-losses", "Top losses", '<p class="note">No test image is misclassified.</p>')
    images = evaluation.images(chosen)
    predicted = evaluation.predicted[chosen]
    maps = gradcam(network, images, torch.as_tensor(predicted)) if has_conv else None
    losses = scores.losses(evaluation.labels[chosen], evaluation.probabilities[chosen])
    items = []
    for rank, (position, image) in enumerate(zip(chosen, images), start=1):
        true, guess = int(evaluation.labels[position]), int(predicted[rank - 1])
        p = evaluation.probabilities[position]
        card = image_card(image, overlay(image, maps[rank - 1])) if maps is not None else upscale(image)
        picture = pictures.add(f"top-loss-{rank:02d}", array_png(card),
                               f"test image {evaluation.positions[position]}, true {names[true]}, "
                               f"predicted {names[guess]}")
        items.append(f'<div class="loss">{figure(picture)}<div class="labels">true <span class="right">'
                     f'{escape(names[true])}</span> (p {p[true]:.2f}) · predicted <span class="wrong">'
                     f'{escape(names[guess])}</span> (p {p[guess]:.2f})<br><span class="note">'
                     f'loss {losses[rank - 1]:.2f} · test image #{evaluation.positions[position]}</span></div></div>')
    lead = (f"The {len(chosen)} misclassified test images with the highest loss, worst first: each image, then "
            "Grad-CAM of the predicted class over it (red: where the evidence for the wrong answer lies)."
            if has_conv else f"The {len(chosen)} misclassified test images with the highest loss, worst first.")
    return section("top-losses", "Top losses", '<div class="losses">' + "".join(items) + "</div>", lead)


def _architecture(loaded: LoadedModel, table_of: Summary, pictures: _Pictures) -> str:
    rows = [(r.name, r.type, shape_text(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}") for r in table_of.rows]
    rows.append(("total", "", "", f"{table_of.total_params:,}", f"{table_of.mult_adds:,}"))
    layer_table = table(["layer", "type", "output shape", "params", "mult-adds"], rows, numeric=(3, 4), total_rows=1,
                        tall=len(rows) > 30)
    picture = pictures.add("architecture", png(diagram_figure(table_of, loaded.model)),
                           "architecture diagram: layers as boxes with their output shapes")
    lead = (f"{table_of.total_params:,} parameters ({table_of.trainable_params:,} trainable), "
            f"{table_of.mult_adds / 1e6:.2f} M multiply-adds per image. Shapes are C×H×W for one image.")
    return section("architecture", "Architecture", '<div class="split"><div>' + layer_table + "</div><div>"
                   + figure(picture, "Input at the top; a box's width grows with the size of its output.")
                   + "</div></div>", lead)


def _inside(evaluation: Evaluation, network, has_conv: bool, mult_adds: int, pictures: _Pictures) -> str:
    loaded, names = evaluation.loaded, evaluation.loaded.class_names
    parts = []
    big = mult_adds > BIG_NETWORK
    classes = list(range(min(len(names), MOST_CLASSES_BIG if big else MOST_CLASSES)))
    chosen = scores.one_per_class(evaluation.labels, evaluation.probabilities, classes)
    if has_conv:
        parts.append(_filters(network, pictures))
        if chosen:
            parts.append(_feature_maps(evaluation, network, chosen, pictures))
            parts.append(_explanations(evaluation, network, chosen, len(classes) < len(names), big, pictures))
    else:
        parts.append('<p class="note">The model has no convolutional layer: no filters, feature maps or Grad-CAM.'
                     "</p>")
    steps = int(min(ACTIVATION_STEPS, max(MIN_ACTIVATION_STEPS, ACTIVATION_BUDGET // (3 * max(mult_adds, 1)
                                                                                     * len(classes)))))
    images = activation_max(network, classes, loaded.input_shape, steps=steps)
    tiles = [x.permute(1, 2, 0).squeeze(-1).numpy() for x in images]
    picture = pictures.add("activation-max", png(grid_figure(tiles, [_short(names[c]) for c in classes], "",
                                                             columns=min(len(tiles), 5), tile_inches=1.2)),
                           "activation maximisation image of each class")
    more = f" (the first {len(classes)} of {len(names)} classes)" if len(names) > len(classes) else ""
    parts.append("<h3>The network's idea of each class</h3>" + figure(
        picture, f"Activation maximisation{more}: inputs grown by gradient ascent on each class's logit from faint "
                 f"noise, with jitter, L2, total-variation and blur regularisers ({steps} steps).",
        "pixel"))
    return section("inside", "Inside the network", "".join(parts))


def _filters(network, pictures: _Pictures) -> str:
    weights = filters(network)
    tiles = [w.permute(1, 2, 0).numpy() if w.shape[0] == 3 else w.mean(dim=0).numpy() for w in weights]
    kind = "RGB" if weights.shape[1] == 3 else ("grey" if weights.shape[1] == 1 else "mean over input channels")
    columns = min(len(tiles), 8)
    picture = pictures.add("filters", png(grid_figure(tiles, columns=columns, tile_inches=1.0 if len(tiles) <= 16
                                                      else 0.7)),
                           "first convolutional layer's filters")
    name = convolution_names(network)[0].removeprefix("model.")
    return ("<h3>First layer's filters</h3>" + figure(
        picture, f"The {len(tiles)} filters of <code>{escape(name)}</code>, {weights.shape[2]}×{weights.shape[3]}, "
                 f"{kind}; each scaled on its own (dark = negative, light = positive).", "pixel"))


def _feature_maps(evaluation: Evaluation, network, chosen: dict[int, int], pictures: _Pictures) -> str:
    names = evaluation.loaded.class_names
    position = max(chosen.values(), key=lambda i: evaluation.probabilities[i, evaluation.labels[i]])
    image = evaluation.images([position])
    convolutions = convolution_names(network)
    if len(convolutions) > MOST_FEATURE_LAYERS:
        step = (len(convolutions) - 1) / (MOST_FEATURE_LAYERS - 1)
        convolutions = [convolutions[round(i * step)] for i in range(MOST_FEATURE_LAYERS)]
    label = evaluation.labels[position]
    items = [figure(pictures.add("feature-maps-input", array_png(upscale(image[0])), "the sample image"),
                    f"The sample: a test image of class {escape(names[label])} "
                    f"(p = {evaluation.probabilities[position, label]:.2f}).", "pixel")]
    for name, maps in feature_maps(network, image, convolutions).items():
        channels = maps[0][:MOST_CHANNELS]
        short = name.removeprefix("model.")
        picture = pictures.add(f"feature-maps-{short.replace('.', '-')}",
                               png(grid_figure([c.numpy() for c in channels], cmap="viridis",
                                               columns=min(len(channels), 8),
                                               tile_inches=1.1 if len(channels) <= 8 else 0.8)),
                               f"feature maps of {short}")
        shown = f"{len(channels)} of {maps.shape[1]}" if maps.shape[1] > len(channels) else f"all {maps.shape[1]}"
        items.append(figure(picture, f"<code>{escape(short)}</code>: {shown} channels, "
                                     f"{maps.shape[2]}×{maps.shape[3]} each (yellow = high).", "pixel"))
    return "<h3>Feature maps of each convolutional layer</h3>" + grid(items)


def _explanations(evaluation: Evaluation, network, chosen: dict[int, int], some: bool, coarse: bool,
                  pictures: _Pictures) -> str:
    names = evaluation.loaded.class_names
    classes = list(chosen)
    positions = [chosen[c] for c in classes]
    images = evaluation.images(positions)
    targets = torch.as_tensor(classes)
    maps = {"saliency": saliency(network, images, targets), "guided": guided(network, images, targets),
            "Grad-CAM": gradcam(network, images, targets), "occlusion": _occlusion(network, images, targets, coarse)}
    labels = "".join(f"<span>{escape(label)}</span>" for label in ["image", *maps])
    items = []
    for k, (c, position) in enumerate(zip(classes, positions)):
        strip = image_strip([images[k]] + [overlay(images[k], m[k]) for m in maps.values()])
        picture = pictures.add(f"explain-{k:02d}", array_png(strip), f"explanations of an image of class {names[c]}")
        items.append(f'<figure class="strip"><div class="labels">{labels}</div>{img(picture)}<figcaption>class '
                     f"<b>{escape(names[c])}</b>, p {evaluation.probabilities[position, c]:.2f} · test image "
                     f"#{evaluation.positions[position]}</figcaption></figure>")
    more = f" (the first {len(classes)})" if some else ""
    return ("<h3>What the network looks at, one test image per class</h3>"
            f'<p class="note">Each class{more} by its most confidently right test image, explained for that class: '
            "saliency (|gradient| of the logit), guided backprop, Grad-CAM on the last feature map after its "
            "activation, and "
            "occlusion (how much the probability drops when a patch hides each spot). Red = most important; each "
            "map is scaled on its own.</p>" + grid(items, wide=True))


def _occlusion(network, images: torch.Tensor, targets: torch.Tensor, coarse: bool) -> torch.Tensor:
    """The drop in each target's probability; patches that do not overlap when the network is expensive."""
    patch = max(1, min(images.shape[-2:]) // 4)
    return occlusion(network, images, targets, patch=patch, stride=patch if coarse else None).importance


def _short(name: str, width: int = 16) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"
