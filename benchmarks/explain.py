"""Explanation speed against captum, pytorch-grad-cam, torchcam and the model's own bare passes, in one run.

For each model and batch size every contender runs once per round, in a
shuffled order, for several rounds; the table shows median seconds per call
and ratios taken within this run. Floors are the passes no method can skip:
a forward pass; forward + backward to the Grad-CAM layer (parameters frozen,
the graph cut at the layer); forward + backward to the input (parameters frozen).

    .venv/bin/python benchmarks/explain.py                 # the README table
    .venv/bin/python benchmarks/explain.py --quick         # a smoke run

The CAM family's peers are pytorch-grad-cam's and torchcam's methods of the same name, each
constructed and released within its call (hooks left on the model would tax every other
contender). Score-CAM and Ablation-CAM take one pass per channel of the layer, so their floor is
that many forward passes, and they run as many rounds as occlusion.

Peers that hook ReLU modules (captum's GuidedBackprop, Deconvolution,
GuidedGradCam) get an out-of-place copy of ResNet, which they need; on
EfficientNet captum's guided and deconvolution maps are the plain gradient
(its ReLU6 are not nn.ReLU), timed all the same.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import time
import warnings

import torch
from torch import nn

from cnnlab import explain
from cnnlab.explain.base import borrowed, find_layer
from cnnlab.explain.hooks import Hooks

warnings.filterwarnings("ignore")


def build(name: str) -> tuple[nn.Module, str]:
    if name == "resnet18":
        from torchvision.models import resnet18

        return resnet18(weights=None).eval(), "layer4.1.conv2"
    from cnnlab.models import get_backbone

    return get_backbone("efficientnet_lite0").create().eval(), "conv_head"


def out_of_place(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return twin


def contenders(model: nn.Module, layer_name: str, x: torch.Tensor, target: torch.Tensor, patch: int) -> dict:
    """name -> (method, callable): our methods, their peers, and the floors."""
    from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam,
                             Occlusion, Saliency)
    from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                                  XGradCAM)
    from torchcam.methods import GradCAMpp, ScoreCAM as TorchcamScoreCAM, XGradCAM as TorchcamXGradCAM
    from torchcam.methods import LayerCAM as TorchcamLayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    twin = out_of_place(model)
    layer = find_layer(model, layer_name)[1]
    twin_layer = find_layer(twin, layer_name)[1]
    size = x.shape[-2:]
    pgc_targets = [ClassifierOutputTarget(int(t)) for t in target]
    softmax_model = lambda z: model(z).softmax(dim=-1)  # noqa: E731

    def forward():
        with torch.no_grad():
            model(x)

    def to_layer():
        with borrowed(model), Hooks() as hooks:
            capture = hooks.capture(layer)
            logits = model(x)
            torch.autograd.grad(logits.gather(1, target[:, None]).sum(), capture.value)

    def to_input():
        with borrowed(model):
            leaf = x.clone().requires_grad_()
            torch.autograd.grad(model(leaf).gather(1, target[:, None]).sum(), leaf)

    def captum_gradcam():
        cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")

    def occlusion_loop():
        """One occluded copy per forward pass, one image at a time: the plain loop."""
        with torch.no_grad():
            for i in range(len(x)):
                for r in range(0, size[0] - patch + 1, patch):
                    for c in range(0, size[1] - patch + 1, patch):
                        copy_ = x[i:i + 1].clone()
                        copy_[..., r:r + patch, c:c + patch] = 0.5
                        softmax_model(copy_)

    def captum_occlusion(per_eval):
        def run():
            with torch.no_grad():
                Occlusion(softmax_model).attribute(x, sliding_window_shapes=(3, patch, patch),
                                                   strides=(3, patch, patch), baselines=0.5, target=target,
                                                   perturbations_per_eval=per_eval)
        return run

    def grad_cam_peer(cam_class, **options):
        """A pytorch-grad-cam method, its hooks placed and removed within the call as cnnlab's are."""
        def run():
            with cam_class(model=model, target_layers=[layer], **options) as cam:
                return cam(input_tensor=x, targets=pgc_targets)
        return run

    def torchcam(cam_class, **options):
        def run():
            with cam_class(model, target_layer=layer, **options) as extractor:
                with torch.no_grad() if cam_class is TorchcamScoreCAM else torch.enable_grad():
                    scores = model(x)
                cams = extractor(class_idx=target.tolist(), scores=scores)
            return LayerAttribution.interpolate(cams[0][:, None], size, interpolate_mode="bilinear")
        return run

    grad_input = lambda a: a.clone().requires_grad_()  # noqa: E731
    table = {
        "floor: forward": ("floor", forward),
        "floor: forward + backward to layer": ("floor", to_layer),
        "floor: forward + backward to input": ("floor", to_input),
        "cnnlab saliency": ("saliency", lambda: explain.saliency(model, x, target)),
        "captum Saliency": ("saliency", lambda: Saliency(model).attribute(grad_input(x), target=target)),
        "cnnlab guided": ("guided", lambda: explain.guided(model, x, target)),
        "captum GuidedBackprop": ("guided", lambda: GuidedBackprop(twin).attribute(grad_input(x), target=target)),
        "cnnlab rectified": ("rectified", lambda: explain.rectified(model, x, target)),
        "captum Deconvolution": ("rectified", lambda: Deconvolution(twin).attribute(grad_input(x), target=target)),
        "cnnlab gradcam": ("gradcam", lambda: explain.gradcam(model, x, target, layer=layer_name)),
        "captum LayerGradCam": ("gradcam", captum_gradcam),
        "pytorch-grad-cam GradCAM": ("gradcam", grad_cam_peer(GradCAM)),
        "cnnlab gradcam-guided": ("gradcam-guided", lambda: explain.gradcam_guided(model, x, target, layer_name)),
        "cnnlab guided-gradcam": ("guided-gradcam", lambda: explain.guided_gradcam(model, x, target, layer_name)),
        "captum GuidedGradCam": ("guided-gradcam", lambda: GuidedGradCam(twin, twin_layer).attribute(
            grad_input(x), target=target, interpolate_mode="bilinear")),
        "cnnlab occlusion": ("occlusion", lambda: explain.occlusion(model, x, target, patch=patch, stride=patch)),
        "captum Occlusion, 1 per pass": ("occlusion", captum_occlusion(1)),
        "captum Occlusion, 4 per pass": ("occlusion", captum_occlusion(4)),
        "captum Occlusion, 16 per pass": ("occlusion", captum_occlusion(16)),
        "loop, one copy per pass": ("occlusion", occlusion_loop),
        "cnnlab gradcam++": ("gradcam++", lambda: explain.METHODS["gradcam++"](model, x, target, layer=layer_name)),
        "pytorch-grad-cam GradCAMPlusPlus": ("gradcam++", grad_cam_peer(GradCAMPlusPlus)),
        "torchcam GradCAMpp": ("gradcam++", torchcam(GradCAMpp)),
        "cnnlab xgradcam": ("xgradcam", lambda: explain.xgradcam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam XGradCAM": ("xgradcam", grad_cam_peer(XGradCAM)),
        "torchcam XGradCAM": ("xgradcam", torchcam(TorchcamXGradCAM)),
        "cnnlab hirescam": ("hirescam", lambda: explain.hirescam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam HiResCAM": ("hirescam", grad_cam_peer(HiResCAM)),
        "cnnlab layercam": ("layercam", lambda: explain.layercam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam LayerCAM": ("layercam", grad_cam_peer(LayerCAM)),
        "torchcam LayerCAM": ("layercam", torchcam(TorchcamLayerCAM)),
        "cnnlab eigencam": ("eigencam", lambda: explain.eigencam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam EigenCAM": ("eigencam", grad_cam_peer(EigenCAM)),
        "cnnlab scorecam": ("scorecam", lambda: explain.scorecam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam ScoreCAM": ("scorecam", grad_cam_peer(ScoreCAM)),
        "torchcam ScoreCAM": ("scorecam", torchcam(TorchcamScoreCAM)),
        "cnnlab ablation-cam": ("ablation-cam", lambda: explain.ablation_cam(model, x, target, layer=layer_name)),
        "pytorch-grad-cam AblationCAM": ("ablation-cam", grad_cam_peer(AblationCAM)),
    }
    table.update(attribution_contenders(model, x, target))
    return table


# Integrated gradients' steps and SmoothGrad's samples, the same for every contender.
STEPS = SAMPLES = 32
NOISE = 0.15


def attribution_contenders(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict:
    """name -> (method, callable): integrated gradients, SmoothGrad and input x gradient, cnnlab's and captum's.

    captum's IntegratedGradients and NoiseTunnel without a batch size put every step (sample) of the whole
    batch through one pass: 21.6 GB on EfficientNet-Lite0 at batch 8, 224x224, 50 steps. They are timed
    that way, and with 16 copies per pass.
    """
    from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

    grad_input = lambda a: a.clone().requires_grad_()  # noqa: E731
    spread = NOISE * float(x.max() - x.min())

    def captum_ig(internal_batch_size):
        return lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=STEPS,
                                                            internal_batch_size=internal_batch_size)

    def captum_smoothgrad(batch_size):
        return lambda: NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=SAMPLES,
                                                              nt_samples_batch_size=batch_size, stdevs=spread,
                                                              target=target)

    return {
        "cnnlab integrated-gradients": ("integrated-gradients",
                                        lambda: explain.integrated_gradients(model, x, target, steps=STEPS)),
        "captum IntegratedGradients, default": ("integrated-gradients", captum_ig(None)),
        "captum IntegratedGradients, 16 per pass": ("integrated-gradients", captum_ig(16)),
        "cnnlab smoothgrad": ("smoothgrad", lambda: explain.smoothgrad(model, x, target, samples=SAMPLES,
                                                                       noise=NOISE)),
        "captum NoiseTunnel(Saliency), default": ("smoothgrad", captum_smoothgrad(None)),
        "captum NoiseTunnel(Saliency), 16 per pass": ("smoothgrad", captum_smoothgrad(max(1, 16 // len(x)))),
        "cnnlab input-x-gradient": ("input-x-gradient", lambda: explain.input_x_gradient(model, x, target)),
        "captum InputXGradient": ("input-x-gradient", lambda: InputXGradient(model).attribute(grad_input(x),
                                                                                            target=target)),
    }


def measure(table: dict, rounds: int, occlusion_rounds: int, clock, seed: int = 0) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in table}
    for name, (_, fn) in table.items():  # warm-up
        fn()
    order = list(table)
    shuffle = random.Random(seed)
    for round_ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            method, fn = table[name]
            if method in MANY_PASSES and round_ >= occlusion_rounds:
                continue
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


FLOOR = {"saliency": "floor: forward + backward to input", "guided": "floor: forward + backward to input",
         "rectified": "floor: forward + backward to input", "guided-gradcam": "floor: forward + backward to input",
         "gradcam": "floor: forward + backward to layer", "gradcam-guided": "floor: forward + backward to layer",
         "occlusion": "floor: forward", "gradcam++": "floor: forward + backward to layer",
         "xgradcam": "floor: forward + backward to layer", "hirescam": "floor: forward + backward to layer",
         "layercam": "floor: forward + backward to layer", "eigencam": "floor: forward", "scorecam": "floor: forward",
         "ablation-cam": "floor: forward", "integrated-gradients": "floor: forward + backward to input",
         "smoothgrad": "floor: forward + backward to input", "input-x-gradient": "floor: forward + backward to input"}
# Methods that run many forward passes of the batch's size: occlusion one per patch position, Score-CAM one per
# channel of the layer (masked copies), Ablation-CAM one per channel (ablated copies); each plus the intact batch.
MANY_PASSES = ("occlusion", "scorecam", "ablation-cam")


def ratios(table: dict, seconds: dict[str, float], passes_of: dict[str, int]) -> list[dict]:
    """One row per cnnlab method: its time, the fastest peer, and the ratios."""
    rows = []
    for name, (method, _) in table.items():
        if not name.startswith("cnnlab "):
            continue
        peers = {n: seconds[n] for n, (m, _) in table.items() if m == method and not n.startswith(("cnnlab", "floor"))}
        best = min(peers, key=peers.get) if peers else None
        passes = passes_of.get(method, 1)
        floor = seconds[FLOOR[method]] * passes
        rows.append({"method": method, "seconds": seconds[name], "fastest_peer": best,
                     "peer_seconds": peers.get(best), "vs_fastest_peer": seconds[name] / peers[best] if best else None,
                     "vs_floor": seconds[name] / floor, "floor": FLOOR[method] + (f" x {passes}" if passes > 1 else ""),
                     "peers": {n: seconds[name] / s for n, s in peers.items()}})
    return rows


def summary_table(results: list[dict]) -> str:
    """Every ratio in one Markdown table: cnnlab's time over each peer's and over the floor."""
    lines = ["| model | batch | method | cnnlab ms | cnnlab / each peer | cnnlab / fastest peer | cnnlab / floor |",
             "| --- | ---: | --- | ---: | --- | ---: | ---: |"]
    for result in results:
        for row in result["rows"]:
            peers = "; ".join(f"{name} {ratio:.2f}" for name, ratio in row["peers"].items()) or "-"
            best = "-" if row["vs_fastest_peer"] is None else f"{row['vs_fastest_peer']:.2f}"
            lines.append(f"| {result['model']} | {result['batch']} | {row['method']} | {1000 * row['seconds']:.1f} | "
                         f"{peers} | {best} | {row['vs_floor']:.2f} ({row['floor'].removeprefix('floor: ')}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,efficientnet_lite0")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--patch", type=int, default=56, help="occlusion patch and stride")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--occlusion-rounds", type=int, default=3,
                        help="rounds for occlusion, Score-CAM and Ablation-CAM")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 2 rounds: a smoke run")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time, steadier on a shared machine")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--methods", default=None, help="comma-separated methods to time (default: all)")
    parser.add_argument("--drop", default="", help="comma-separated contender names (or parts of them) to leave "
                        "out, e.g. 'default' for captum's unbounded passes at a batch that would not fit in memory")
    args = parser.parse_args()
    if args.quick:
        args.size, args.patch, args.rounds, args.occlusion_rounds = 64, 32, 2, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, "
          f"occlusion patch = stride = {args.patch}; {args.clock} clock, medians of {args.rounds} rounds "
          f"({args.occlusion_rounds} for occlusion, Score-CAM and Ablation-CAM); "
          f"load average {os.getloadavg()[0]:.1f}\n")
    for model_name in args.models.split(","):
        model, layer = build(model_name)
        for batch in map(int, args.batches.split(",")):
            x = torch.rand(batch, 3, args.size, args.size)
            with torch.no_grad():
                target = model(x).argmax(dim=-1)
            table = contenders(model, layer, x, target, args.patch)
            wanted = set(args.methods.split(",")) if args.methods else None
            dropped = [part for part in args.drop.split(",") if part]
            table = {name: entry for name, entry in table.items() if (entry[0] == "floor" or wanted is None
                     or entry[0] in wanted) and not any(part in name for part in dropped)}
            seconds = measure(table, args.rounds, args.occlusion_rounds, clock)
            channels = find_layer(model, layer)[1].out_channels
            passes = {"occlusion": (args.size // args.patch) ** 2 + 1, "scorecam": channels + 1,
                      "ablation-cam": channels + 1, "integrated-gradients": STEPS, "smoothgrad": SAMPLES}
            rows = ratios(table, seconds, passes)
            results.append({"model": model_name, "batch": batch, "seconds": seconds, "rows": rows})
            print(f"## {model_name}, batch {batch}")
            print("| contender | median ms |")
            print("| --- | ---: |")
            for name, value in seconds.items():
                print(f"| {name} | {1000 * value:.1f} |")
            print("\n| method | cnnlab ms | fastest peer | peer ms | cnnlab / fastest peer | floor | cnnlab / floor |")
            print("| --- | ---: | --- | ---: | ---: | --- | ---: |")
            for row in rows:
                peer_ms = "-" if row["peer_seconds"] is None else f"{1000 * row['peer_seconds']:.1f}"
                vs_peer = "-" if row["vs_fastest_peer"] is None else f"{row['vs_fastest_peer']:.2f}"
                print(f"| {row['method']} | {1000 * row['seconds']:.1f} | {row['fastest_peer'] or '-'} | {peer_ms} | "
                      f"{vs_peer} | {row['floor']} | {row['vs_floor']:.2f} |")
            print(f"load average {os.getloadavg()[0]:.1f}\n", flush=True)
    print("## Every ratio\n")
    print(summary_table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
