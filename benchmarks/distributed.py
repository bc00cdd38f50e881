"""Training images/s on 1 and N processes (torch.distributed through `cnnlab train --nproc N`), and the scaling.

Every contender is a whole `cnnlab train` command in its own process tree,
the rounds interleaved; the rate is the run's own `train_images_per_second`
(epoch time only: start-up and rendezvous are not counted). On a CPU the
cores are shared, so N processes get 1/N of the threads each and the fair
reference is one process with all of them; the efficiency is
``rate(N processes) / rate(1 process, all threads)``. On CUDA every process
has its own GPU and the efficiency is ``rate(N) / (N x rate(1))``.

    .venv/bin/python benchmarks/distributed.py [--rounds 3] [--epochs 3] [--nproc 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import cpu_description  # noqa: E402


def rate(out: Path, processes: int, threads: int, epochs: int, device: str, model: str, batch: int) -> float:
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "digits", "--model", model, "--epochs",
               str(epochs), "--batch-size", str(batch), "--device", device, "--quiet", "--out", str(out)]
    if processes > 1:
        command += ["--nproc", str(processes)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=environment, capture_output=True, text=True)
    return json.loads((out / "metrics.json").read_text())["train_images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--batch-size", type=int, default=100, help="the global batch")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.device == "cuda":
        contenders = {"1 process": (1, max(1, cores // args.nproc)), f"{args.nproc} processes":
                      (args.nproc, max(1, cores // args.nproc))}
    else:
        contenders = {f"1 process, {cores} threads": (1, cores), f"1 process, {max(1, cores // args.nproc)} threads":
                      (1, max(1, cores // args.nproc)),
                      f"{args.nproc} processes, {max(1, cores // args.nproc)} threads each":
                      (args.nproc, max(1, cores // args.nproc))}
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for number, (name, (processes, threads)) in enumerate(contenders.items()):
                out = Path(folder) / f"run-{round_}-{number}"
                rates[name].append(rate(out, processes, threads, args.epochs, args.device, args.model,
                                        args.batch_size))
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in rates.items()),
                  file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    names = list(contenders)
    print(f"{args.model} on digits, global batch {args.batch_size}, {args.device}, median of {args.rounds} rounds")
    print(f"{'contender':<40}{'images/s':>10}")
    for name in names:
        print(f"{name:<40}{medians[name]:>10.0f}")
    parallel = medians[names[-1]]
    if args.device == "cuda":
        print(f"scaling efficiency: {parallel / (args.nproc * medians[names[0]]):.2f} "
              f"({args.nproc} GPUs against {args.nproc} x 1 GPU)")
    else:
        print(f"scaling: {parallel / medians[names[0]]:.2f}x one process with all {cores} threads; "
              f"{parallel / (args.nproc * medians[names[1]]):.2f} of {args.nproc} x one process with "
              f"{max(1, cores // args.nproc)} thread(s)")
    print(f"CPU: {cpu_description()}")


if __name__ == "__main__":
    main()
