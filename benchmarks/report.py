"""Time `cnnlab report` on a 10-epoch seed-cnn run on digits (360 test images), against its 30-second budget.

Each round runs the command as a user does, in a fresh process (interpreter
start and imports included), so the figure is what a user waits. Printed per
round: the command's wall time, the time inside `write_report`, and the CPU
seconds the process used (user + system, which other work on the machine
inflates far less than wall time); then the medians, the machine's cores and
its load average.

    .venv/bin/python benchmarks/report.py [--run DIR] [--rounds 3] [--threads 2]

Without --run, the run is trained first (about a minute on 2 cores) in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 30.0


def cnnlab(*args: str, threads: int) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=environment,
                          check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="an existing run directory to report on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the budget is for 2 cores)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(args.run) if args.run else Path(scratch) / "digits-seed-cnn"
        if args.run is None:
            print("training seed-cnn on digits for 10 epochs ...", flush=True)
            cnnlab("train", "--data", "digits", "--model", "seed-cnn", "--epochs", "10", "--quiet", "--out", str(run),
                   threads=args.threads)
        command, inside, cpu = [], [], []
        for round_number in range(1, args.rounds + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            result = cnnlab("report", str(run), "--out", str(Path(scratch) / "report.html"), threads=args.threads)
            command.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            inside.append(float(re.search(r"in ([\d.]+) s$", result.stdout.strip()).group(1)))
            print(f"round {round_number}: cnnlab report {command[-1]:5.1f} s (write_report {inside[-1]:5.1f} s), "
                  f"{cpu[-1]:5.1f} CPU s", flush=True)
        size = (Path(scratch) / "report.html").stat().st_size
    median = statistics.median(command)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n| report of a 10-epoch digits run | median of {args.rounds} | budget |\n| --- | --- | --- |")
    print(f"| `cnnlab report` (fresh process) | {median:.1f} s | {BUDGET_SECONDS:.0f} s |")
    print(f"| inside `write_report` | {statistics.median(inside):.1f} s | |")
    print(f"| CPU time of the command (user + system) | {statistics.median(cpu):.1f} s | |")
    print(f"\npage {size / 2**20:.2f} MB; {os.cpu_count()} cores, {args.threads} torch threads, load average {load}")
    print("within budget" if median < BUDGET_SECONDS else "OVER BUDGET")
    return 0 if median < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
