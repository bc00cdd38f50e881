"""Augmentation as Keras' ImageDataGenerator offers it, split into its two natures.

The random geometric part (rotation, shifts, zoom, flips) is `Augmenter`: one
batched affine resampling, on whatever device the batch lives. The
deterministic part (samplewise / featurewise normalisation, ZCA) travels with
the model as `Preprocess`, fitted on the training split by `make_preprocess`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cnnlab.data.preprocess import Preprocess
from cnnlab.errors import ConfigError, invalid, unknown

# grid_sample's padding modes, and Keras' fill_mode names for them.
FILL_MODES = {"zeros": "zeros", "border": "border", "reflection": "reflection",
              "constant": "zeros", "nearest": "border", "reflect": "reflection"}
# ZCA needs a (features x features) matrix: 4096 features (64x64 grey, 36x36 RGB) is 64 MiB.
ZCA_MAX_FEATURES = 4096


@dataclass
class AugmentOptions:
    """What `--augment` asked for; all off by default. Ranges follow Keras' ImageDataGenerator."""

    rotation: float = 0.0  # degrees: each image turns by uniform(-rotation, rotation)
    width_shift: float = 0.0  # fraction of the width: shift by uniform(-w, w) * W pixels
    height_shift: float = 0.0  # fraction of the height
    zoom: float = 0.0  # x and y scales drawn independently from uniform(1 - zoom, 1 + zoom), as Keras does
    hflip: bool = False  # mirror left-right with probability 1/2
    vflip: bool = False  # mirror top-bottom with probability 1/2
    # 'zeros', not Keras' default 'nearest' (= 'border'): edge replication smears border pixels into
    # stripes a network can learn, while zeros match the black backgrounds of digit-like data and the
    # zero padding of the convolutions themselves. 'border' and 'reflection' are there for photos.
    fill: str = "zeros"
    featurewise_center: bool = False
    featurewise_std: bool = False
    samplewise_center: bool = False
    samplewise_std: bool = False
    zca: bool = False

    @property
    def geometric(self) -> bool:
        """True when some random geometric transform is on (Augmenter has work to do)."""
        return bool(self.rotation or self.width_shift or self.height_shift or self.zoom or self.hflip or self.vflip)

    @property
    def preprocessing(self) -> bool:
        """True when some normalisation is on (Preprocess is not the identity)."""
        return any((self.featurewise_center, self.featurewise_std, self.samplewise_center, self.samplewise_std,
                    self.zca))


_FLAGS = {"hflip", "vflip", "featurewise-center", "featurewise-std", "samplewise-center", "samplewise-std", "zca"}
_RANGES = {"rotation": ("a number of degrees in [0, 180]", 0.0, 180.0),
           "shift": ("a fraction of the image size in [0, 1)", 0.0, 1.0),
           "width-shift": ("a fraction of the width in [0, 1)", 0.0, 1.0),
           "height-shift": ("a fraction of the height in [0, 1)", 0.0, 1.0),
           "zoom": ("a fraction in [0, 1)", 0.0, 1.0)}
OPTION_NAMES = sorted(_FLAGS | set(_RANGES) | {"fill"})


