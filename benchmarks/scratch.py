"""The NumPy engine against torch on the CPU: one training step of seed-cnn, each layer alone, and the loop version.

    .venv/bin/python benchmarks/scratch.py [--threads 2] [--rounds 5] [--repeats 40] [--dtype float32]
    .venv/bin/python benchmarks/scratch.py --accuracy 10 100 [--seeds 3] [--threads 1]

A step is forward, backward and an SGD update (momentum 0.9, Nesterov, time
decay) of seed-cnn on a batch of 100 28x28 images. Each engine runs in its own
subprocess with OMP/OPENBLAS/MKL_NUM_THREADS set to --threads (and
torch.set_num_threads for torch); the two alternate for --rounds rounds so that
both see the same background load, and the figures are medians over all rounds'
repeats. "Each layer" is that layer's forward and backward alone on its real
input (the first convolution computes no input gradient in either engine).
"Loop" replaces the convolutions by the per-pixel loops of the classic tutorial,
timed on a batch of 2 and scaled to 100. When other jobs keep the cores busy,
a threaded BLAS or OpenMP call can wait a whole scheduler time slice for a
descheduled thread, and both engines slow down several-fold; the load average
is printed, and --threads 1 gives steadier figures.

OpenBLAS tuning variables: some machines set OPENBLAS_CORETYPE (and
OPENBLAS_L2_SIZE) in the environment, which makes OpenBLAS use another CPU's
kernels than the one it detects. The subprocesses run without both by default,
so numpy uses the kernel OpenBLAS detects (printed from threadpoolctl);
--keep-openblas-env passes the parent's values through instead, and
--coretype NAME sets one, to measure the difference. On the machine this was
written on (AMD EPYC, 2 cores shared with other jobs) neither variable was set
and OpenBLAS 0.3.31 detected SkylakeX (AVX-512); forcing
OPENBLAS_CORETYPE=Haswell (AVX2; "Zen" maps to the same kernel) moved the
scratch step's median by under 10% either way, inside the run-to-run noise:
seed-cnn's matrices are too small for the BLAS kernel to dominate.

--accuracy EPOCHS... trains seed-cnn on `digits` (28x28, cnnlab.data's 20%
stratified test split and 20% validation split, seed 0) with the classic recipe
(SGD lr 0.05, momentum 0.9, Nesterov, decay 1e-6, batch 100) for each number
of epochs, in both engines from the same initial weights with the same batch
order, and prints each engine's test accuracy for each of --seeds seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STEP_BATCH, LOOP_BATCH, IMAGE = 100, 2, (1, 28, 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--coretype", help="run numpy with OPENBLAS_CORETYPE set to this")
    parser.add_argument("--accuracy", type=int, nargs="+", metavar="EPOCHS", help="train on digits instead")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per --accuracy run")
    parser.add_argument("--worker", choices=["scratch", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.repeats, args.dtype, args.threads)))
        return
    if args.accuracy:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)  # before numpy and torch load their thread pools
        _accuracy(args.accuracy, args.seeds, args.threads)
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    if not args.keep_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    if args.coretype:
        env["OPENBLAS_CORETYPE"] = args.coretype
    results: dict[str, list[dict]] = {"scratch": [], "torch": []}
    for _ in range(args.rounds):
        for engine in results:
            command = [sys.executable, __file__, "--worker", engine, "--repeats", str(args.repeats),
                       "--dtype", args.dtype, "--threads", str(args.threads)]
            output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            results[engine].append(json.loads(output.strip().splitlines()[-1]))
    _report(results, args)


def _report(results: dict, args) -> None:
    def median(engine: str, key: str, layer: str | None = None) -> float:
        values = [v for run in results[engine] for v in (run[key][layer] if layer else run[key])]
        return statistics.median(values)

    scratch_info = results["scratch"][0]
    print(f"seed-cnn, batch {STEP_BATCH} of {IMAGE[1]}x{IMAGE[2]}, {args.dtype}, {args.threads} threads, "
          f"{args.rounds} rounds x {args.repeats} repeats; load average {os.getloadavg()[0]:.1f}")
    print(f"numpy {scratch_info['numpy']} BLAS: {scratch_info['blas']}; torch {results['torch'][0]['torch']}")
    scratch_step, torch_step = median("scratch", "step"), median("torch", "step")
    print(f"\n{'':24s}{'scratch ms':>12s}{'torch ms':>12s}{'ratio':>8s}")
    print(f"{'training step':24s}{scratch_step * 1e3:12.2f}{torch_step * 1e3:12.2f}{scratch_step / torch_step:8.2f}")
    scratch_best = min(v for run in results["scratch"] for v in run["step"])
    torch_best = min(v for run in results["torch"] for v in run["step"])
    print(f"{'  (best of all repeats)':24s}{scratch_best * 1e3:12.2f}{torch_best * 1e3:12.2f}"
          f"{scratch_best / torch_best:8.2f}")
    for layer in results["scratch"][0]["layers"]:
        s, t = median("scratch", "layers", layer), median("torch", "layers", layer)
        print(f"{'  ' + layer + ' fwd+bwd':24s}{s * 1e3:12.3f}{t * 1e3:12.3f}{s / t:8.2f}")
    loop_step = median("scratch", "loop_step") * STEP_BATCH / LOOP_BATCH
    print(f"\nper-pixel loop version: {loop_step:.2f} s per step (timed on a batch of {LOOP_BATCH}, scaled); "
          f"vectorised is {loop_step / scratch_step:,.0f}x faster")


def _timed(fn, repeats: int) -> list[float]:
    for _ in range(max(3, repeats // 10)):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _worker(engine: str, repeats: int, dtype: str, threads: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((STEP_BATCH, *IMAGE)).astype(dtype)
    labels = rng.integers(0, 10, STEP_BATCH)
    if engine == "torch":
        return _torch_worker(x, labels, repeats, threads)

    from threadpoolctl import threadpool_info

    from cnnlab import scratch

    net = scratch.build("seed-cnn", 10, IMAGE, dtype=dtype)
    trainer = scratch.ScratchTrainer(net, scratch.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                                      decay=1e-6))
    result = {"step": _timed(lambda: trainer.train_step(x, labels), repeats), "layers": {},
              "numpy": np.__version__,
              "blas": ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                                f"{i['num_threads']} threads" for i in threadpool_info() if i["user_api"] == "blas")}
    inputs = x
    for position, layer in enumerate(net.layers):
        outputs = layer.forward(inputs, True)
        dout = np.ones_like(outputs)

        def forward_backward(layer=layer, inputs=inputs, dout=dout, first=position == 0):
            layer.forward(inputs, True)
            layer.backward(dout, input_grad=not first)

        result["layers"][layer.name] = _timed(forward_backward, repeats)
        inputs = outputs
    for position, layer in enumerate(net.layers):
        if isinstance(layer, scratch.Conv2D):
            net.layers[position] = LoopConv2D(layer)
    result["loop_step"] = _timed(lambda: trainer.train_step(x[:LOOP_BATCH], labels[:LOOP_BATCH]), 2)
    return result


def _torch_worker(x, labels, repeats: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from cnnlab.models import create_model

    torch.set_num_threads(threads)
    net = create_model("seed-cnn", 10, IMAGE).to(torch.float64 if x.dtype.name == "float64" else torch.float32)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 / (1 + 1e-6 * t))
    images, targets = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(net(images), targets).backward()
        optimizer.step()
        schedule.step()

    result = {"step": _timed(step, repeats), "layers": {}, "torch": torch.__version__}
    inputs = images
    for position, (name, module) in enumerate(net.named_children()):
        with torch.no_grad():
            outputs = module(inputs)
        dout = torch.ones_like(outputs)

        def forward_backward(module=module, inputs=inputs, dout=dout, first=position == 0):
            leaf = inputs if first else inputs.detach().requires_grad_()
            module(leaf).backward(dout)

        result["layers"][name] = _timed(forward_backward, repeats)
        inputs = outputs
    return result


def _accuracy(epoch_counts: list[int], seeds: int, threads: int) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cnnlab import scratch
    from cnnlab.data.splits import load_data
    from cnnlab.models import create_model

    torch.set_num_threads(threads)
    splits = load_data("digits", seed=0)
    x, y = splits.train.x.numpy(), splits.train.y.numpy()
    x_val, y_val = splits.val.x.numpy(), splits.val.y.numpy()
    x_test, y_test = splits.test.x.numpy(), splits.test.y.numpy()
    print(f"digits 28x28: {len(x)} train, {len(x_val)} validation, {len(x_test)} test; seed-cnn, SGD lr 0.05, "
          f"momentum 0.9, Nesterov, decay 1e-6, batch 100; {threads} threads")
    print(f"{'epochs':>6s} {'seed':>4s} {'scratch test acc':>17s} {'torch test acc':>15s} "
          f"{'scratch s':>10s} {'torch s':>8s}")
    for epochs in epoch_counts:
        scratch_accuracies, torch_accuracies = [], []
        for seed in range(seeds):
            torch.manual_seed(seed)
            torch_net = create_model("seed-cnn", 10, (1, 28, 28))
            net = scratch.build("seed-cnn", 10, (1, 28, 28), seed=seed)
            net.load_state_dict({name: value.numpy() for name, value in torch_net.state_dict().items()})

            start = time.perf_counter()
            trainer = scratch.ScratchTrainer(net, scratch.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                                              decay=1e-6))
            trainer.fit(x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=100, seed=seed)
            scratch_accuracies.append(trainer.evaluate(x_test, y_test)[1])
            scratch_seconds = time.perf_counter() - start

            start = time.perf_counter()
            optimizer = torch.optim.SGD(torch_net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 / (1 + 1e-6 * t))
            images, labels = torch.from_numpy(x), torch.from_numpy(y)
            for epoch in range(epochs):
                order = torch.from_numpy(np.random.default_rng(seed + epoch).permutation(len(x)))
                for first in range(0, len(x), 100):
                    rows = order[first:first + 100]
                    optimizer.zero_grad()
                    F.cross_entropy(torch_net(images[rows]), labels[rows]).backward()
                    optimizer.step()
                    schedule.step()
            with torch.no_grad():
                predictions = torch_net(torch.from_numpy(x_test)).argmax(dim=1).numpy()
            torch_accuracies.append(float((predictions == y_test).mean()))
            torch_seconds = time.perf_counter() - start
            print(f"{epochs:6d} {seed:4d} {scratch_accuracies[-1]:17.4f} {torch_accuracies[-1]:15.4f} "
                  f"{scratch_seconds:10.1f} {torch_seconds:8.1f}")
        print(f"{epochs:6d} {'mean':>4s} {np.mean(scratch_accuracies):17.4f} {np.mean(torch_accuracies):15.4f}")


class LoopConv2D:
    """A Conv2D whose forward and backward are the per-pixel loops of the classic tutorial (same weights)."""

    def __init__(self, conv):
        self.conv, self.name = conv, conv.name

    def parameters(self):
        return self.conv.parameters()

    def forward(self, x, training=False):
        import numpy as np

        weight, bias, k = self.conv.weight.value, self.conv.bias.value, self.conv.kernel_size
        self.inputs = x
        n, h_out, w_out = len(x), x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.zeros((n, len(weight), h_out, w_out), dtype=x.dtype)
        for image in range(n):
            for f in range(len(weight)):
                for r in range(h_out):
                    for c in range(w_out):
                        out[image, f, r, c] = np.sum(x[image, :, r:r + k, c:c + k] * weight[f]) + bias[f]
        return out

    def backward(self, dout, input_grad=True):
        import numpy as np

        x, weight, k = self.inputs, self.conv.weight.value, self.conv.kernel_size
        dx = np.zeros_like(x)
        for image in range(dout.shape[0]):
            for f in range(dout.shape[1]):
                for r in range(dout.shape[2]):
                    for c in range(dout.shape[3]):
                        g = dout[image, f, r, c]
                        self.conv.weight.grad[f] += g * x[image, :, r:r + k, c:c + k]
                        self.conv.bias.grad[f] += g
                        dx[image, :, r:r + k, c:c + k] += g * weight[f]
        return dx


if __name__ == "__main__":
    main()
