"""Fine-tuning epoch time with the frozen-feature cache against without it, in one run.

Both runs call `cnnlab.finetune.finetune` with the same settings (frozen
backbone, no augmentation), one with `cache=True`, one with `cache=False`, and
read the per-epoch seconds from their histories. With the cache, the first
epoch pays for one backbone pass over the train and validation images, and
every later epoch trains only the head; without it, every epoch runs the
backbone forward over every image again. Printed: seconds per epoch, training
images per second, and the ratios. On a CUDA machine the same script measures
the CUDA path (AMP with --precision bf16/fp16, channels_last, pinned memory,
--workers).

    .venv/bin/python benchmarks/finetune.py [--data digits] [--image-size 64] [--epochs 3] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    from cnnlab.finetune import finetune
    from cnnlab.loop.trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu, torch threads: {torch.get_num_threads()}"
    print(f"{args.backbone} on {args.data} at {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"{args.epochs} epochs, frozen backbone; {name}, {args.precision}, torch {torch.__version__}")
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for cache in (False, True):
            result = finetune(args.data, args.backbone, epochs=args.epochs, image_size=args.image_size,
                              batch_size=args.batch_size, device=args.device, precision=args.precision,
                              workers=args.workers, cache=cache, out=Path(directory) / str(cache), quiet=True,
                              progress=False, print_fn=lambda *_: None)
            results[cache] = result
    n_train = results[True].metrics["train_images"]
    uncached = [row["seconds"] for row in results[False].history]
    cached = [row["seconds"] for row in results[True].history]
    later = statistics.median(cached[1:]) if len(cached) > 1 else float("nan")
    rows = [("no cache, every epoch (median)", statistics.median(uncached)),
            ("cache, epoch 1 (extracts features)", cached[0]),
            ("cache, epochs 2+ (median)", later)]
    print(f"\n{'':38} {'s/epoch':>9} {'train img/s':>12}")
    for label, seconds in rows:
        print(f"{label:38} {seconds:9.3f} {n_train / seconds:12.1f}")
    print(f"\nspeed-up of an epoch after the first: {statistics.median(uncached) / later:.0f}x")
    print(f"speed-up of the whole {args.epochs}-epoch run: {sum(uncached) / sum(cached):.2f}x "
          f"({sum(uncached):.1f}s -> {sum(cached):.1f}s)")
    print(f"test accuracy: cache {results[True].metrics['test_accuracy']:.4f}, "
          f"no cache {results[False].metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
