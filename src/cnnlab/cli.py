"""The command line: thin. Each subcommand parses its options and calls one library function.

Bad input raises a `CnnlabError`; `main` prints its one-line message and
exits with code 2, never a traceback. Training options default to
``argparse.SUPPRESS``: only the options typed reach the library, which knows
the defaults (shown by ``--help``) and can tell, when resuming, which options
the user asked to change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap

from cnnlab import __version__
from cnnlab.errors import CnnlabError, similar
from cnnlab.explain.metrics.settings import add_arguments as add_evaluate_arguments
from cnnlab.explain.metrics.settings import settings_from as evaluate_settings
from cnnlab.explain.api import VISUALIZATIONS
from cnnlab.explain.registry import METHODS
from cnnlab.run.config import DEFAULT_LR, TrainConfig

TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
FINETUNE_OVERRIDES = {"optimizer": "adam", "epochs": 5, "batch_size": 32}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the nearest option or command name of the command in use."""

    def error(self, message: str):  # argparse's hook
        if message.startswith("unrecognized arguments:"):
            words = [w.split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            hint = similar(words[0], self._option_names()) if words else ""
            message = f"{message}.{hint}" if hint else message
        elif "invalid choice:" in message:
            choice = message.split("invalid choice:", 1)[1].split("(")[0].strip(" '")
            message = message + "." + similar(choice, self._command_names())
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = dict(self._child_parsers()).get(getattr(parsed, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def _child_parsers(self):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from action.choices.items()

    def _command_names(self) -> list[str]:
        return [name for name, _ in self._child_parsers()]

    def _option_names(self) -> set[str]:
        return {o for action in self._actions for o in action.option_strings if o.startswith("--") and o != "--help"}


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default, also for options whose parsed default is SUPPRESS, and never
    breaks a line inside a hyphenated name (``gradcam-guided``, ``--max-restarts``)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _get_help_string(self, action):
        text = action.help or ""
        default = getattr(action, "shown_default", argparse.SUPPRESS)
        if default is not argparse.SUPPRESS and "(default" not in text:
            text += f" (default: {default})"
        return text


def _option(parser, *names, shown=argparse.SUPPRESS, **kwargs):
    action = parser.add_argument(*names, default=argparse.SUPPRESS, **kwargs)
    action.shown_default = shown
    return action


def _add_train_options(p: argparse.ArgumentParser, defaults: dict) -> None:
    d = {**TRAIN_DEFAULTS, **defaults}
    _option(p, "--data", metavar="SPEC", help="data spec: digits, lfw-faces, mnist:DIR, folder:DIR, flowers102:DIR "
            "(required, except with --resume)")
    _option(p, "--epochs", type=int, shown=d["epochs"], help="passes over the training split")
    _option(p, "--batch-size", type=int, shown=d["batch_size"], help="images per update (the global batch)")
    _option(p, "--optimizer", shown=d["optimizer"], help="sgd, adam or adamw")
    _option(p, "--lr", type=float, help="learning rate (default: sgd 0.05, adam/adamw 0.001)")
    _option(p, "--momentum", type=float, shown=d["momentum"], help="SGD momentum")
    _option(p, "--nesterov", action=argparse.BooleanOptionalAction, shown=d["nesterov"], help="Nesterov momentum")
    _option(p, "--decay", type=float, shown=d["decay"], help="time schedule: lr / (1 + decay * iteration)")
    _option(p, "--weight-decay", type=float, shown=d["weight_decay"], help="L2 penalty (decoupled with adamw)")
    _option(p, "--schedule", shown=d["schedule"], help="time (Keras decay), cosine or onecycle")
    _option(p, "--label-smoothing", type=float, shown=d["label_smoothing"], help="cross-entropy label smoothing")
    _option(p, "--validation-split", type=float, shown=d["validation_split"], help="share of the training part")
    _option(p, "--test-split", type=float, shown=d["test_split"], help="share of the data held out for testing")
    _option(p, "--train-fraction", type=float, shown=d["train_fraction"],
            help="stratified share of the training part to use")
    _option(p, "--no-shuffle", dest="shuffle", action="store_false", help="keep the training order every epoch")
    _option(p, "--augment", metavar="OPTIONS", help="e.g. rotation=10,shift=0.1,hflip,featurewise-center,zca "
            "(default: none)")
    _option(p, "--image-size", type=int, metavar="N", help="resize images to NxN (default: the data's own)")
    _option(p, "--seed", type=int, shown=d["seed"], help="seeds splits, initialisation, order and augmentation")
    _option(p, "--device", shown=d["device"], help="auto, cpu or cuda; auto: cuda when present")
    _option(p, "--precision", shown=d["precision"],
            help="fp32, bf16 autocast, fp16 autocast with a grad scaler (CUDA), or auto: bf16 where a measured "
            "training step is faster with it")
    _option(p, "--patience", type=int, metavar="N", help="early stopping after N epochs without a better val_loss "
            "(default: off)")
    _option(p, "--reduce-lr-patience", type=int, metavar="N", help="halve lr after N epochs without progress (default: off)")
    _option(p, "--workers", type=int, shown=d["workers"], help="DataLoader worker processes for file data")
    _option(p, "--compile", action="store_true", help="torch.compile the model for training steps "
            "(pays on large models and GPUs; the first epoch compiles)")
    _option(p, "--checkpoint-every", type=int, metavar="STEPS",
            help="also save the resumable state every STEPS batches (default: at each epoch's end)")
    _option(p, "--nproc", type=int, metavar="N", shown=1,
            help="train in N processes (torch.distributed: DDP, gloo on CPU, NCCL on CUDA); --batch-size is global")
    _option(p, "--max-restarts", type=int, metavar="K", shown=0,
            help="with --nproc: restart the workers up to K times from the last checkpoint when one dies")
    p.add_argument("--quiet", action="store_true", help="print only the result line")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: runs/<data>-<model>)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="finish the run in DIR as it was started, from its checkpoint (default: none, a new run)")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N (default: auto, cuda when present)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description="Build, train, fine-tune and see inside convolutional image classifiers.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str) -> _Parser:
        return sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                              formatter_class=_Help)

    p = command("train", "train a CNN from a spec on a data set")
    _option(p, "--model", metavar="NAME|SPEC", help="registered name (cnnlab models) or a spec string (required, "
            "except with --resume)")
    _option(p, "--engine", shown="torch", help="numpy: the from-scratch engine")
    _add_train_options(p, {})
    p.set_defaults(handler=_train)

    p = command("finetune", "fine-tune a pretrained backbone with a new head on a data set")
    _option(p, "--backbone", metavar="NAME", help="efficientnet_lite0, resnet18 ... resnet152 or timm:NAME "
            "(required, except with --resume)")
    _option(p, "--weights", metavar="FILE", help="pretrained weights (default: found on disk)")
    _option(p, "--freeze", shown="backbone", help="backbone, none or until:LAYER (the first layer that trains)")
    _option(p, "--unfreeze-after", type=int, metavar="N", help="unfreeze after N epochs (default: never)")
    _option(p, "--unfreeze", shown="all", help="what --unfreeze-after unfreezes: all or until:LAYER")
    _option(p, "--head-lr", type=float, help=f"learning rate of the new head (default: --lr, adam "
            f"{DEFAULT_LR['adam']:g})")
    _option(p, "--backbone-lr", type=float, help="of trainable backbone layers (default: head-lr / 10)")
    _option(p, "--no-cache", dest="cache", action="store_false",
            help="recompute frozen features every epoch (default: computed once)")
    _option(p, "--keep-bn-stats", action="store_true", help="unfrozen BatchNorm layers keep the pretrained "
            "statistics (pair with a small --backbone-lr)")
    _option(p, "--sync-bn", action="store_true", help="with several processes, BatchNorm over the global batch")
    _add_train_options(p, FINETUNE_OVERRIDES)
    p.set_defaults(handler=_finetune)

    p = command("evaluate", "accuracy and loss of a run on its test split or other data")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="data spec with the same classes (default: the run's own)")
    _add_device(p)
    p.set_defaults(handler=_evaluate)

    p = command("predict", "top-k classes for image files and folders")
    p.add_argument("run_dir", help="run directory or pretrained:NAME")
    p.add_argument("images", nargs="+", metavar="PATH", help="image files, or folders walked recursively for images")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image (default: 5)")
    p.add_argument("--format", default="table", help="table, csv or json (default: table)")
    p.add_argument("--out", default=None, metavar="FILE", help="write there instead of printing (default: stdout)")
    p.add_argument("--batch", type=int, default=64, help="images read and run together (default: 64)")
    _add_device(p)
    p.set_defaults(handler=_predict)

    p = command("summary", "layers, output shapes, parameters and multiply-adds of a model")
    p.add_argument("model", help="registered name, spec string, run directory or pretrained:NAME")
    p.add_argument("--input-size", default=None, help="C,H,W (default: the model's own, or 1,28,28)")
    p.add_argument("--classes", type=int, default=10, help="classes of a registered model or spec (default: 10)")
    p.set_defaults(handler=_summary)

    _add_explain_commands(command)

    p = command("report", "one self-contained HTML page showing a run: curves, errors, explanations")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="data spec whose test split to use (default: the run's own)")
    p.add_argument("--samples", type=int, default=1000, help="test images evaluated at most, drawn at random "
                   "(default: 1000)")
    p.add_argument("--out", default=None, help="HTML file (default: RUN_DIR/report.html)")
    _add_device(p)
    p.set_defaults(handler=_report)

    p = command("serve", "a local web page to drop an image and see what the network sees, and its JSON API")
    p.add_argument("model", help="run directory or pretrained:NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                   "only; any other needs a token)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--token", default=None, help="every request must carry it (default: none on loopback, "
                   "generated and printed on any other address)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait for the model before the answer "
                   "is 503 (default: 16)")
    _add_device(p)
    p.set_defaults(handler=_serve)

    _add_habit_commands(command)

    p = command("samples", "write the images the README and docs use (digits, a face, photos) into a folder")
    p.add_argument("directory", metavar="DIR", help="folder to write into (created when missing)")
    p.set_defaults(handler=_samples)

    p = command("models", "list registered models and backbones")
    p.set_defaults(handler=_models)
    p = command("datasets", "list data specs")
    p.set_defaults(handler=_datasets)
    return parser


