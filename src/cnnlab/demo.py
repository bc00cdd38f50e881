"""`make demo`: train on the bundled digits, explain what the network learned, and write its report.

    python -m cnnlab.demo [--out runs/demo] [--epochs N]

1. trains the demo recipe below and prints the test accuracy;
2. explains a few test digits (saliency, guided backprop, Grad-CAM, occlusion)
   and draws the network's idea of each digit (activation maximisation);
3. runs the pretrained EfficientNet-Lite0 on two bundled photos (a cat and a
   cup of coffee), printing their top-5 ImageNet labels with Grad-CAM overlays;
4. writes the run's HTML report.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.explain.api import demo_photos, explain_files, visualize
from cnnlab.files import write_bytes
from cnnlab.report import write_report
from cnnlab.run import Run
from cnnlab.train.api import train

# The recipe: Keras' MNIST CNN with light geometric augmentation and a
# one-cycle schedule. On the 1,797 digits (360 held out for the test) it
# reaches 0.986, 0.992 and 0.992 test accuracy with seeds 0, 1 and 2 in 20 epochs.
DEMO_RECIPE = dict(
    data="digits",
    model="mnist-cnn",
    epochs=20,
    batch_size=32,
    optimizer="sgd",
    lr=0.05,
    schedule="onecycle",
    augment="rotation=10,shift=0.1,zoom=0.1",
    seed=0,
)
EXPLAIN_METHODS = "saliency,guided,gradcam,guided-gradcam,occlusion"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the demo recipe on digits, explain it and report it.")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--epochs", type=int, default=DEMO_RECIPE["epochs"])
    args = parser.parse_args(argv)
    print("== 1. Train mnist-cnn on digits")
    result = train(**{**DEMO_RECIPE, "epochs": args.epochs}, out=args.out, overwrite=True)
    run_dir = Path(result.run_dir)

    print("\n== 2. What the network looks at: a few test digits")
    samples = write_test_samples(run_dir, run_dir / "samples", per_class=1, classes=(0, 3, 5, 8))
    explain_files(run_dir, samples, methods=EXPLAIN_METHODS, out=run_dir / "explanations")
    visualize(run_dir, "activation-max", out=run_dir / "explanations")

    print("\n== 3. A pretrained network on photos: EfficientNet-Lite0 (ImageNet)")
    demo_photos(run_dir / "photos")

    print("\n== 4. The report")
    report = write_report(run_dir)
    print(f"\nDemo run: {run_dir}  test accuracy {result.metrics['test_accuracy']:.4f}")
    print(f"Report:   {report}")
    return 0


def write_test_samples(run_dir: Path, folder: Path, per_class: int = 1, classes=None) -> list[Path]:
    """Save test-split images of the run's data as PNGs (first `per_class` of each class) and return their paths."""
    splits = Run.open(run_dir).splits()
    labels = np.asarray(splits.test.targets)
    paths = []
    for label in classes if classes is not None else range(len(splits.class_names)):
        for index in np.flatnonzero(labels == label)[:per_class]:
            image, _ = splits.test[int(index)]
            pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
            path = folder / f"test{index:04d}-{splits.class_names[label]}.png"
            write_bytes(path, _png(pixels))
            paths.append(path)
    return paths


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
