"""A bounded load test of `cnnlab serve` on loopback: concurrent clients asking for predict + Grad-CAM.

Starts ``cnnlab serve pretrained:efficientnet_lite0`` in a subprocess on a free port, then:

1. one client, idle server: the median seconds of one Grad-CAM request for the raw map (``format=npy``)
   against the library call alone in this process (decode the same bytes, fit them to the model, the
   registry's `gradcam`): the goal is at most 1.2x; and of the page's pair (predict, then the JSON
   explanation with its coloured map) against decode + `LoadedModel.predict` + `gradcam`;
2. CLIENTS clients for SECONDS seconds, each looping predict then explain (gradcam, for the top class), as
   the page does: requests/s, p50/p99 latency per request, 503s (the designed answer of a full queue; the
   client waits Retry-After) and failures (anything else: must be zero);

Every pair sends a different image (the cat with one pixel changed), so the server's cache of recent
uploads helps only as it helps the page: the explanation after the prediction of the same image.
3. the server's resident memory sampled throughout, and its peak (VmHWM): it must stay under RSS_BOUND.

    .venv/bin/python benchmarks/serve.py                    # 16 clients, 30 s: the figures for the docs
    .venv/bin/python benchmarks/serve.py --seconds 5        # a smoke run

Exits 1 when a request failed or the peak passes the bound.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

# The server's memory bound: the model and torch (~0.6 GiB resident here), plus what the design lets requests
# hold: 64 connections' uploads in flight (10 MiB each at most; uvicorn refuses more), one decoded image of at
# most 2048 px a side, and one backward pass. Figures above it mean something is held that should not be.
RSS_BOUND_MIB = 1536


def cat_pngs(count: int) -> list[bytes]:
    """skimage's `chelsea` as PNG, `count` times with one pixel changed each: as many distinct uploads."""
    from PIL import Image
    from skimage import data

    images = []
    for number in range(count):
        picture = data.chelsea().copy()
        picture.reshape(-1)[number] ^= 1
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def start_server(queue: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "cnnlab", "serve", "pretrained:efficientnet_lite0", "--port", "0",
               "--device", "cpu", "--queue", str(queue)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"open (http://[^/ ]+)/", line)
    if not found:
        process.kill()
        raise SystemExit(f"the server did not start: {line}{process.stderr.read()}")
    return process, found.group(1)


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of process `pid` in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def pair(client: httpx.Client, base: str, image: bytes) -> list[tuple[str, int, float]]:
    """predict, then explain Grad-CAM for its top class: [(kind, status, seconds)], 503s retried after waiting."""
    results = []
    target = None
    for kind in ("predict", "explain"):
        while True:
            files = {"image": ("cat.png", image, "image/png")}
            data = {"top": "5"} if kind == "predict" else {"method": "gradcam", "target": str(target)}
            started = time.perf_counter()
            try:
                answer = client.post(f"{base}/api/{kind}", files=files, data=data)
                status = answer.status_code
            except httpx.HTTPError:
                status = -1
            results.append((kind, status, time.perf_counter() - started))
            if status != 503:
                break
            time.sleep(float(answer.headers.get("retry-after", "1")))
        if status != 200:
            return results
        if kind == "predict":
            target = answer.json()["top"][0]["index"]
    return results


