"""Every option of every subcommand says in --help what it defaults to and which values it takes; finetune lists
only what it accepts; an unknown option's suggestion comes from the subcommand typed."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from cnnlab.cli import build_parser
from cnnlab.device import DEVICES, PRECISIONS
from cnnlab.explain.api import VISUALIZATIONS
from cnnlab.explain.registry import METHODS
from cnnlab.run.config import ENGINES, OPTIMIZERS, SCHEDULES

# Options whose values come from a fixed set; the set's names must all be in the option's help.
VALUE_SETS = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS, "device": DEVICES,
              "engine": ENGINES, "what": VISUALIZATIONS, "method": tuple(METHODS)}
FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction, argparse._VersionAction)


def _subcommands():
    parser = build_parser()
    return list(parser._child_parsers())


def _options():
    for name, parser in _subcommands():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, FLAGS):
                yield pytest.param(parser, action, id=f"{name} {action.option_strings[-1]}")


def _help_of(parser, action) -> str:
    """The option's entry in --help, whitespace collapsed."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def _default(action):
    shown = getattr(action, "shown_default", argparse.SUPPRESS)
    if shown is not argparse.SUPPRESS:
        return shown
    return None if action.default is argparse.SUPPRESS else action.default


@pytest.mark.parametrize("parser, action", _options())
def test_option_help_shows_its_default(parser, action):
    text = _help_of(parser, action)
    default = _default(action)
    if default is None:  # no value: the help says what happens without the option, or that it is needed
        assert re.search(r"\(default\b|default\)|\(required", text), text
    else:
        assert f"default: {default}" in text, text


@pytest.mark.parametrize("parser, action", _options())
def test_option_help_shows_its_choices(parser, action):
    text = _help_of(parser, action)
    values = list(action.choices or ()) or list(VALUE_SETS.get(action.dest.removeprefix("evaluate_"), ()))
    for value in values:
        assert re.search(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", text), f"{value!r} missing: {text}"


def test_finetune_help_lists_no_option_finetune_refuses():
    parsers = dict(_subcommands())
    finetune = {o for a in parsers["finetune"]._actions for o in a.option_strings}
    assert "--engine" not in finetune and "--model" not in finetune  # a backbone, trained by torch
    for refused in ("--engine", "--model"):
        result = subprocess.run([sys.executable, "-m", "cnnlab", "finetune", refused, "x"], capture_output=True,
                                text=True)
        assert result.returncode == 2 and f"unrecognized arguments: {refused}" in result.stderr


def _error(*arguments: str) -> str:
    result = subprocess.run([sys.executable, "-m", "cnnlab", *arguments], capture_output=True, text=True)
    assert result.returncode == 2
    return result.stderr.strip()


def test_an_unknown_option_is_matched_only_against_the_subcommand_typed():
    message = _error("train", "--steps", "3")
    assert "unrecognized arguments: --steps 3" in message
    assert "'--steps'" not in message  # visualize's option, not train's
    assert "'--help'" not in message  # every command has it: no help as a suggestion
    assert "Similar: '--steps'" in _error("visualize", "runs/x", "--what", "filters", "--stepz", "3")


def test_a_bad_choice_suggests_the_nearest_value_not_a_command():
    message = _error("train", "--data", "digits", "--model", "seed-cnn", "--optimizer", "adm")
    assert "'adam'" in message and "finetune" not in message
