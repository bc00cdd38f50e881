"""Training throughput of `mnist-cnn` (batch 100, 28x28x1): cnnlab's Trainer against a bare loop and Keras 3.

Contenders: the bare loop, the Trainer in fp32, with bf16 autocast, with
torch.compile (the compilation happens in the untimed warm-up epoch), and
Keras 3 on the torch backend. `--precision auto`'s choice on this machine is
printed too.

Each contender runs in its own process (torch's and Keras' thread pools would
otherwise fight over the cores), with the same thread count, and the rounds
are interleaved so that machine noise hits all of them alike. Printed: the
median images per second over rounds, the ratio to the bare hand-written
PyTorch loop, and the achieved GFLOP/s (a training image costs about 72 MFLOP:
12 M multiply-adds forward, twice that backward, 2 FLOP each).

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

N_IMAGES = 2000
BATCH = 100
FLOP_PER_IMAGE = 72e6
CONTENDERS = ("bare", "trainer-fp32", "trainer-bf16", "trainer-compile", "keras3")


def _data(torch):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(N_IMAGES, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (N_IMAGES,), generator=generator)
    return x, y


def run_bare(epochs: int) -> float:
    import torch
    from torch.nn import functional as F

    from cnnlab.models import create_model

    x, y = _data(torch)
    model = create_model("mnist-cnn", 10, (1, 28, 28))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    def epoch() -> None:
        model.train()
        order = torch.randperm(N_IMAGES)
        for i in range(0, N_IMAGES, BATCH):
            index = order[i:i + BATCH]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return N_IMAGES * epochs / (time.perf_counter() - started)


def run_trainer(epochs: int, precision: str, compile: bool = False) -> float:
    import torch

    from cnnlab.data import ArrayDataset
    from cnnlab.models import create_model
    from cnnlab.train import TrainConfig, Trainer
    from cnnlab.loop.optim import build_optimizer, build_scheduler

    x, y = _data(torch)
    data = ArrayDataset(x, y)
    config = TrainConfig(model="mnist-cnn", epochs=epochs + 1)
    model = create_model("mnist-cnn", 10, (1, 28, 28))
    optimizer = build_optimizer(model, config)
    trainer = Trainer(model, optimizer, build_scheduler(optimizer, config, N_IMAGES // BATCH),
                      precision=precision, progress=False, verbose=False, compile=compile)
    trainer.fit(data, epochs=1, batch_size=BATCH)
    started = time.perf_counter()
    trainer.fit(data, epochs=1 + epochs, batch_size=BATCH)
    return N_IMAGES * epochs / (time.perf_counter() - started)


def run_keras(epochs: int) -> float:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import numpy as np
    import torch

    x, y = _data(torch)
    x = x.permute(0, 2, 3, 1).numpy()  # Keras' default channels_last layout
    y = y.numpy()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.5), layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
    started = time.perf_counter()
    model.fit(x, y.astype(np.int64), batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True)
    return N_IMAGES * epochs / (time.perf_counter() - started)


def measure(name: str, epochs: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    if name == "bare":
        return run_bare(epochs)
    if name == "trainer-compile":
        return run_trainer(epochs, "fp32", compile=True)
    if name.startswith("trainer-"):
        return run_trainer(epochs, name.split("-")[1])
    return run_keras(epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of 2,000 images per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps({"images_per_second": measure(args.only, args.epochs, args.threads)}))
        return
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_ in range(args.rounds):
        for name in CONTENDERS:
            output = subprocess.run([sys.executable, __file__, "--only", name, "--epochs", str(args.epochs),
                                     "--threads", str(args.threads)], env=environment, check=True,
                                    capture_output=True, text=True).stdout
            rates[name].append(json.loads(output.strip().splitlines()[-1])["images_per_second"])
        print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in CONTENDERS),
              file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"mnist-cnn, batch {BATCH}, 28x28x1, {args.threads} threads, median of {args.rounds} rounds")
    print(f"{'contender':<16}{'images/s':>10}{'vs bare':>10}{'GFLOP/s':>10}")
    for name in CONTENDERS:
        print(f"{name:<16}{medians[name]:>10.0f}{medians[name] / medians['bare']:>10.2f}"
              f"{medians[name] * FLOP_PER_IMAGE / 1e9:>10.1f}")
    print(f"trainer-fp32 / keras3: {medians['trainer-fp32'] / medians['keras3']:.2f}x   "
          f"trainer-bf16 / trainer-fp32: {medians['trainer-bf16'] / medians['trainer-fp32']:.2f}x   "
          f"trainer-compile / trainer-fp32: {medians['trainer-compile'] / medians['trainer-fp32']:.2f}x")
    print(f"--precision auto here: {auto_choice()}")
    print(f"CPU: {cpu_description()}")


def auto_choice() -> str:
    """What `--precision auto` measures and picks for mnist-cnn on this machine."""
    import torch

    from cnnlab.device import resolve_precision
    from cnnlab.models import create_model

    model = create_model("mnist-cnn", 10, (1, 28, 28))
    return resolve_precision("auto", model, torch.rand(32, 1, 28, 28), torch.device("cpu"))[1]


def cpu_description() -> str:
    """lscpu's model name and whether the CPU has native bf16 (avx512_bf16, amx_bf16)."""
    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    native = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name}; native bf16: {', '.join(native) if native else 'none (no avx512_bf16, no amx_bf16)'}"


if __name__ == "__main__":
    main()
