"""Devices and precisions: `auto` picks bf16 only where it measures faster, and says what it measured."""

import pytest
import torch

from cnnlab import device
from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.run import Run
from cnnlab.train import train

SPEC = "conv(4,3)-relu-maxpool(2)-flatten-dense(10)"
QUIET = {"quiet": True, "progress": False}


def test_the_measurement_leaves_the_model_as_found():
    model = create_model("mnist-cnn", 10, (1, 28, 28)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    speedup = device.bf16_speedup(model, torch.rand(4, 1, 28, 28), torch.device("cpu"))
    assert speedup > 0 and model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("measured, chosen", [(1.6, "bf16"), (1.0, "fp32"), (0.13, "fp32")])
def test_auto_follows_the_measurement_and_the_run_records_the_choice(monkeypatch, tmp_path, measured, chosen):
    monkeypatch.setattr(device, "bf16_speedup", lambda *args: measured)
    lines = []
    train(data="digits", model=SPEC, epochs=1, image_size=12, precision="auto", out=tmp_path / "run",
          print_fn=lines.append, progress=False)
    assert f"--precision auto: {chosen} (a training step ran {measured:.2f}x as fast" in lines[0]
    assert Run.open(tmp_path / "run").config.train.precision == chosen
    assert f", cpu, {chosen}" in lines[1]


def test_an_explicit_bf16_that_is_slow_here_is_said_so(monkeypatch, tmp_path):
    monkeypatch.setattr(device, "bf16_speedup", lambda *args: 0.13)
    lines = []
    train(data="digits", model=SPEC, epochs=1, image_size=12, precision="bf16", out=tmp_path / "run",
          print_fn=lines.append, progress=False)
    assert "0.13x as fast under bf16 autocast as in fp32" in lines[0] and "auto would choose fp32" in lines[0]
    assert Run.open(tmp_path / "run").config.train.precision == "bf16"


def test_bf16_really_autocasts_the_convolutions(monkeypatch, tmp_path):
    seen = []
    original = torch.nn.Conv2d.forward

    def spy(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(device, "bf16_speedup", lambda *args: 2.0)
    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    train(data="digits", model=SPEC, epochs=1, image_size=12, precision="bf16", out=tmp_path / "run", **QUIET,
          print_fn=lambda _: None)
    assert seen and torch.bfloat16 in seen


def test_compile_trains_the_same_weights(monkeypatch, tmp_path):
    from safetensors.torch import load_file

    monkeypatch.setattr("cnnlab.loop.trainer.COMPILE_OPTIONS", {"backend": "eager"})  # no C++ compiler run
    compiled, original = [], torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **options: compiled.append(model) or original(model, **options))
    for name, compile in (("plain", False), ("compiled", True)):
        train(data="digits", model=SPEC, epochs=1, image_size=12, compile=compile, out=tmp_path / name, **QUIET,
              print_fn=lambda _: None)
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("plain", "compiled"))
    assert len(compiled) == 1  # the compiled run, and only it
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_unknown_devices_and_precisions_are_one_line_errors():
    with pytest.raises(ConfigError, match="Unknown --device value 'gpu'"):
        device.resolve_device("gpu")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        device.autocast_dtype("fp16", torch.device("cpu"))
