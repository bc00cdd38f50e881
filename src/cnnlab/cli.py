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
    """argparse with one-line errors that suggest the nearest option or command name."""

    def error(self, message: str):  # argparse's hook
        if message.startswith("unrecognized arguments:"):
            words = [w.split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            hint = similar(words[0], self._option_names()) if words else ""
            message = f"{message}.{hint}" if hint else message
        elif "invalid choice:" in message:
            choice = message.split("invalid choice:", 1)[1].split("(")[0].strip(" '")
            message = message + "." + similar(choice, self._command_names())
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _child_parsers(self):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from action.choices.items()

    def _command_names(self) -> list[str]:
        return [name for name, _ in self._child_parsers()]

    def _option_names(self) -> set[str]:
        names = {o for action in self._actions for o in action.option_strings if o.startswith("--")}
        for _, parser in self._child_parsers():
            names |= parser._option_names()
        return names


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data spec: digits, lfw-faces, mnist:DIR, folder:DIR, flowers102:DIR")
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
    p.add_argument("--train-fraction", type=float, default=1.0, help="stratified share of the training part to use")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default runs/<data>-<model>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its checkpoint")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description="Build, train, fine-tune and see inside convolutional image classifiers.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a CNN from a spec on a data set")
    p.add_argument("--model", help="registered name (cnnlab models) or a spec string")
    p.add_argument("--engine", default="torch", help="torch, or numpy for the from-scratch engine")
    _add_train_options(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("finetune", help="fine-tune a pretrained backbone with a new head on a data set")
    p.add_argument("--backbone", help="efficientnet_lite0, resnet18 ... resnet152 or timm:NAME")
    p.add_argument("--weights", default=None, metavar="FILE", help="pretrained weights (default: found on disk)")
    p.add_argument("--freeze", default="backbone", help="backbone, none or until:LAYER (the first layer that trains)")
    p.add_argument("--unfreeze-after", type=int, default=None, metavar="N", help="unfreeze after N epochs")
    p.add_argument("--unfreeze", default="all", help="what --unfreeze-after unfreezes: all or until:LAYER")
    p.add_argument("--head-lr", type=float, default=None, help="learning rate of the new head (default --lr)")
    p.add_argument("--backbone-lr", type=float, default=None, help="of trainable backbone layers (default head-lr/10)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="recompute frozen features every epoch")
    p.add_argument("--keep-bn-stats", action="store_true", help="unfrozen BatchNorm layers keep the pretrained "
                   "statistics (pair with a small --backbone-lr)")
    _add_train_options(p)
    p.set_defaults(handler=_finetune, optimizer="adam", epochs=5, batch_size=32)

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

    _add_explain_commands(sub)

    p = sub.add_parser("report", help="one self-contained HTML page showing a run: curves, errors, explanations")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="data spec whose test split to use (default: the run's own)")
    p.add_argument("--samples", type=int, default=1000, help="test images evaluated at most (drawn at random)")
    p.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html)")
    p.set_defaults(handler=_report)

    p = sub.add_parser("models", help="list registered models and backbones")
    p.set_defaults(handler=_models)
    p = sub.add_parser("datasets", help="list data specs")
    p.set_defaults(handler=_datasets)
    return parser


def _train(args) -> None:
    from cnnlab.train.api import train

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler")}
    train(**options)


def _finetune(args) -> None:
    from cnnlab.finetune import finetune

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler")}
    finetune(**options)


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


def _report(args) -> None:
    from cnnlab.report import write_report

    write_report(args.run_dir, data=args.data, samples=args.samples, out=args.out)


def _datasets(args) -> None:
    from cnnlab.data import list_datasets

    for name, description in list_datasets().items():
        print(f"{name:<16} {description}")


def _add_explain_commands(sub) -> None:
    p = sub.add_parser("explain", help="saliency, guided backprop, Grad-CAM and occlusion maps for image files")
    p.add_argument("model", help="run directory or pretrained:NAME")
    p.add_argument("images", nargs="+")
    p.add_argument("--method", default="gradcam", help="comma-separated: saliency, guided, rectified, gradcam, "
                   "gradcam-guided, gradcam-rectified, guided-gradcam, occlusion")
    p.add_argument("--target", default=None, help="class index or name (default: the predicted class)")
    p.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last convolutional layer)")
    p.add_argument("--out", default="explanations")
    p.add_argument("--batch", type=int, default=None, help="occluded copies per forward pass (default: chosen)")
    p.add_argument("--patch", type=int, default=None, help="occlusion patch side (default: 1/4 of the input)")
    p.add_argument("--stride", type=int, default=None, help="occlusion stride (default: half the patch)")
    p.add_argument("--fill", type=float, default=0.5, help="occlusion patch value in [0, 1] image units")
    p.set_defaults(handler=_explain)

    p = sub.add_parser("visualize", help="first-layer filters, feature maps, activation maximisation")
    p.add_argument("model", help="run directory or pretrained:NAME")
    p.add_argument("--what", required=True, help="filters, feature-maps or activation-max")
    p.add_argument("--layer", default=None, help="layer name (feature maps: comma-separated)")
    p.add_argument("--image", default=None, help="image for feature maps")
    p.add_argument("--classes", default=None, help="activation-max: class names or indices (channels with --layer)")
    p.add_argument("--steps", type=int, default=200, help="activation-max gradient steps")
    p.add_argument("--input-range", default="0,1", help="activation-max: LOW,HIGH of the input")
    p.add_argument("--jitter", type=int, default=1)
    p.add_argument("--l2", type=float, default=0.5)
    p.add_argument("--tv", type=float, default=2.0, help="total-variation weight")
    p.add_argument("--blur-every", type=int, default=4)
    p.add_argument("--blur-sigma", type=float, default=0.5)
    p.add_argument("--out", default="visualizations")
    p.set_defaults(handler=_visualize)


def _explain(args) -> None:
    from cnnlab.explain.api import explain_files

    explain_files(args.model, args.images, methods=args.method, target=args.target, layer=args.layer, out=args.out,
                  batch=args.batch, patch=args.patch, stride=args.stride, fill=args.fill)


def _visualize(args) -> None:
    from cnnlab.explain.api import visualize

    visualize(args.model, args.what, layer=args.layer, image=args.image, classes=args.classes, out=args.out,
              steps=args.steps, input_range=args.input_range, jitter=args.jitter, l2=args.l2, tv=args.tv,
              blur_every=args.blur_every, blur_sigma=args.blur_sigma)


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
