"""The command line: thin. Each subcommand parses its options and calls one library function.

Bad input raises a `CnnlabError`; `main` prints its one-line message and
exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from cnnlab import __version__
from cnnlab.errors import CnnlabError, similar


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the nearest option name."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        if message.startswith("unrecognized arguments:"):
            words = [w for w in message.split(":", 1)[1].split() if w.startswith("--")]
            options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            hints = "".join(similar(w, options) for w in words[:1])
            message = f"{message}.{hints}" if hints else message
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data spec: digits, lfw-faces, mnist:DIR, folder:DIR, flowers102:DIR")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="sgd", help="sgd, adam or adamw")
    p.add_argument("--lr", type=float, default=None, help="learning rate (sgd 0.05, adam/adamw 0.001)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--decay", type=float, default=1e-6, help="time-based decay: lr / (1 + decay * iteration)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="time", help="time (Keras decay), cosine or onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--test-split", type=float, default=0.2)
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    p.add_argument("--augment", default="", help="e.g. rotation=10,shift=0.1,hflip,featurewise-center,zca")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16")
    p.add_argument("--patience", type=int, default=None, help="early stopping after N epochs without progress")
    p.add_argument("--reduce-lr-patience", type=int, default=None, help="halve lr after N epochs without progress")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for file data")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default runs/<data>-<model>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its checkpoint")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description="Build, train, fine-tune and see inside convolutional image classifiers.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a CNN from a spec on a data set")
    p.add_argument("--model", required=True, help="registered name (cnnlab models) or a spec string")
    _add_train_options(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("evaluate", help="accuracy and loss of a run on its test split or other data")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None)
    p.set_defaults(handler=_evaluate)

    p = sub.add_parser("predict", help="top-k classes for image files")
    p.add_argument("run_dir", help="run directory or pretrained:NAME")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(handler=_predict)

    p = sub.add_parser("summary", help="layers, output shapes, parameters and multiply-adds of a model")
    p.add_argument("model", help="registered name, spec string, run directory or pretrained:NAME")
    p.add_argument("--input-size", default=None, help="C,H,W (default: the model's own, or 1,28,28)")
    p.add_argument("--classes", type=int, default=10)
    p.set_defaults(handler=_summary)

    p = sub.add_parser("models", help="list registered models and backbones")
    p.set_defaults(handler=_models)
    p = sub.add_parser("datasets", help="list data specs")
    p.set_defaults(handler=_datasets)
    return parser


def _train(args) -> None:
    from cnnlab.train.api import train

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler")}
    train(**options)


def _evaluate(args) -> None:
    from cnnlab.train.api import evaluate_run

    evaluate_run(args.run_dir, data=args.data)


def _predict(args) -> None:
    from cnnlab.train.api import predict_files

    predict_files(args.run_dir, args.images, top_k=args.top_k)


def _summary(args) -> None:
    from cnnlab.train.api import summarize

    summarize(args.model, input_size=args.input_size, num_classes=args.classes)


def _models(args) -> None:
    from cnnlab.models import list_models
    from cnnlab.models.backbones import backbone_names

    for name, description in list_models().items():
        print(f"{name:<14} {description}")
    print("\nbackbones (cnnlab finetune --backbone, pretrained:NAME): " + ", ".join(backbone_names()))
    print("\nor a spec string, e.g. 'conv(32,3)-relu-maxpool(2)-flatten-dense(128)-relu-dropout(0.5)-dense(classes)'")


def _datasets(args) -> None:
    from cnnlab.data import list_datasets

    for name, description in list_datasets().items():
        print(f"{name:<16} {description}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CnnlabError as error:
        print(f"cnnlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    return 0
