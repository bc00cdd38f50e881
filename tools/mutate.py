"""Mutation testing by hand: apply one deliberate bug at a time and check that some test fails.

    .venv/bin/python tools/mutate.py                 # every mutant in tools/mutants/*.py
    .venv/bin/python tools/mutate.py data explain    # only those files' mutants
    .venv/bin/python tools/mutate.py --list          # what each mutant breaks, without running anything

Each file in tools/mutants/ defines ``MUTANTS``, a list of `Mutant`: a source
file, a snippet that must occur in it exactly once, its replacement (the bug),
the tests that should catch it, and why the bug matters. The tool patches the
file, runs those tests with ``-x`` in a fresh process, restores the file
(also on Ctrl-C), and prints a table: killed (some test failed), survived
(all passed: a missing test, or an equivalent mutant, said so in `equivalent`),
or stale (the snippet no longer occurs: update the mutant). It exits 1 when a
non-equivalent mutant survives.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    file: str  # path from the repository root
    old: str  # occurs exactly once in the file
    new: str  # the bug
    tests: str  # pytest arguments: files, -k expressions
    why: str  # the promise this bug breaks
    equivalent: str = ""  # when set: why no test can tell (the mutant is expected to survive)


def load(names: list[str]) -> list[tuple[str, Mutant]]:
    found = []
    for path in sorted((ROOT / "tools" / "mutants").glob("*.py")):
        if names and path.stem not in names:
            continue
        spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [(path.stem, mutant) for mutant in module.MUTANTS]
    return found


def run_one(mutant: Mutant, python: str, timeout: float) -> str:
    path = ROOT / mutant.file
    original = path.read_text()
    if original.count(mutant.old) != 1:
        return "stale"
    try:
        path.write_text(original.replace(mutant.old, mutant.new))
        command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", *mutant.tests.split()]
        environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                    env=environment)
        except subprocess.TimeoutExpired:
            return "killed (timeout)"
        if result.returncode == 0:
            return "survived"
        if result.returncode in (1,):
            return "killed"
        return f"error (pytest exit {result.returncode})"
    finally:
        path.write_text(original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="mutant files in tools/mutants/ (stems); default all")
    parser.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    mutants = load(args.files)
    if args.list:
        for area, m in mutants:
            print(f"{area:<10} {m.file}: {m.why}")
        return 0
    rows, started = [], time.perf_counter()
    for number, (area, mutant) in enumerate(mutants, 1):
        outcome = run_one(mutant, args.python, args.timeout)
        if outcome == "survived" and mutant.equivalent:
            outcome = "survived (equivalent)"
        rows.append((area, mutant, outcome))
        print(f"[{number}/{len(mutants)}] {outcome:<22} {area}: {mutant.why}", flush=True)
    killed = sum(o.startswith("killed") for _, _, o in rows)
    equivalent = sum(o == "survived (equivalent)" for _, _, o in rows)
    survivors = [(a, m) for a, m, o in rows if o == "survived"]
    stale = [(a, m) for a, m, o in rows if o == "stale"]
    scored = len(rows) - equivalent - len(stale)
    print(f"\nkilled {killed} of {scored} non-equivalent mutants ({100 * killed / max(scored, 1):.0f}%); "
          f"{equivalent} equivalent, {len(stale)} stale; {time.perf_counter() - started:.0f} s")
    for area, mutant in survivors:
        print(f"SURVIVED {area}: {mutant.file}: {mutant.why}")
    for area, mutant in stale:
        print(f"STALE {area}: {mutant.file}: {mutant.old[:60]!r}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
