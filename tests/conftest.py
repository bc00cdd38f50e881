"""Fixtures that make tiny data sets in tmp_path (IDX files, a class folder, a Flowers-102 layout), and golden files."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the files in tests/golden/ from what the code gives now, instead of comparing")


@pytest.fixture
def golden(request):
    """`golden(name, values, atol, rtol)`: compare `values` with tests/golden/NAME.json (rewritten by --update-golden)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, values, atol: float, rtol: float = 0.0) -> None:
        path = GOLDEN / f"{name}.json"
        array = np.asarray(torch.as_tensor(values).detach().cpu(), dtype=np.float64)
        if update:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(json.dumps({"shape": list(array.shape), "values": [float(f"{v:.8g}") for v in array.flat]})
                            + "\n")
            return
        if not path.is_file():
            pytest.fail(f"No golden file {path}; create it with pytest --update-golden and commit it.")
        stored = json.loads(path.read_text())
        expected = np.asarray(stored["values"], dtype=np.float64).reshape(stored["shape"])
        np.testing.assert_allclose(array, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{name} drifted from {path}; if the change is intended, rerun "
                                           f"with --update-golden and commit the new file")

    return check


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread per test process: two workers share two cores, the tests run tiny batches, and on a
    busy machine spin-waiting threads made them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write `array` (uint8) as an IDX file, gzipped when `path` ends in .gz; `magic` overrides the header."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def class_images(labels: np.ndarray, height: int, width: int, seed: int, channels: int = 1) -> np.ndarray:
    """uint8 images whose brightness and stripe position depend on the label, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), height, width, channels))
    for i, label in enumerate(labels):
        images[i, :, (label * 3) % width] = 255
        images[i] += 40 * int(label)
    images = np.clip(images, 0, 255).astype(np.uint8)
    return images[..., 0] if channels == 1 else images


@pytest.fixture
def idx_writer():
    return write_idx


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    """train-* (60 images, gzipped) and t10k-* (30 images, plain) IDX files, 8x8, 3 classes."""
    directory = tmp_path / "mnist"
    directory.mkdir()
    for prefix, count, suffix, seed in (("train", 60, ".gz", 0), ("t10k", 30, "", 1)):
        labels = np.arange(count) % 3
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", class_images(labels, 8, 8, seed))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Folders cat/, dog/, fox/ of 8 small PNGs each (RGB and grey, several sizes), plus three bad files."""
    directory = tmp_path / "pets"
    for label, name in enumerate(["dog", "cat", "fox"]):
        (directory / name).mkdir(parents=True)
        for i in range(8):
            size = (10 + i, 12) if i % 2 else (12, 12)
            image = class_images(np.array([label]), *size, seed=10 * label + i, channels=1 if i == 3 else 3)[0]
            (directory / name / f"{i:02d}.png").write_bytes(png_bytes(image))
    (directory / "cat" / "broken.png").write_bytes(b"this is not a png")
    whole = png_bytes(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (directory / "dog" / "truncated.png").write_bytes(whole[: len(whole) * 2 // 3])
    (directory / "fox" / "notes.txt").write_text("not an image")
    (directory / "fox" / ".DS_Store").write_bytes(b"\0\0")
    return directory


@pytest.fixture
def flowers_dir(tmp_path) -> Path:
    """A Flowers-102 layout: 18 jpgs of 3 classes, official train/val/test of 6 images each (2 per class)."""
    from scipy.io import savemat

    directory = tmp_path / "flowers102"
    (directory / "jpg").mkdir(parents=True)
    labels = np.tile([1, 2, 3], 6)  # 1-based, in image-id order
    images = class_images(labels - 1, 20, 24, seed=3, channels=3)
    for image_id, image in enumerate(images, start=1):
        Image.fromarray(image).save(directory / "jpg" / f"image_{image_id:05d}.jpg", quality=95)
    savemat(directory / "imagelabels.mat", {"labels": labels[None].astype(np.uint8)})
    ids = np.arange(1, 19)
    savemat(directory / "setid.mat", {"trnid": ids[12:][None], "valid": ids[6:12][None], "tstid": ids[:6][None]})
    return directory