def command_line(command: str, options: dict) -> list[str]:
    """The arguments that make `cnnlab COMMAND` parse into `options` again (None values left out)."""
    name = command.split()[-1]
    parser = dict(build_parser()._child_parsers())[name]
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    arguments = [name]
    for key, value in options.items():
        if value is None:
            continue
        action = actions[key]
        flag = next(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse.BooleanOptionalAction):
            arguments.append(flag if value else "--no-" + flag[2:])
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if value == isinstance(action, argparse._StoreTrueAction):
                arguments.append(flag)
        else:
            arguments += [flag, str(value)]
    return arguments


def _options(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("command", "handler")}


def _train(args) -> None:
    from cnnlab.train.api import train

    train(**_options(args))


def _finetune(args) -> None:
    from cnnlab.finetune import finetune

    finetune(**_options(args))


def _evaluate(args) -> None:
    from cnnlab.train.api import evaluate_run

    evaluate_run(args.run_dir, data=args.data, device=args.device)


def _predict(args) -> None:
    from cnnlab.train.api import predict_files

    predict_files(args.run_dir, args.images, top_k=args.top_k, device=args.device, batch=args.batch,
                  format=args.format, out=args.out)


def _summary(args) -> None:
    from cnnlab.train.api import summarize

    summarize(args.model, input_size=args.input_size, num_classes=args.classes)