def _number(name: str, value: str | None) -> float:
    expected, low, high = _RANGES[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (low <= number <= high) or (high == 1.0 and number == 1.0):
        raise ConfigError(invalid(f"'{name}' option", "--augment", expected, value, f"Write e.g. '{name}=0.1'."))
    return number


def parse_augment(text: str | None) -> AugmentOptions:
    """Options from 'rotation=10,shift=0.1,hflip,featurewise-center,zca'; '' means no augmentation."""
    options = AugmentOptions()
    for item in (text or "").split(","):
        name, has_value, value = (part.strip() for part in item.partition("="))
        name = name.lower().replace("_", "-")
        if not name:
            continue
        if name not in OPTION_NAMES:
            raise ConfigError(unknown("augment option", name, OPTION_NAMES))
        if name in _FLAGS:
            if has_value and value.lower() not in ("1", "true", "yes", "on"):
                raise ConfigError(invalid(f"'{name}' option", "--augment", "a flag without a value", value,
                                          f"Write '{name}' to turn it on, or leave it out."))
            setattr(options, name.replace("-", "_"), True)
        elif name == "fill":
            if value not in FILL_MODES:
                raise ConfigError(invalid("'fill' option", "--augment", f"one of {sorted(FILL_MODES)}", value))
            options.fill = FILL_MODES[value]
        elif name == "shift":
            options.width_shift = options.height_shift = _number(name, value if has_value else None)
        else:
            setattr(options, name.replace("-", "_"), _number(name, value if has_value else None))
    return options


class Augmenter:
    """Random rotation, shift, zoom and flips, per sample, in one batched affine resampling.

    Deterministic given the generator: parameters are drawn on the generator's
    device, then moved to the batch's, so CPU and CUDA batches get the same draws.
    """

    def __init__(self, options: AugmentOptions):
        self.options = options

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rows: slice | None = None, total: int | None = None) -> torch.Tensor:
        """A randomly transformed copy of the (N, C, H, W) batch `x` (x itself when nothing is on).

        With `total` and `rows`, `x` is the part `rows` of a batch of `total`
        images (one process's share of a global batch): parameters are drawn
        for all `total`, so every process draws what one process would.
        """
        o = self.options
        if not o.geometric or len(x) == 0:
            return x
        n, (height, width) = (total or len(x)), x.shape[-2:]
        device = generator.device if generator is not None else torch.device("cpu")

        def uniform(half_width: float, *shape: int) -> torch.Tensor:
            return (torch.rand(n, *shape, generator=generator, device=device) * 2 - 1) * half_width

        angles = uniform(o.rotation) if o.rotation else None
        shifts = uniform(1.0, 2) * torch.tensor([o.width_shift * width, o.height_shift * height], device=device) \
            if (o.width_shift or o.height_shift) else None
        zooms = 1 + uniform(o.zoom, 2) if o.zoom else None
        flips = torch.rand(n, 2, generator=generator, device=device) < 0.5
        flips &= torch.tensor([o.hflip, o.vflip], device=device)
        if rows is not None:
            angles, shifts, zooms, flips = (None if p is None else p[rows] for p in (angles, shifts, zooms, flips))
        return self.transform(x, angles=angles, shifts=shifts, zooms=zooms,
                              flips=flips if (o.hflip or o.vflip) else None)

    def transform(self, x: torch.Tensor, angles=None, shifts=None, zooms=None, flips=None) -> torch.Tensor:
        """`x` (N, C, H, W) resampled with given per-sample parameters; each may be a scalar or omitted.

        Args:
            angles: (N,) degrees, counter-clockwise as displayed (90 equals torch.rot90 on square images).
            shifts: (N, 2) pixels (dx right, dy down) the content moves by.
            zooms: (N, 2) scales (zx, zy) of the sampled region, as Keras: below 1 magnifies.
            flips: (N, 2) booleans (left-right, top-bottom).
        """
        n, (height, width) = len(x), x.shape[-2:]

        def per_sample(value, default, columns: int | None) -> torch.Tensor:
            value = torch.as_tensor(default if value is None else value, dtype=torch.float32, device=x.device)
            return value.expand(n) if columns is None else value.expand(n, columns)

        angle = torch.deg2rad(per_sample(angles, 0.0, None))
        shift = per_sample(shifts, 0.0, 2)
        zoom = per_sample(zooms, 1.0, 2)
        mirror = 1.0 - 2.0 * per_sample(flips, False, 2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # In centred pixel coordinates (x right, y down), an output pixel q samples the input at
        # R (Z M q - t): flip M, zoom Z, shift t along the output's axes, rotation R, as Keras composes them.
        rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        linear = rotation * (zoom * mirror)[:, None, :]
        # affine_grid works in [-1, 1] per axis: conjugate by S = diag(W/2, H/2).
        aspect = torch.tensor([[1.0, height / width], [width / height, 1.0]], device=x.device)
        translation = -(rotation @ shift[:, :, None])[:, :, 0] * torch.tensor([2.0 / width, 2.0 / height],
                                                                               device=x.device)
        theta = torch.cat([linear * aspect, translation[:, :, None]], dim=2)
        grid = F.affine_grid(theta, (n, x.shape[1], height, width), align_corners=False)
        out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode=self.options.fill, align_corners=False)
        return out.to(x.dtype)


def training_images(train, max_images: int = 2000, seed: int = 0) -> torch.Tensor:
    """(N, C, H, W) images to fit statistics on: a tensor as is, an ArrayDataset's x, or a sample of files."""
    if isinstance(train, torch.Tensor):
        return train
    if hasattr(train, "x"):
        return train.x
    count = min(len(train), max_images)
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
    return train.load(chosen.sort().values)


def make_preprocess(options: AugmentOptions, train, max_images: int = 2000, seed: int = 0) -> Preprocess:
    """The Preprocess the options ask for, its statistics fitted on the training split `train` only.

    Option by option this is Keras' ImageDataGenerator (featurewise-std and
    samplewise-std centre as well); where ZCA differs, and why, is said in
    `Preprocess`. With zca, featurewise-std is applied before whitening
    (Keras drops it).

    `train` is a (N, C, H, W) tensor or a dataset; file datasets contribute a
    seeded sample of at most `max_images` images.
    """
    # As Keras' ImageDataGenerator: dividing by a standard deviation implies centring on the same mean.
    preprocess = Preprocess(samplewise_center=options.samplewise_center or options.samplewise_std,
                            samplewise_std=options.samplewise_std)
    if not (options.featurewise_center or options.featurewise_std or options.zca):
        return preprocess
    x = training_images(train, max_images, seed)
    features = math.prod(x.shape[1:])
    if options.zca and features > ZCA_MAX_FEATURES:
        raise ConfigError(invalid("'zca' option", "--augment", f"used on images of at most {ZCA_MAX_FEATURES} values",
                                  f"{tuple(x.shape[1:])} = {features} values",
                                  "Lower --image-size or drop zca."))
    return preprocess.fit(x, featurewise_center=options.featurewise_center or options.featurewise_std,
                          featurewise_std=options.featurewise_std, zca_whitening=options.zca)
