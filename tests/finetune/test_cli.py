"""`cnnlab finetune` run as a user runs it, in a subprocess, with tiny settings."""

import json
import os
import subprocess
import sys


def cnnlab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


def test_finetune_writes_a_run(image_folder, tmp_path):
    run = tmp_path / "run"
    done = cnnlab("finetune", "--data", f"folder:{image_folder}", "--backbone", "efficientnet_lite0", "--epochs", 1,
                  "--image-size", 32, "--head-lr", 0.01, "--out", run)
    assert done.returncode == 0, done.stderr
    assert "Fine-tuning efficientnet_lite0 on folder:" in done.stdout and "Test accuracy" in done.stdout
    settings = json.loads((run / "config.json").read_text())["finetune"]
    assert settings["head_lr"] == 0.01 and settings["backbone_lr"] == 0.001 and settings["freeze"] == "backbone"


def test_missing_weights_is_one_line_with_the_fix(image_folder, tmp_path):
    done = cnnlab("finetune", "--data", f"folder:{image_folder}", "--backbone", "resnet18", "--out", tmp_path / "run",
                  env={"TORCH_HOME": str(tmp_path / "torch")})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cnnlab finetune: error:" in done.stderr
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in done.stderr
    assert "--weights FILE" in done.stderr and not (tmp_path / "run").exists()