def one_request_seconds(base: str, images: list[bytes], target: int) -> dict[str, float]:
    """Median seconds of the server's answers on an idle server and of the same work called in this process,
    taken in turns so that a busy machine slows both alike.

    "request": one Grad-CAM request for the .npy map; "library": decode + fit + Grad-CAM. "pair": the page's
    predict then JSON explanation; "library pair": decode + fit + predict + Grad-CAM.
    """
    from cnnlab.explain import METHODS
    from cnnlab.run import load_model
    from cnnlab.serve.images import decode

    loaded = load_model("pretrained:efficientnet_lite0", device="cpu")
    network, gradcam = loaded.network, METHODS["gradcam"]

    def library(image: bytes) -> None:
        gradcam(network, loaded.prepare(decode(image, 3))[None], target)

    def library_pair(image: bytes) -> None:
        x = loaded.prepare(decode(image, 3))[None]
        gradcam(network, x, int(loaded.predict(x).argmax()))

    times: dict[str, list[float]] = {"request": [], "library": [], "pair": [], "library pair": []}
    with httpx.Client(timeout=120) as client:
        def request(image: bytes) -> None:
            answer = client.post(f"{base}/api/explain", files={"image": ("cat.png", image, "image/png")},
                                 data={"method": "gradcam", "target": str(target), "format": "npy"})
            assert answer.status_code == 200, answer.text

        def page_pair(image: bytes) -> None:
            statuses = [status for _, status, _ in pair(client, base, image)]
            assert statuses == [200, 200], statuses

        calls = {"request": request, "library": library, "pair": page_pair, "library pair": library_pair}
        for number, image in enumerate(images):
            for name, call in calls.items():
                # each call gets an image no call has sent before: the server's cache does not help
                fresh = image if name in ("request", "library") else images[-1 - number]
                started = time.perf_counter()
                call(fresh)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values[2:]) for name, values in times.items()}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--queue", type=int, default=16, help="the server's --queue")
    parser.add_argument("--rounds", type=int, default=15, help="requests timed for the one-request comparison")
    args = parser.parse_args()
    images = cat_pngs(max(64, 2 * args.rounds + 4))
    egyptian_cat = 285
    process, base = start_server(args.queue)
    try:
        idle = one_request_seconds(base, images[: args.rounds + 2], egyptian_cat)
        rss_before, _ = memory_mib(process.pid)

        results: list[tuple[str, int, float]] = []
        samples: list[float] = []
        deadline = time.perf_counter() + args.seconds
        lock = threading.Lock()

        def client_loop(number: int):
            with httpx.Client(timeout=120) as client:
                turn = number
                while time.perf_counter() < deadline:
                    done = pair(client, base, images[turn % len(images)])
                    turn += args.clients
                    with lock:
                        results.extend(done)

        def sampler():
            while time.perf_counter() < deadline:
                samples.append(memory_mib(process.pid)[0])
                time.sleep(0.25)

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)] + [
            threading.Thread(target=sampler)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        rss_after, rss_peak = memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(30)

    ok = [r for r in results if r[1] == 200]
    busy = [r for r in results if r[1] == 503]
    failed = [r for r in results if r[1] not in (200, 503)]
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    flags = Path("/proc/cpuinfo").read_text()
    print(f"CPU: {cpu}, {os.cpu_count()} cores; avx512_bf16: {'avx512_bf16' in flags}; amx: {'amx_tile' in flags}")
    print(f"one Grad-CAM request (.npy), idle server: {idle['request'] * 1000:.1f} ms; library call alone "
          f"(decode + Grad-CAM): {idle['library'] * 1000:.1f} ms; ratio {idle['request'] / idle['library']:.2f}x "
          f"(goal <= 1.2x)")
    print(f"the page's pair (predict, JSON explanation with its PNG), idle server: {idle['pair'] * 1000:.1f} ms; "
          f"library (decode + predict + Grad-CAM): {idle['library pair'] * 1000:.1f} ms; ratio "
          f"{idle['pair'] / idle['library pair']:.2f}x")
    print(f"load: {args.clients} clients, {elapsed:.1f} s, queue {args.queue}: {len(ok)} answered 200 "
          f"({len(ok) / elapsed:.1f} requests/s, {len(ok) / 2 / elapsed:.1f} pairs/s), {len(busy)} answered 503 "
          f"(designed), {len(failed)} failed")
    for kind in ("predict", "explain"):
        seconds = [r[2] for r in ok if r[0] == kind]
        print(f"  {kind:<8} p50 {percentile(seconds, 50) * 1000:7.1f} ms   p99 {percentile(seconds, 99) * 1000:7.1f} ms"
              f"   ({len(seconds)} requests)")
    print(f"server RSS: {rss_before:.0f} MiB before the load, {max(samples, default=rss_after):.0f} MiB at most "
          f"while sampled, {rss_after:.0f} MiB after; peak (VmHWM) {rss_peak:.0f} MiB, bound {RSS_BOUND_MIB} MiB")
    if failed or rss_peak > RSS_BOUND_MIB:
        print("FAILED: " + ("requests failed; " if failed else "") + (
            "the peak passed the bound" if rss_peak > RSS_BOUND_MIB else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
