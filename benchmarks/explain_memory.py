"""Peak memory of the many-pass explanations against captum and pytorch-grad-cam, each in its own process.

Each contender runs once in a fresh subprocess (so no peak is inherited from
another); the table shows the process's peak resident memory (getrusage's
ru_maxrss) and how much of it came after the model and the images were
ready, or on CUDA torch.cuda.max_memory_allocated.

    .venv/bin/python benchmarks/explain_memory.py            # batch 8, 224x224, EfficientNet-Lite0 and ResNet-18
    .venv/bin/python benchmarks/explain_memory.py --quick    # a smoke run: batch 2, 64x64

Integrated gradients take 32 Gauss-Legendre steps from a black baseline;
captum's IntegratedGradients runs with its default (every step of the batch
in one pass) and with internal_batch_size 16; cnnlab's with its default
budget and a small one. Score-CAM is cnnlab's
``scorecam`` method, when registered, against pytorch-grad-cam's ScoreCAM
with its defaults, on the last convolutional layer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import warnings

STEPS = 32
SMALL_BUDGET_MB = 128
# The keys of `contenders`, in the table's order (the parent process builds no model to ask).
CONTENDERS = ["cnnlab integrated-gradients", f"cnnlab integrated-gradients, budget_mb={SMALL_BUDGET_MB}",
              "captum IntegratedGradients, default", "captum IntegratedGradients, 16 per pass", "cnnlab scorecam",
              "pytorch-grad-cam ScoreCAM, default"]


def contenders(model, layer, x, target) -> dict:
    """name -> callable, or a string saying why the contender is left out."""
    from captum.attr import IntegratedGradients
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from cnnlab import explain

    def captum_ig(internal_batch_size):
        return lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=STEPS,
                                                            internal_batch_size=internal_batch_size)

    def pytorch_grad_cam_scorecam():
        with ScoreCAM(model=model, target_layers=[layer]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])

    scorecam = explain.METHODS.get("scorecam")
    return {
        "cnnlab integrated-gradients": lambda: explain.integrated_gradients(model, x, target, steps=STEPS),
        f"cnnlab integrated-gradients, budget_mb={SMALL_BUDGET_MB}": lambda: explain.integrated_gradients(
            model, x, target, steps=STEPS, budget_mb=SMALL_BUDGET_MB),
        "captum IntegratedGradients, default": captum_ig(None),
        "captum IntegratedGradients, 16 per pass": captum_ig(16),
        "cnnlab scorecam": (lambda: scorecam(model, x, target)) if scorecam else "not registered in this build",
        "pytorch-grad-cam ScoreCAM, default": pytorch_grad_cam_scorecam,
    }


def build(name: str):
    from cnnlab.explain.base import find_layer

    if name == "resnet18":
        from torchvision.models import resnet18

        model = resnet18(weights=None).eval()
    else:
        from cnnlab.models import get_backbone

        model = get_backbone("efficientnet_lite0").create().eval()
    return model, find_layer(model, None)[1]


def megabytes_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args) -> dict:
    """Run one contender and return its peak memory, in MiB."""
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model, layer = build(args.model)
    model.to(device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        target = model(x).argmax(dim=-1)
    run = contenders(model, layer, x, target)[args.child]
    if isinstance(run, str):
        return {"skipped": run}
    before = megabytes_rss()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated() / 2**20
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        return {"peak_mb": peak, "added_mb": peak - start, "what": "CUDA max_memory_allocated"}
    peak = megabytes_rss()
    return {"peak_mb": peak, "added_mb": peak - before, "what": "peak RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="efficientnet_lite0,resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 2, 64x64: a smoke run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size = 2, 64
    if args.child:
        print(json.dumps(child(args)))
        return
    print(f"batch {args.batch}, {args.size}x{args.size}, {STEPS} integration steps, device {args.device}\n")
    print("| model | contender | peak MiB | MiB added by the call |")
    print("| --- | --- | ---: | ---: |")
    for model_name in args.models.split(","):
        for name in CONTENDERS:
            command = [sys.executable, __file__, "--child", name, "--model", model_name, "--batch", str(args.batch),
                       "--size", str(args.size), "--threads", str(args.threads), "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"| {model_name} | {name} | failed: {tail} | |", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if "skipped" in result:
                print(f"| {model_name} | {name} | skipped: {result['skipped']} | |", flush=True)
                continue
            print(f"| {model_name} | {name} | {result['peak_mb']:.0f} | {result['added_mb']:.0f} |", flush=True)

if __name__ == "__main__":
    main()
