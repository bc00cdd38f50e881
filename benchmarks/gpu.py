"""The GPU figures in one command, under 8 minutes on one GPU: training, fine-tuning, DDP and explanations.

    .venv/bin/python benchmarks/gpu.py [--out gpu-figures.txt]       # on a machine with CUDA
    .venv/bin/python benchmarks/gpu.py --device cpu --quick          # a dry run of every part, small sizes

1. Training throughput: ResNet-50 on 224x224 batches of 64 in channels_last,
   the bare hand-written loop against cnnlab's Trainer in fp32, bf16 and fp16
   autocast (images/s, and each as a ratio of the bare loop in the same precision).
2. A fine-tuning epoch: a synthetic Flowers-102 layout of JPEGs (102 classes,
   1,020 training images as the official split has), `cnnlab finetune` of
   ResNet-50 and ResNet-152 with every layer trained, `--precision auto`,
   `--workers 8`: seconds per epoch and images/s, to set beside the tutorials'
   "1 hour for 12 epochs of ResNet152".
3. DDP on every visible GPU (`benchmarks/distributed.py --device cuda`) when
   there are two or more.
4. Every registered explanation method at batch 32 on ResNet-50 (ms per
   batch), with the peers' Grad-CAM and saliency beside them.
Figures go to stdout and to `--out`.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import cpu_description  # noqa: E402

LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def timed(step, device, repeats: int) -> float:
    """Median seconds of `step()` after two warm-up calls."""
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_throughput(device, quick: bool) -> None:
    from torch.nn import functional as F
    from torchvision.models import resnet50

    from cnnlab.data import ArrayDataset
    from cnnlab.loop.trainer import Trainer

    size, batch, steps = (64, 8, 3) if quick else (224, 64, 20)
    say(f"== 1. Training throughput: ResNet-50, {size}x{size}, batch {batch}, channels_last, {device}")
    x = torch.rand(batch * steps, 3, size, size)
    y = torch.randint(0, 1000, (batch * steps,))
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    rates = {}
    for precision in precisions:
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        model = resnet50().to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        data_x = x.to(device).contiguous(memory_format=torch.channels_last)
        data_y = y.to(device)

        def bare_epoch() -> None:
            for i in range(0, len(data_x), batch):
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = F.cross_entropy(model(data_x[i:i + batch]).float(), data_y[i:i + batch])
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()

        bare = len(x) / timed(bare_epoch, device, 1 if quick else 3)
        network = resnet50()
        trainer = Trainer(network, torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9), device=device,
                          precision=precision, progress=False, verbose=False)
        dataset = ArrayDataset(x, y)
        epochs = [0]

        def trainer_epoch() -> None:
            epochs[0] += 1
            trainer.fit(dataset, epochs=epochs[0], batch_size=batch, shuffle=False)

        ours = len(x) / timed(trainer_epoch, device, 1 if quick else 3)
        rates[precision] = (bare, ours)
        say(f"{precision:>5}: bare loop {bare:8.0f} img/s   cnnlab Trainer {ours:8.0f} img/s   "
            f"Trainer / bare {ours / bare:.2f}")
    if "bf16" in rates:
        say(f"bf16 / fp32 (Trainer): {rates['bf16'][1] / rates['fp32'][1]:.2f}x")
    say()


def synthetic_flowers(root: Path, per_class: int, size: int) -> Path:
    """A Flowers-102 layout of random JPEGs: `per_class` train, and 1 val and 1 test image per class."""
    from PIL import Image
    from scipy.io import savemat

    (root / "jpg").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    image_id = 0
    for label in range(1, 103):
        for split, count in (("trnid", per_class), ("valid", 1), ("tstid", 1)):
            for _ in range(count):
                image_id += 1
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "jpg" / f"image_{image_id:05d}.jpg", quality=85)
                labels.append(label)
                ids[split].append(image_id)
    savemat(root / "imagelabels.mat", {"labels": np.array(labels)[None]})
    savemat(root / "setid.mat", {key: np.array(value)[None] for key, value in ids.items()})
    return root


def finetune_epochs(device, quick: bool) -> None:
    from torchvision import models

    per_class, size = (1, 64) if quick else (10, 256)
    say(f"== 2. A fine-tuning epoch: synthetic Flowers-102 layout, {102 * per_class} training JPEGs, {device}")
    with tempfile.TemporaryDirectory() as folder:
        data = synthetic_flowers(Path(folder) / "flowers", per_class, size)
        for depth in (50, 152):
            weights = Path(folder) / f"resnet{depth}.pth"
            torch.save(getattr(models, f"resnet{depth}")().state_dict(), weights)
            out = Path(folder) / f"run{depth}"
            command = [sys.executable, "-m", "cnnlab", "finetune", "--data", f"flowers102:{data}", "--backbone",
                       f"resnet{depth}", "--weights", str(weights), "--freeze", "none", "--epochs", "2",
                       "--batch-size", "32", "--workers", "2" if quick else "8", "--precision", "auto",
                       "--device", device.type, "--quiet", "--out", str(out)]
            if quick:
                command += ["--image-size", "64"]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                say(f"resnet{depth}: failed: {done.stderr.strip()[-300:]}")
                continue
            from cnnlab.run import Run

            run = Run.open(out)
            seconds = run.history()[-1]["seconds"]
            images = 102 * per_class
            say(f"resnet{depth}: {seconds:.1f} s per epoch of {images} images ({images / seconds:.0f} img/s), "
                f"precision {run.config.train.precision}; 12 epochs: {12 * seconds / 60:.1f} min")
    say()


def ddp(device, quick: bool) -> None:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    say(f"== 3. DDP on every visible GPU ({gpus})")
    if gpus < 2:
        say("one GPU or none: DDP across GPUs needs two; benchmarks/distributed.py --device cuda --nproc N runs it")
    else:
        done = subprocess.run([sys.executable, str(Path(__file__).with_name("distributed.py")), "--device", "cuda",
                               "--nproc", str(gpus), "--rounds", "1" if quick else "2", "--batch-size", "256"],
                              capture_output=True, text=True)
        for line in done.stdout.splitlines():
            say(line)
    say()


def explanations(device, quick: bool) -> None:
    from captum.attr import LayerGradCam, Saliency
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision.models import resnet50

    from cnnlab.explain import METHODS

    size, batch = (64, 4) if quick else (224, 32)
    say(f"== 4. Explanations: ResNet-50, batch {batch}, {size}x{size}, {device} (ms per batch)")
    model = resnet50().to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    target = model(x).argmax(dim=1)
    light = {"occlusion": {"patch": size // 4, "stride": size // 4}}
    for name, method in METHODS.items():
        options = light.get(name, {})
        seconds = timed(lambda: method(model, x, target, **options), device, 1 if quick else 3)
        say(f"{name:<22}{1000 * seconds:>10.1f}")
    layer = model.layer4[-1]
    peers = {"captum LayerGradCam": lambda: LayerGradCam(model, layer).attribute(x, target=target),
             "captum Saliency": lambda: Saliency(model).attribute(x.clone().requires_grad_(), target=target),
             "pytorch-grad-cam GradCAM": lambda: GradCAM(model, [layer])(
                 x, [ClassifierOutputTarget(int(t)) for t in target])}
    for name, step in peers.items():
        say(f"{name:<22}{1000 * timed(step, device, 1 if quick else 3):>10.1f}")
    say()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that every part runs")
    parser.add_argument("--out", default=os.environ.get("OUT", ".") + "/gpu-figures.txt")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        say(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    say(f"CPU: {cpu_description()}")
    started = time.perf_counter()
    for part in (training_throughput, finetune_epochs, ddp, explanations):
        try:
            part(device, args.quick)
        except Exception as error:  # one failing part must not cost the figures of the others
            say(f"{part.__name__} failed: {type(error).__name__}: {error}")
    say(f"total {time.perf_counter() - started:.0f} s")
    Path(args.out).write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
