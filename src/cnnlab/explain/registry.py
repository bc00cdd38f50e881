"""The explanation methods: one registry whose entries carry what the rest of cnnlab asks about a method.

A method module in `cnnlab.explain.methods` decorates its map function with
`register_method`; nothing else needs to change for the command line, the
report, the web page and the contract tests to know it. A map function
takes ``(model, images, target=None, **options)`` and returns (N, H, W) maps
at the input's resolution, where larger means more important for the target.

    @register_method("saliency", "max over channels of |d logit / d pixel|", units="|d logit / d pixel|",
                     percentile=99, reference="captum Saliency")
    def saliency(model, images, target=None): ...
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch

from cnnlab.errors import ConfigError, similar, unknown


@dataclass(frozen=True)
class Option:
    """A tunable of one method beyond `target` and `layer`, as the command line and the web page offer it."""

    default: object
    help: str
    type: type = float
    minimum: float | None = None  # smallest allowed value (inclusive), None for no bound


@dataclass(frozen=True)
class Method:
    """One explanation method and what it needs, how it is drawn and what it is checked against."""

    name: str
    compute: Callable[..., torch.Tensor]  # (model, images, target=None, **options) -> (N, H, W)
    summary: str  # one line: what the map is
    units: str  # what one unit of the map means, for colour bars ("drop in probability")
    layer: bool = False  # takes a `layer` (default: chosen by the method, e.g. the last conv feature map)
    gradients: bool = True  # needs backward passes (False: forward passes only, model-agnostic)
    signed: bool = False  # maps can be negative (evidence against the target)
    percentile: float = 100.0  # drawn from the minimum up to this percentile, so a few spiky pixels do not
    # take the whole colour range (captum's visualiser draws gradients to the 99th)
    options: Mapping[str, Option] = field(default_factory=dict)
    reference: str = ""  # the peer implementation its tests compare with
    figure: str = "overlay"  # how `cnnlab explain` draws one image: "overlay", or "occlusion" (3 panels)
    class_specific: bool = True  # the map depends on the target class (False: one map for every class)
    slow: bool = False  # many passes per image (one per patch, step or sample): seconds on a CPU for a large
    # input, so the web page computes it for large inputs only when asked

    def __call__(self, model, images, target=None, **options) -> torch.Tensor:
        """The (N, H, W) maps of `images` for `target`; unknown or out-of-range options raise ConfigError."""
        return self.compute(model, images, target, **self.check(options))

    def check(self, options: dict) -> dict:
        """`options` with None values dropped, each name and value checked against what the method takes."""
        allowed = set(self.options) | ({"layer"} if self.layer else set())
        checked = {}
        for name, value in options.items():
            if value is None:
                continue
            if name not in allowed:
                takes = ", ".join(sorted(allowed)) or "no options"
                raise ConfigError(f"The method {self.name!r} takes no option {name!r}.{similar(name, allowed)} "
                                  f"It takes: {takes}.")
            option = self.options.get(name)
            if option is not None and option.minimum is not None and value < option.minimum:
                raise ConfigError(f"The {name!r} option of method {self.name!r} must be >= {option.minimum:g}. "
                                  f"Got {value!r} instead.")
            checked[name] = value
        return checked


_METHODS: dict[str, Method] = {}


def register_method(name: str, summary: str, *, units: str, layer: bool = False, gradients: bool = True,
                    signed: bool = False, percentile: float = 100.0, options: Mapping[str, Option] | None = None,
                    reference: str = "", figure: str = "overlay", slow: bool = False,
                    class_specific: bool = True):
    """Decorator: register ``fn(model, images, target=None, **options) -> (N, H, W)`` as the method `name`."""

    def decorate(fn):
        parameters = inspect.signature(fn).parameters
        missing = [o for o in [*(options or {}), *(["layer"] if layer else [])] if o not in parameters]
        if missing:
            raise TypeError(f"{fn.__qualname__} does not take the options its registration names: {missing}")
        _METHODS[name] = Method(name, fn, summary, units, layer, gradients, signed, percentile, dict(options or {}),
                                reference, figure, class_specific, slow)
        return fn

    return decorate


_loaded = False


def _load_all() -> None:
    """Import every module of `cnnlab.explain.methods` once, each of which registers its methods."""
    global _loaded
    from cnnlab.explain import methods as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True


class _Registry(Mapping):
    """The registered methods by name, in registration order; importing the method modules on first use."""

    def _all(self) -> dict[str, Method]:
        # Some modules are imported (and so registered) before the registry is first read: load the rest too.
        if not _loaded:
            _load_all()
        return _METHODS

    def __getitem__(self, name: str) -> Method:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


METHODS: Mapping[str, Method] = _Registry()


def get_method(name: str) -> Method:
    """The method called `name`; ConfigError with the nearest names when there is none."""
    if name not in METHODS:
        raise ConfigError(unknown("method", name, METHODS))
    return METHODS[name]


def parse_methods(methods) -> list[Method]:
    """Methods from a list or a comma-separated string of names, each checked against the registry."""
    if isinstance(methods, str):
        methods = methods.split(",")
    names = [str(m).strip() for m in methods if str(m).strip()]
    if not names:
        raise ConfigError(f"No method given; choose from {', '.join(METHODS)}.")
    return [get_method(name) for name in names]
