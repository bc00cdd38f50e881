"""Every registered data spec keeps the same promises: shapes, range, stratified seeded disjoint splits."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import ArrayDataset, load_data
from cnnlab.data.specs import registered_specs

# The fixture (tests/conftest.py) that makes a tiny copy of each spec that needs a directory.
DIRECTORY_FIXTURES = {"mnist": "mnist_dir", "folder": "image_folder", "flowers102": "flowers_dir"}
# Small sizes keep the run fast; None checks the spec's own default.
SIZES = {"digits": None, "lfw-faces": None, "mnist": None, "folder": 16, "flowers102": 32}


@pytest.fixture(params=sorted(registered_specs()))
def spec(request) -> str:
    entry = registered_specs()[request.param]
    if not entry.needs_dir:
        return entry.name
    assert entry.name in DIRECTORY_FIXTURES, f"add a fixture that makes a tiny {entry.name!r} directory"
    return f"{entry.name}:{request.getfixturevalue(DIRECTORY_FIXTURES[entry.name])}"


def load(spec: str, **options):
    return load_data(spec, image_size=SIZES[spec.partition(":")[0]], **options)


def parts(splits) -> dict:
    return {name: getattr(splits, name) for name in ("train", "val", "test") if getattr(splits, name) is not None}


def test_samples_have_the_promised_shape_type_and_range(spec):
    splits = load(spec)
    entry = registered_specs()[spec.partition(":")[0]]
    size = SIZES[entry.name] or entry.image_size
    assert splits.input_shape == (entry.channels, size, size)
    assert splits.spec == spec
    for dataset in parts(splits).values():
        assert len(dataset) > 0
        assert dataset.targets.dtype == torch.int64 and len(dataset.targets) == len(dataset)
        assert int(dataset.targets.max()) < len(splits.class_names)
        images = dataset.x if isinstance(dataset, ArrayDataset) else dataset.load()
        assert images.dtype == torch.float32 and tuple(images.shape) == (len(dataset), *splits.input_shape)
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        image, label = dataset[len(dataset) - 1]
        assert tuple(image.shape) == splits.input_shape and int(label) == int(dataset.targets[-1])


def test_splits_are_disjoint(spec):
    splits = load(spec)
    seen = [set(d.index.tolist()) for d in parts(splits).values()]
    assert sum(len(s) for s in seen) == len(set().union(*seen))


def _assert_proportions_kept(part, pool, num_classes: int):
    """Each class's share of `part` is within one sample of its share of `pool` (sklearn's rounding)."""
    part_share = torch.bincount(part.targets, minlength=num_classes) / len(part)
    pool_share = torch.bincount(pool, minlength=num_classes) / len(pool)
    assert torch.all((part_share - pool_share).abs() <= 1.0 / len(part) + 1e-9), (part_share, pool_share)


def test_drawn_splits_are_stratified(spec):
    splits = load(spec)
    k = len(splits.class_names)
    all_targets = torch.cat([d.targets for d in parts(splits).values()])
    if "test" not in splits.official:
        _assert_proportions_kept(splits.test, all_targets, k)
    if "val" not in splits.official:
        training_pool = torch.cat([splits.train.targets, splits.val.targets])
        _assert_proportions_kept(splits.val, training_pool, k)
        _assert_proportions_kept(splits.train, training_pool, k)


def test_same_seed_same_splits_other_seed_other_splits(spec):
    first, again, other = load(spec, seed=0), load(spec, seed=0), load(spec, seed=1)
    for name, dataset in parts(first).items():
        assert torch.equal(dataset.index, getattr(again, name).index)
    if set(parts(first)) - set(first.official):
        assert not torch.equal(first.train.index, other.train.index)


def test_train_fraction_keeps_a_stratified_share_of_training(spec):
    full, half = load(spec), load(spec, train_fraction=0.5)
    assert len(half.train) == len(full.train) // 2  # sklearn rounds the share left out up
    assert set(half.train.index.tolist()) <= set(full.train.index.tolist())
    _assert_proportions_kept(half.train, full.train.targets, len(full.class_names))


def test_no_validation_split_gives_no_validation_set(spec):
    splits = load(spec, validation_split=0)
    with_val = load(spec)
    assert splits.val is None
    assert len(splits.train) == len(with_val.train) + len(with_val.val)
    assert torch.equal(splits.test.index, with_val.test.index)


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_can_be_forced(spec, channels):
    splits = load(spec, channels=channels)
    assert splits.input_shape[0] == channels
    assert splits.train[0][0].shape[0] == channels
