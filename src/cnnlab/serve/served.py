"""What the API computes, each answer one library call: `LoadedModel.predict` and the registry's methods.

Nothing here re-implements a map: `explain` calls the registry entry exactly
as `cnnlab explain` does, then only resizes (`upsample`) and colours
(`render.overlay`) what it returned. Checking a request (`checked_request`)
is cheap and happens before the request takes a place in the work queue;
`predict` and `explain` run on the queue's worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.data.images import resize
from cnnlab.errors import ConfigError, invalid
from cnnlab.explain.api import class_index
from cnnlab.explain.base import upsample
from cnnlab.explain.registry import METHODS, Method, get_method
from cnnlab.explain.render import overlay
from cnnlab.models import summary
from cnnlab.run import LoadedModel
from cnnlab.serve.guard import MAX_BODY
from cnnlab.serve.images import MAX_PIXELS, data_url, decode, display_size, npy, png, to_uint8

CACHED_IMAGES = 8  # the latest uploads, decoded: a few MiB each (the shown image and the model's input)
SMALL_INPUT = 64 * 64  # model inputs this small make even a slow method quick: the page runs every method
FORMATS = ("json", "npy", "png")


@dataclass(frozen=True)
class Prepared:
    """One upload as the work needs it; the tensors are shared between requests, so methods get copies."""

    shown: torch.Tensor  # (C, h, w): the image as the page shows it, at most DISPLAY_SIDE on its longest side
    model_input: torch.Tensor  # (1, C, H, W): fitted to the model
    width: int  # of the image as read (at most WORKING_SIDE)
    height: int


@dataclass(frozen=True)
class ExplainRequest:
    method: Method
    target: int | None  # None: the predicted class
    options: dict
    format: str
    alpha: float


class ServedModel:
    """One loaded model, its network built once, and the facts the page asks about it."""

    def __init__(self, loaded: LoadedModel, max_pixels: int = MAX_PIXELS, max_body: int = MAX_BODY):
        self.loaded = loaded
        self.network: nn.Module = loaded.network
        self.max_pixels = max_pixels
        self.max_body = max_body
        self._cache: OrderedDict[bytes, Prepared] = OrderedDict()
        self.info = self._info()

    def _info(self) -> dict:
        loaded = self.loaded
        channels, height, width = loaded.input_shape
        table = summary(loaded.model, loaded.input_shape, title=loaded.source or None, print_fn=None)
        layers = [name.removeprefix("model.") for name, module in self.network.named_modules()
                  if isinstance(module, nn.modules.conv._ConvNd)]
        return {"source": loaded.source, "input_shape": [channels, height, width], "classes": list(loaded.class_names),
                "device": str(loaded.device), "summary": str(table), "layers": layers,
                "parameters": table.total_params,
                "limits": {"max_bytes": self.max_body, "max_mib": round(self.max_body / 2 ** 20, 1),
                           "max_pixels": self.max_pixels},
                "methods": [method_info(m, small=height * width <= SMALL_INPUT) for m in METHODS.values()]}

    def checked_request(self, method: str, target: str | None, options: str | None, format: str = "json",
                        alpha: float = 0.5) -> ExplainRequest:
        """The explanation asked for, every name and value checked; ConfigError naming the nearest valid ones."""
        chosen = get_method(method.strip())
        index = class_index(target if target and target.strip() else None, self.loaded.class_names)
        if format not in FORMATS:
            raise ConfigError(invalid("'format' field", "/api/explain", f"one of {', '.join(FORMATS)}", format))
        if not 0 <= alpha <= 1:
            raise ConfigError(invalid("'alpha' field", "/api/explain", "in [0, 1]", alpha))
        return ExplainRequest(chosen, index, chosen.check(parse_options(chosen, options)), format, alpha)

    def predict(self, data: bytes, top: int) -> dict:
        """The top classes of the upload and the pictures the page shows: the image and the model's input."""
        image = self.prepared(data)
        probabilities = self.loaded.predict(image.model_input.clone())[0]
        values, indices = probabilities.topk(min(top, len(probabilities)))
        names = self.loaded.class_names
        return {"top": [{"index": int(i), "name": names[int(i)], "probability": float(p)}
                        for p, i in zip(values.tolist(), indices.tolist())],
                "probabilities": [round(float(p), 6) for p in probabilities],
                "width": image.width, "height": image.height, "image": data_url(png(to_uint8(image.shown))),
                "model_input": data_url(png(to_uint8(image.model_input[0])))}

    def explain(self, data: bytes, request: ExplainRequest) -> dict | bytes:
        """The method's map of the upload for the target: JSON with the raw map and its colours, or .npy/.png bytes."""
        image = self.prepared(data)
        target = request.target
        if target is None:
            target = int(self.loaded.predict(image.model_input.clone()).argmax())
        started = time.perf_counter()
        maps = request.method(self.network, image.model_input.clone(), target, **request.options)
        seconds = time.perf_counter() - started
        raw = maps[0].detach().float().cpu()
        values = raw.numpy().astype(np.float32)
        if request.format == "npy":
            return npy(values)
        on_image = upsample(raw[None], image.shown.shape[-2:])[0]
        if request.format == "png":
            return png(overlay(image.shown, on_image, alpha=request.alpha, percentile=request.method.percentile))
        heat = overlay(image.shown, on_image, alpha=1.0, percentile=request.method.percentile)
        return {"method": request.method.name,
                "target": {"index": target, "name": self.loaded.class_names[target]},
                "options": request.options, "units": request.method.units, "signed": request.method.signed,
                "shape": list(values.shape), "minimum": float(values.min()), "maximum": float(values.max()),
                "heat": data_url(png(heat)), "map": base64.b64encode(npy(values)).decode("ascii"),
                "seconds": round(seconds, 4)}

    def prepared(self, data: bytes) -> Prepared:
        """The upload decoded, shown and fitted to the model, from the cache when these bytes came lately.

        The page sends one image with each of its requests (one per method);
        decoding it once instead of each time saves most of a request's work
        beyond the method for a large photo. Called on the worker thread only.
        """
        key = hashlib.sha256(data).digest()
        image = self._cache.pop(key, None)
        if image is None:
            picture = decode(data, self.loaded.input_shape[0], self.max_pixels)
            image = Prepared(resize(picture, display_size(*picture.shape[-2:])), self.loaded.prepare(picture)[None],
                             picture.shape[-1], picture.shape[-2])
        self._cache[key] = image
        while len(self._cache) > CACHED_IMAGES:
            self._cache.popitem(last=False)
        return image