def _models(args) -> None:
    from cnnlab.models import list_models
    from cnnlab.models.backbones import list_backbones

    for name, description in list_models().items():
        print(f"{name:<14} {description}")
    print("\nbackbones (cnnlab finetune --backbone NAME, pretrained:NAME):")
    for name, description in list_backbones().items():
        print(f"  {name:<20} {description}")
    print("\nor a spec string, e.g. 'conv(32,3)-relu-maxpool(2)-flatten-dense(128)-relu-dropout(0.5)-dense(classes)'")


def _serve(args) -> None:
    from cnnlab.serve import serve

    serve(args.model, host=args.host, port=args.port, device=args.device, token=args.token, queue=args.queue,
          print_fn=lambda line: print(line, flush=True))


def _report(args) -> None:
    from cnnlab.report import write_report

    write_report(args.run_dir, data=args.data, samples=args.samples, out=args.out, device=args.device)


def _samples(args) -> None:
    from cnnlab.samples import write_samples

    write_samples(args.directory)


def _datasets(args) -> None:
    from cnnlab.data import list_datasets

    for name, description in list_datasets().items():
        print(f"{name:<16} {description}")


def _add_habit_commands(command) -> None:
    p = command("export", "the model with its preprocessing as ONNX or TorchScript: [0, 1] images in, "
                "probabilities out")
    p.add_argument("run_dir", help="run directory or pretrained:NAME")
    p.add_argument("--format", default="onnx", help="onnx or torchscript (default: onnx)")
    p.add_argument("--out", default=None, metavar="FILE", help="the file to write (default: RUN_DIR.onnx or "
                   "RUN_DIR.pt beside the run)")
    p.add_argument("--dynamic-batch", action="store_true", help="take any number of images per call (default: "
                   "exactly --batch)")
    p.add_argument("--batch", type=int, default=1, help="images per call of a fixed export (default: 1)")
    p.set_defaults(handler=_export)


    p = command("lr-find", "the learning-rate range test: loss against an exponentially growing rate, and the "
                "rate to train with")
    _option(p, "--model", metavar="NAME|SPEC", help="registered name (cnnlab models) or a spec string (required)")
    _add_lr_find_options(p)
    p.add_argument("--start", type=float, default=1e-7, help="the first learning rate (default: 1e-07)")
    p.add_argument("--end", type=float, default=10.0, help="the last learning rate (default: 10.0)")
    p.add_argument("--steps", type=int, default=100, help="batches, one rate each (default: 100)")
    p.add_argument("--out", default="lr-find", metavar="DIR", help="folder for lr_find.png, .csv and .json "
                   "(default: lr-find)")
    p.set_defaults(handler=_lr_find)


