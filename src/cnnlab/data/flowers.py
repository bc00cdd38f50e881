"""Oxford Flowers-102 in its official layout: `jpg/image_00001.jpg`, `imagelabels.mat`, `setid.mat`.

Labels are 1-based in `imagelabels.mat` ("labels", one per image, in image-id
order); `setid.mat` holds the official 1-based image ids of each split in
"trnid", "valid" and "tstid". torchvision's Flowers102 reads the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.data.datasets import FileDataset
from cnnlab.data.specs import Source, register_spec
from cnnlab.errors import DataError

# The class names in label order, as published with the data set's category page and
# used by TensorFlow Datasets (spelling slips such as "barbeton" corrected).
FLOWER_NAMES = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon",
    "colt's foot", "king protea", "spear thistle", "yellow iris", "globe-flower", "purple coneflower",
    "peruvian lily", "balloon flower", "giant white arum lily", "fire lily", "pincushion flower",
    "fritillary", "red ginger", "grape hyacinth", "corn poppy", "prince of wales feathers",
    "stemless gentian", "artichoke", "sweet william", "carnation", "garden phlox", "love in the mist",
    "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort",
    "siam tulip", "lenten rose", "barberton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink-yellow dahlia", "cautleya spicata", "japanese anemone",
    "black-eyed susan", "silverbush", "californian poppy", "osteospermum", "spring crocus",
    "bearded iris", "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose",
    "thorn apple", "morning glory", "passion flower", "lotus", "toad lily", "anthurium", "frangipani",
    "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia", "cyclamen",
    "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper",
    "blackberry lily",
]
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}


def _read_mat(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"The Flowers-102 file {path} does not exist; the official layout has "
                        f"jpg/, imagelabels.mat and setid.mat side by side.")
    try:
        content = loadmat(path)
    except Exception as error:  # scipy raises several types for a damaged .mat file
        raise DataError(f"The file {path} is not a readable MATLAB file "
                        f"({error.__class__.__name__}: {error}).") from None
    if any(key not in content for key in keys):
        found = sorted(key for key in content if not key.startswith("__"))
        raise DataError(f"The file {path} must hold the arrays {keys}. Got {found} instead.")
    return {key: np.asarray(content[key]).reshape(-1).astype(np.int64) for key in keys}


@register_spec("flowers102", "Oxford Flowers-102 in DIR (jpg/, imagelabels.mat, setid.mat), official splits",
               image_size=224, channels=3, needs_dir=True)
def load_flowers102(directory: Path, image_size: int, channels: int) -> Source:
    labels = _read_mat(directory / "imagelabels.mat", ["labels"])["labels"]
    split_ids = _read_mat(directory / "setid.mat", list(SPLIT_KEYS.values()))
    if labels.min() < 1 or labels.max() > len(FLOWER_NAMES):
        raise DataError(f"The labels in {directory / 'imagelabels.mat'} must lie in 1..{len(FLOWER_NAMES)}. "
                        f"Got {labels.min()}..{labels.max()} instead.")
    all_ids = np.concatenate(list(split_ids.values()))
    if all_ids.min() < 1 or all_ids.max() > len(labels):
        raise DataError(f"The image ids in {directory / 'setid.mat'} must lie in 1..{len(labels)} "
                        f"(the number of labels). Got {all_ids.min()}..{all_ids.max()} instead.")
    paths = [directory / "jpg" / f"image_{i:05d}.jpg" for i in all_ids]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"The Flowers-102 image {missing[0]} does not exist ({len(missing)} of {len(paths)} missing).")
    data = FileDataset(paths, labels[all_ids - 1] - 1, image_size, channels)
    official, start = {}, 0
    for split, key in SPLIT_KEYS.items():
        official[split] = torch.arange(start, start + len(split_ids[key]))
        start += len(split_ids[key])
    return Source(data, list(FLOWER_NAMES), official)
