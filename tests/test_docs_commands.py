"""Every `cnnlab ...` command in README.md and docs/*.md runs as written, in order, one doc file at a time.

Each doc's commands run in a fresh folder after `cnnlab samples .`, so later
commands find the runs that earlier ones wrote. Only sizes are made tiny
(`--epochs N` becomes 1, fine-tuning works on a tenth of the training images
at 32x32, evaluation and activation maximisation take few steps); the commands are otherwise as
written. A command whose documented output is an error line must fail with
exit code 2 and exactly that line. Usage lines (``[--option X]``, ``A|B``,
PLACEHOLDERS) are not commands: each of their options must be one the
subcommand has. The commands are read from the docs when the test runs, so
the test follows the docs as they change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnnlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = ("", "sh", "bash", "shell", "console")
ERROR_LINE = re.compile(r"^cnnlab(?: [\w-]+)?: error: ")
OUTPUT_LINE = re.compile(r"^cnnlab(?: [\w-]+)?: ")  # "cnnlab serve: ... open http://..." is output, not a command
PLACEHOLDER = re.compile(r"(?:^|[:=/])[A-Z][A-Z_]*(?:\.\.\.)?$")
# Run directories the docs read that no documented command writes: `make demo` writes runs/demo (the demo
# recipe, here with one epoch).
MADE_ELSEWHERE = {"runs/demo": ["train", "--data", "digits", "--model", "mnist-cnn", "--epochs", "1",
                                "--out", "runs/demo", "--quiet"]}
# Why a documented command is not run here; these and nothing else are left out.
NOT_RUN = {
    "serve": "cnnlab serve runs until stopped; tests/serve starts it and talks to it",
    "cuda": "needs a CUDA device, which this machine lacks",
}


@dataclass
class Command:
    doc: str
    line: int
    text: str  # as written, continuations joined
    output: list[str] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text.removeprefix("$ "), comments=True)

    @property
    def expected_error(self) -> str | None:
        return next((line for line in self.output if ERROR_LINE.match(line)), None)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _blocks(text: str):
    """(first line number, lines) of each fenced shell block (no language, or a shell's)."""
    lines, start, language = text.splitlines(), None, ""
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if start is None:
                start, language = number, line[3:].strip()
            else:
                if language in SHELL_BLOCKS:
                    yield start + 1, lines[start:number - 1]
                start = None


def doc_commands(path: Path) -> list[Command]:
    """The `cnnlab` command lines of a doc, in order, each with the output lines shown under it."""
    commands = []
    for first, lines in _blocks(path.read_text()):
        prompted = any(line.startswith("$ ") for line in lines)
        current, index = None, 0
        while index < len(lines):
            line, number = lines[index], first + index
            is_command = (line.startswith("$ cnnlab ") if prompted else
                          line.startswith("cnnlab ") and not OUTPUT_LINE.match(line))
            if is_command:
                text = line
                while text.endswith("\\") and index + 1 < len(lines):  # the shell's continuation: join as is
                    index += 1
                    text = text[:-1] + lines[index]
                current = Command(path.name, number, text)
                commands.append(current)
            elif prompted and line.startswith("$ "):
                current = None  # another program's command (curl, make): its output is not ours
            elif current is not None and prompted:
                current.output.append(line)
            index += 1
    return commands


def is_usage(command: Command) -> bool:
    """A usage line ("cnnlab report RUN_DIR [--data SPEC]") rather than a command to run."""
    return any(word.startswith("[") or "|" in word or PLACEHOLDER.search(word) for word in command.words[1:])


def why_not_run(command: Command) -> str | None:
    words = command.words
    if words[1] == "serve":
        return NOT_RUN["serve"]
    if "--device" in words and words[words.index("--device") + 1].startswith("cuda"):
        return NOT_RUN["cuda"]
    return None


def tiny(words: list[str]) -> list[str]:
    """The command with small sizes: what it does is unchanged, only how long it takes."""
    words = list(words[1:])
    command = words[0]

    def setting(option: str, value: str, append: bool = True) -> None:
        if option in words:
            words[words.index(option) + 1] = value
        elif append:
            words.extend([option, value])

    if command in ("train", "finetune") and "--resume" not in words:
        setting("--epochs", "2" if "--unfreeze-after" in words else "1")
        setting("--unfreeze-after", "1", append=False)
    if command == "finetune":
        setting("--image-size", "32")  # a backbone pass at 224x224 costs seconds per batch on a CPU
        setting("--train-fraction", "0.1")  # an unfrozen backbone trains on a tenth of the images (stratified)
    if command == "explain" and words[1].startswith("pretrained:") and "--patch" not in words:
        words += ["--patch", "112", "--stride", "112"]  # occlusion of a 224x224 input in 4 patches, not 49
    if command == "explain" and "--evaluate" in words:
        setting("--curve-steps", "2")
        setting("--road-percentages", "10")  # the solve for imputed pixels grows with their number
        setting("--randomisation-stages", "1")
    if command == "visualize" and "activation-max" in words:
        setting("--steps", "5")
    return words


DRIVER = r"""
import contextlib, glob, io, json, sys, time
from cnnlab.cli import main
results = []
for words in json.load(open(sys.argv[1])):
    expanded = []
    for word in words:  # the shell's globbing: sorted matches, or the word itself when none
        matches = sorted(glob.glob(word)) if any(c in word for c in "*?") else []
        expanded += matches or [word]
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(expanded)
        except SystemExit as done:
            code = done.code
        except Exception as error:
            code, _ = 99, print(f"{type(error).__name__}: {error}", file=sys.stderr)
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "seconds": time.perf_counter() - started})
    json.dump(results, open(sys.argv[2], "w"))
"""


def _runs_read(commands: list[Command]) -> list[str]:
    """Run directories the commands read before (or without) any command writing them."""
    written, needed = set(), []
    for command in commands:
        words = command.words
        if "--out" in words:
            written.add(words[words.index("--out") + 1].rstrip("/"))
        for word in words[2:3]:
            if word in MADE_ELSEWHERE and word not in written and word not in needed:
                needed.append(word)
    return needed


@pytest.mark.docs
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_runs_as_written(doc, tmp_path):
    commands = doc_commands(doc)
    usage = [c for c in commands if is_usage(c)]
    skipped = [(c, why_not_run(c)) for c in commands if c not in usage and why_not_run(c)]
    runnable = [c for c in commands if c not in usage and not why_not_run(c)]
    subcommands = dict(build_parser()._child_parsers())
    for command in usage:
        options = {o for a in subcommands[command.words[1]]._actions for o in a.option_strings}
        for word in re.findall(r"--[a-z][\w-]*", command.text):
            assert word in options, f"{command}: {word} is not an option of cnnlab {command.words[1]}"
    for command, reason in skipped:
        print(f"not run: {command} ({reason})")
    if not runnable:
        return
    assert subprocess.run([sys.executable, "-m", "cnnlab", "samples", "."], cwd=tmp_path,
                          capture_output=True).returncode == 0
    sequence = [MADE_ELSEWHERE[run] for run in _runs_read(runnable)] + [tiny(c.words) for c in runnable]
    (tmp_path / ".commands.json").write_text(json.dumps(sequence))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", DRIVER, ".commands.json", ".results.json"], cwd=tmp_path, env=environment,
                   check=True, stdout=subprocess.DEVNULL)
    results = json.loads((tmp_path / ".results.json").read_text())[len(sequence) - len(runnable):]
    failures = []
    for command, result in zip(runnable, results):
        print(f"{result['seconds']:6.1f} s  exit {result['code']}  {command}")
        expected = command.expected_error
        if expected is None and result["code"] != 0:
            failures.append(f"{command}\n  exit {result['code']}: {result['stderr'].strip()[-600:]}")
        elif expected is not None and (result["code"], result["stderr"].strip()) != (2, expected):
            failures.append(f"{command}\n  documented: {expected}\n  got (exit {result['code']}): "
                            f"{result['stderr'].strip()[-600:]}")
    assert not failures, "\n".join(failures)