# the training options that mean the same in the range test (it runs its own schedule for --steps batches)
LR_FIND_OPTIONS = {"--data", "--batch-size", "--optimizer", "--momentum", "--nesterov", "--weight-decay",
                   "--label-smoothing", "--validation-split", "--test-split", "--train-fraction", "--no-shuffle",
                   "--augment", "--image-size", "--seed", "--device", "--precision", "--workers", "--quiet"}


def _add_lr_find_options(p: argparse.ArgumentParser) -> None:
    """`train`'s own definitions of the options the range test shares with it."""
    train_options = argparse.ArgumentParser(add_help=False)
    _add_train_options(train_options, {})
    for action in train_options._actions:
        if LR_FIND_OPTIONS & set(action.option_strings):
            p._add_action(action)


def _lr_find(args) -> None:
    from cnnlab.train.lr_find import lr_find

    lr_find(**_options(args))


def _export(args) -> None:
    from cnnlab.export import export_model

    export_model(args.run_dir, args.format, args.out, dynamic_batch=args.dynamic_batch, batch=args.batch)


def _add_explain_commands(command) -> None:
    p = command("explain", "saliency, guided backprop, Grad-CAM and occlusion maps for image files")
    p.add_argument("model", help="run directory or pretrained:NAME")
    p.add_argument("images", nargs="+")
    p.add_argument("--method", default="gradcam", help="comma-separated method names: " + ", ".join(METHODS)
                   + " (default: gradcam)")
    p.add_argument("--target", default=None, help="class index or name (default: the predicted class)")
    p.add_argument("--layer", default=None, help="layer of Grad-CAM and the other layer methods (default: the "
                   "last spatial feature map after its activation)")
    p.add_argument("--option", action="append", default=None, metavar="NAME=VALUE",
                   help="a method option, e.g. steps=16 (repeatable); passed to the methods that take it "
                   "(default: none, each method's own defaults)")
    p.add_argument("--scale", default="fixed", choices=("fixed", "relative"),
                   help="occlusion colour scale: fixed probabilities [0, 1] or relative to the map (default: fixed)")
    p.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    p.add_argument("--batch", type=int, default=None, help="occluded copies per forward pass (default: chosen)")
    p.add_argument("--patch", type=int, default=None, help="occlusion patch side (default: 1/4 of the input)")
    p.add_argument("--stride", type=int, default=None, help="occlusion stride (default: half the patch)")
    p.add_argument("--fill", type=float, default=0.5, help="occlusion patch value in [0, 1] image units "
                   "(default: 0.5)")
    _add_device(p)
    add_evaluate_arguments(p)
    p.set_defaults(handler=_explain)

    p = command("visualize", "first-layer filters, feature maps, activation maximisation")
    p.add_argument("model", help="run directory or pretrained:NAME")
    p.add_argument("--what", required=True, help=", ".join(VISUALIZATIONS[:-1]) + " or " + VISUALIZATIONS[-1]
                   + " (required)")
    p.add_argument("--layer", default=None, help="layer name, comma-separated for feature maps (default: the "
                   "first convolution for filters, up to four convolutions for feature maps, the classes for "
                   "activation-max)")
    p.add_argument("--image", default=None, help="image for feature maps (default: none; feature-maps needs one)")
    p.add_argument("--classes", default=None, help="activation-max: class names or indices (channels with --layer) "
                   "(default: the first ten)")
    p.add_argument("--steps", type=int, default=200, help="activation-max gradient steps (default: 200)")
    p.add_argument("--input-range", default="0,1", help="activation-max: LOW,HIGH of the input (default: 0,1)")
    p.add_argument("--jitter", type=int, default=1, help="pixels of random shift per step (default: 1)")
    p.add_argument("--l2", type=float, default=0.5, help="L2 weight (default: 0.5)")
    p.add_argument("--tv", type=float, default=2.0, help="total-variation weight (default: 2.0)")
    p.add_argument("--blur-every", type=int, default=4, help="blur every N steps (default: 4)")
    p.add_argument("--blur-sigma", type=float, default=0.5, help="blur width (default: 0.5)")
    p.add_argument("--out", default="visualizations", help="output folder (default: visualizations)")
    _add_device(p)
    p.set_defaults(handler=_visualize)


