"""`make demo`: train the demo recipe on the bundled digits and show what the network learned.

    python -m cnnlab.demo [--out runs/demo] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The recipe: Keras' MNIST CNN with light geometric augmentation and a
# one-cycle schedule. On the 1,797 digits (360 held out for the test) it
# reaches 0.98-0.99 test accuracy in about a minute on 2 cores.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the demo recipe on digits and explain it.")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--epochs", type=int, default=DEMO_RECIPE["epochs"])
    args = parser.parse_args(argv)
    from cnnlab.train.api import train

    result = train(**{**DEMO_RECIPE, "epochs": args.epochs}, out=args.out, overwrite=True)
    run_dir = Path(result.run_dir)
    print(f"\nDemo run: {run_dir}  test accuracy {result.metrics['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
