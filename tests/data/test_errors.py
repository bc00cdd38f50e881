"""Bad input gives one typed, one-line error that names the file or option and what was expected."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cnnlab.data import load_data
from cnnlab.errors import ConfigError, DataError, SpecError


def raises(error_type, spec, *fragments, **options):
    with pytest.raises(error_type) as caught:
        load_data(spec, **options)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message, message
    return message


def test_unknown_spec_suggests_close_names():
    raises(SpecError, "digit", "Unknown data spec 'digit'", "Similar: 'digits'")
    raises(SpecError, "minst:/tmp", "'mnist:DIR'")


def test_spec_that_needs_a_directory_says_so():
    raises(SpecError, "folder", "'folder:DIR'")
    raises(SpecError, "folder:", "'folder:DIR'")


def test_spec_without_a_directory_refuses_one(tmp_path):
    raises(SpecError, f"digits:{tmp_path}", "takes no directory")


def test_missing_empty_or_file_directory(tmp_path):
    raises(DataError, f"mnist:{tmp_path / 'nowhere'}", tmp_path / "nowhere", "does not exist")
    raises(DataError, f"folder:{tmp_path}", tmp_path, "is empty")
    (tmp_path / "file").write_text("x")
    raises(DataError, f"folder:{tmp_path / 'file'}", tmp_path / "file", "not a directory")


@pytest.mark.parametrize("option, value", [("validation_split", 1.0), ("validation_split", -0.1),
                                           ("test_split", 0.0), ("test_split", 1.0), ("train_fraction", 0.0),
                                           ("train_fraction", 1.5), ("image_size", 0), ("channels", 2)])
def test_options_out_of_range(option, value):
    raises(ConfigError, "digits", f"'{option}' parameter of load_data", f"Got {value!r}", **{option: value})


def test_idx_with_wrong_magic(mnist_dir, idx_writer):
    idx_writer(mnist_dir / "train-labels-idx1-ubyte.gz", np.zeros(60), magic=2051)
    raises(DataError, f"mnist:{mnist_dir}", mnist_dir / "train-labels-idx1-ubyte.gz", "magic number 2049",
           "Got 2051")


def test_idx_with_mismatched_counts(mnist_dir, idx_writer):
    idx_writer(mnist_dir / "t10k-labels-idx1-ubyte", np.zeros(29))
    raises(DataError, f"mnist:{mnist_dir}", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
           "30 images and 29 labels")


def test_truncated_idx(mnist_dir):
    path = mnist_dir / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    raises(DataError, f"mnist:{mnist_dir}", path, "truncated")
    path.write_bytes(path.read_bytes()[:10])
    raises(DataError, f"mnist:{mnist_dir}", path, "truncated")


def test_idx_images_without_labels(mnist_dir):
    (mnist_dir / "t10k-labels-idx1-ubyte").unlink()
    raises(DataError, f"mnist:{mnist_dir}", mnist_dir / "t10k-labels-idx1-ubyte", "does not exist")


def test_directory_without_idx_files(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    raises(DataError, f"mnist:{tmp_path}", tmp_path, "train-images-idx3-ubyte")


def test_folder_with_one_class(image_folder):
    for name in ("dog", "fox"):
        shutil.rmtree(image_folder / name)
    raises(DataError, f"folder:{image_folder}", image_folder, "at least 2", "Got 1")


def test_folder_without_a_readable_image(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"garbage")
    raises(DataError, f"folder:{tmp_path}", tmp_path / "a", tmp_path / "b", "no readable image", "1 file(s) tried")


def test_too_few_images_to_split(image_folder):
    for path in sorted(image_folder.rglob("*.png")):
        if path.name not in ("00.png", "broken.png"):
            path.unlink()
    raises(DataError, f"folder:{image_folder}", "too few samples", image_size=8, test_split=0.9)


def test_flowers_without_setid(flowers_dir):
    (flowers_dir / "setid.mat").unlink()
    raises(DataError, f"flowers102:{flowers_dir}", flowers_dir / "setid.mat", "does not exist")


def test_flowers_with_a_missing_image(flowers_dir):
    (flowers_dir / "jpg" / "image_00007.jpg").unlink()
    raises(DataError, f"flowers102:{flowers_dir}", flowers_dir / "jpg" / "image_00007.jpg", "1 of 18 missing")


def test_flowers_with_the_wrong_mat_file(flowers_dir):
    from scipy.io import savemat

    savemat(flowers_dir / "setid.mat", {"train": np.arange(1, 7)[None]})
    raises(DataError, f"flowers102:{flowers_dir}", flowers_dir / "setid.mat", "'trnid'", "Got ['train']")
    (flowers_dir / "imagelabels.mat").write_bytes(b"garbage")
    raises(DataError, f"flowers102:{flowers_dir}", flowers_dir / "imagelabels.mat", "not a readable MATLAB file")