def _explain(args) -> None:
    from cnnlab.explain.api import explain_files

    explain_files(args.model, args.images, methods=args.method, target=args.target, layer=args.layer, out=args.out,
                  batch=args.batch, patch=args.patch, stride=args.stride, fill=args.fill, device=args.device,
                  options=args.option, scale=args.scale, evaluate=args.evaluate, regions=args.regions,
                  evaluate_settings=evaluate_settings(args))


def _visualize(args) -> None:
    from cnnlab.explain.api import visualize

    visualize(args.model, args.what, layer=args.layer, image=args.image, classes=args.classes, out=args.out,
              steps=args.steps, input_range=args.input_range, jitter=args.jitter, l2=args.l2, tv=args.tv,
              blur_every=args.blur_every, blur_sigma=args.blur_sigma, device=args.device)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code if isinstance(done.code, int) else 2
    try:
        args.handler(args)
    except CnnlabError as error:
        from cnnlab.loop.distributed import report_worker_error, world_from_env

        world = world_from_env()
        if report_worker_error(world, error):  # the launcher that started this worker reports it
            return 2
        rank = f"rank {world.rank}: " if world.active else ""
        print(f"cnnlab {args.command}: error: {rank}{error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(getattr(interrupt, "message", "cnnlab: interrupted"), file=sys.stderr)
        return 130
    except RuntimeError as error:
        from cnnlab.loop.distributed import world_from_env

        world = world_from_env()
        if not (world.active and any(word in str(error) for word in ("gloo", "NCCL", "Connection"))):
            raise
        # a collective failed because another worker died: that worker's failure is the one to report
        print(f"cnnlab {args.command}: rank {world.rank} stopped: another process of the group failed "
              f"({str(error).splitlines()[0][:160]})", file=sys.stderr)
        return 1
    return 0

