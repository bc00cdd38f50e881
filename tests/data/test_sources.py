"""Each source's samples against the data they were read from."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy.io import loadmat

from cnnlab.data import ArrayDataset, FileDataset, list_datasets, load_data
from cnnlab.data.flowers import FLOWER_NAMES
from cnnlab.data.images import resize
from cnnlab.data.idx import read_idx


def by_index(splits) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index, x, y) of every sample in the three splits, in source order."""
    datasets = [d for d in (splits.train, splits.val, splits.test) if d is not None]
    index = torch.cat([d.index for d in datasets])
    order = index.argsort()
    x = torch.cat([d.x if isinstance(d, ArrayDataset) else d.load() for d in datasets])
    return index[order], x[order], torch.cat([d.targets for d in datasets])[order]


def test_list_datasets_names_every_spec_with_a_description():
    names = list_datasets()
    assert set(names) == {"digits", "lfw-faces", "mnist:DIR", "folder:DIR", "flowers102:DIR"}
    assert all(description and "\n" not in description for description in names.values())


def test_digits_are_sklearns_digits_over_16():
    from sklearn.datasets import load_digits

    digits = load_digits()
    splits = load_data("digits", image_size=8)
    index, x, y = by_index(splits)
    assert torch.equal(index, torch.arange(1797))
    np.testing.assert_allclose(x[:, 0].numpy(), digits.images / 16.0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), digits.target)
    assert splits.class_names == [str(d) for d in range(10)]


def test_digits_upscale_to_28_by_default_with_antialiased_bilinear():
    from sklearn.datasets import load_digits

    splits = load_data("digits")
    original = torch.as_tensor(load_digits().images / 16.0, dtype=torch.float32)[splits.train.index][:, None]
    expected = torch.nn.functional.interpolate(original, size=(28, 28), mode="bilinear", antialias=True,
                                               align_corners=False).clamp(0, 1)
    torch.testing.assert_close(splits.train.x, expected)


def test_lfw_faces_first_hundred_are_faces():
    from skimage.data import lfw_subset

    splits = load_data("lfw-faces")
    index, x, y = by_index(splits)
    assert splits.class_names == ["face", "non-face"]
    assert splits.input_shape == (1, 25, 25)
    assert torch.equal(y, (index >= 100).long())
    np.testing.assert_allclose(x[:, 0].numpy(), lfw_subset(), atol=1e-6)


def test_mnist_reads_gzipped_and_plain_idx_and_tests_on_t10k(mnist_dir):
    splits = load_data(f"mnist:{mnist_dir}")
    train_images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz", 2051)
    test_images = read_idx(mnist_dir / "t10k-images-idx3-ubyte", 2051)
    assert train_images.shape == (60, 8, 8) and test_images.shape == (30, 8, 8)
    assert splits.official == ("test",)
    assert torch.equal(splits.test.index, torch.arange(60, 90))
    expected = torch.nn.functional.interpolate(torch.as_tensor(test_images / 255.0, dtype=torch.float32)[:, None],
                                               size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(splits.test.x, expected.clamp(0, 1))
    torch.testing.assert_close(splits.test.y, torch.arange(30) % 3)
    assert splits.class_names == ["0", "1", "2"]
    assert len(splits.train) + len(splits.val) == 60


def test_mnist_without_t10k_splits_its_training_files(mnist_dir):
    for path in mnist_dir.glob("t10k-*"):
        path.unlink()
    splits = load_data(f"mnist:{mnist_dir}", image_size=8, test_split=0.25)
    assert splits.official == ()
    assert len(splits.test) == 15 and len(splits.train) + len(splits.val) == 45
    index, x, _ = by_index(splits)
    expected = read_idx(mnist_dir / "train-images-idx3-ubyte.gz", 2051) / 255.0
    np.testing.assert_allclose(x[:, 0].numpy(), expected, atol=1e-6)


def test_folder_uses_sorted_class_names_and_lists_unreadable_files(image_folder):
    splits = load_data(f"folder:{image_folder}", image_size=12)
    assert splits.class_names == ["cat", "dog", "fox"]
    skipped = {line.split(":")[0]: line for line in splits.skipped}
    assert set(skipped) == {str(image_folder / "cat" / "broken.png"), str(image_folder / "dog" / "truncated.png"),
                            str(image_folder / "fox" / "notes.txt")}
    assert "truncated" in skipped[str(image_folder / "dog" / "truncated.png")]
    datasets = [splits.train, splits.val, splits.test]
    assert all(isinstance(d, FileDataset) for d in datasets)
    assert sum(len(d) for d in datasets) == 24


def test_folder_images_are_resized_whole(image_folder):
    splits = load_data(f"folder:{image_folder}", image_size=12)
    dataset = splits.train
    for i in range(len(dataset)):
        image, label = dataset[i]
        assert splits.class_names[label] in dataset.paths[i]
        with Image.open(dataset.paths[i]) as original:
            pixels = np.asarray(original.convert("RGB"), dtype=np.float32) / 255.0
        expected = resize(torch.from_numpy(pixels).permute(2, 0, 1), 12)
        torch.testing.assert_close(image, expected)


def test_flowers_follow_the_official_split_and_labels(flowers_dir):
    splits = load_data(f"flowers102:{flowers_dir}", image_size=16)
    setid = loadmat(flowers_dir / "setid.mat")
    labels = loadmat(flowers_dir / "imagelabels.mat")["labels"].ravel()
    assert splits.official == ("train", "val", "test")
    for dataset, key in ((splits.train, "trnid"), (splits.val, "valid"), (splits.test, "tstid")):
        ids = setid[key].ravel()
        assert dataset.paths == [str(flowers_dir / "jpg" / f"image_{i:05d}.jpg") for i in ids]
        np.testing.assert_array_equal(dataset.targets.numpy(), labels[ids - 1] - 1)
    assert splits.class_names == FLOWER_NAMES and len(FLOWER_NAMES) == len(set(FLOWER_NAMES)) == 102
    assert splits.class_names[:2] == ["pink primrose", "hard-leaved pocket orchid"]


def test_flowers_merge_the_official_validation_set_into_training_when_asked_for_none(flowers_dir):
    splits = load_data(f"flowers102:{flowers_dir}", image_size=16, validation_split=0)
    assert splits.val is None and len(splits.train) == 12 and splits.official == ("train", "test")


def test_file_dataset_caches_decoded_images_and_shares_the_cache(image_folder):
    splits = load_data(f"folder:{image_folder}", image_size=12)
    first = splits.train[0][0]
    assert splits.train[0][0] is first
    assert splits.train.subset([0])[0][0] is first



def test_mnist_also_reads_torchvisions_raw_layout(mnist_dir):
    flat = load_data(f"mnist:{mnist_dir}")
    raw = mnist_dir / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in list(mnist_dir.glob("*-ubyte*")):
        path.rename(raw / path.name)
    nested = load_data(f"mnist:{mnist_dir}")
    assert torch.equal(nested.train.x, flat.train.x) and torch.equal(nested.test.index, flat.test.index)


def test_file_dataset_works_in_dataloader_worker_processes(image_folder):
    from torch.utils.data import DataLoader

    dataset = load_data(f"folder:{image_folder}", image_size=8).train
    images, labels = next(iter(DataLoader(dataset, batch_size=len(dataset), num_workers=2)))
    assert torch.equal(images, dataset.load()) and torch.equal(labels, dataset.targets)