def method_info(method: Method, small: bool) -> dict:
    """What the page needs to show a method and its controls."""
    return {"name": method.name, "summary": method.summary, "units": method.units, "signed": method.signed,
            "layer": method.layer, "gradients": method.gradients,
            "class_specific": method.class_specific, "slow": method.slow,
            "auto": small or not method.slow, "percentile": method.percentile,
            "options": {name: {"default": option.default, "help": option.help, "type": option.type.__name__,
                               "minimum": option.minimum} for name, option in method.options.items()}}


def parse_options(method: Method, text: str | None) -> dict:
    """The 'options' form field, a JSON object, with each value converted to the type its Option declares."""
    if text is None or not text.strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"The 'options' field is not JSON ({error.msg} at column {error.colno}); send an object "
                          f"such as {{\"patch\": 8}}.") from None
    if not isinstance(options, dict):
        raise ConfigError(invalid("'options' field", "/api/explain", "a JSON object", options))
    return {name: _converted(method, name, value) for name, value in options.items()}


def _converted(method: Method, name: str, value):
    option = method.options.get(name)
    if value is None or option is None:  # `layer`, or a name the method does not take: Method.check says which
        return value
    kind = option.type
    if kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            kind is not int or float(value).is_integer())
    if not ok:
        expected = "a JSON boolean" if kind is bool else f"a number ({kind.__name__})"
        raise ConfigError(invalid(f"{name!r} option", f"method {method.name!r}", expected, value))
    return kind(value)
