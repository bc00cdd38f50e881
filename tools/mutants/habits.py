"""Deliberate bugs in export, lr-find and predict; each must make a test fail (see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

EXPORT = "tests/export/test_export.py"
LR_FIND = "tests/train/test_lr_find.py"
PREDICT = "tests/train/test_predict.py"

MUTANTS = [
    # export
    Mutant("src/cnnlab/export/api.py", "    module = _Probabilities(loaded.network).eval()",
           "    module = _Probabilities(loaded.model).eval()", EXPORT,
           "the export folds the run's preprocessing in"),
    Mutant("src/cnnlab/export/api.py", "        return self.network(images).float().softmax(dim=-1)",
           "        return self.network(images).float()", EXPORT, "the export gives probabilities, not logits"),
    Mutant("src/cnnlab/export/api.py", "                          dynamic_axes={\"images\": {0: \"batch\"}, "
           "\"probabilities\": {0: \"batch\"}} if dynamic_batch",
           "                          dynamic_axes={\"images\": {0: \"batch\"}, "
           "\"probabilities\": {0: \"batch\"}} if not dynamic_batch", EXPORT,
           "--dynamic-batch takes any batch, a fixed export only its own"),
    Mutant("src/cnnlab/export/api.py", "    shape = [-1 if dynamic_batch else len(example), *example.shape[1:]]",
           "    shape = [-1, *example.shape[1:]]", EXPORT, "a fixed TorchScript export refuses another batch size"),
    Mutant("src/cnnlab/export/api.py", "        if not found[\"diff\"] < TOLERANCE:", "        if False:", EXPORT,
           "a file that disagrees with the run is never written"),
    Mutant("src/cnnlab/export/api.py", "        raise ConfigError(f\"ONNX export needs the onnx and onnxruntime "
           "packages: {INSTALL_HINT}\") from None", "        raise", EXPORT,
           "a missing extra is one line saying what to install"),
    Mutant("src/cnnlab/export/api.py", "    return torch.rand(count, *input_shape, generator=generator)",
           "    return torch.zeros(count, *input_shape)", EXPORT, "the printed parity is measured on varied images"),
    # lr-find
    Mutant("src/cnnlab/train/lr_curve.py", "    return lambda t: ratio ** (t / max(steps - 1, 1))",
           "    return lambda t: 1 + (ratio - 1) * t / max(steps - 1, 1)", LR_FIND,
           "the rate grows exponentially from start to end"),
    Mutant("src/cnnlab/train/lr_curve.py", "        smoothed = self.average / (1 - self.beta ** self.count)",
           "        smoothed = self.average", LR_FIND, "the moving average is bias-corrected"),
    Mutant("src/cnnlab/train/lr_curve.py", "        return not math.isfinite(smoothed) or smoothed > self.diverge * self.best",
           "        return not math.isfinite(smoothed)", LR_FIND, "the test stops once the loss passes 4x its minimum"),
    Mutant("src/cnnlab/train/lr_curve.py", "    return float(x[int(np.argmin(slopes))])",
           "    return float(x[int(np.argmax(slopes))])", LR_FIND, "the suggestion is the steepest descent"),
    Mutant("src/cnnlab/train/lr_curve.py", "    first, last = len(lrs) // 10, len(lrs) - SKIP_END",
           "    first, last = 0, len(lrs)", LR_FIND, "the suggestion follows fastai's trim of the curve"),
    Mutant("src/cnnlab/train/lr_find.py", "    return train_data, copy.deepcopy(model)", "    return train_data, model",
           LR_FIND, "the caller's model is left untouched"),
    Mutant("src/cnnlab/train/lr_find.py", "    with torch.random.fork_rng(devices=[]):", "    if True:", LR_FIND,
           "the caller's random-number state is put back"),
    Mutant("src/cnnlab/train/lr_find.py", "        result.lrs.append(self.next_lr)  # the rate",
           "        result.lrs.append(self.trainer.optimizer.param_groups[0][\"lr\"])  # the rate", LR_FIND,
           "each point pairs a loss with the rate it was trained at"),
    Mutant("src/cnnlab/train/lr_find.py", "        if key in options:", "        if False:", LR_FIND,
           "an option the range test would ignore is refused"),
    # predict
    Mutant("src/cnnlab/train/predict.py", "                  if not name.startswith(\".\") and Path(name).suffix.lower() "
           "in IMAGE_SUFFIXES]", "                  if not name.startswith(\".\")]", PREDICT,
           "folders are walked for image files only"),
    Mutant("src/cnnlab/train/predict.py", "    return sorted(found)", "    return found", PREDICT,
           "a folder's images come in path order"),
    Mutant("src/cnnlab/train/predict.py", "            except DataError as error:", "            except KeyError as error:",
           PREDICT, "an unreadable file is skipped and listed, not fatal"),
    Mutant("src/cnnlab/train/predict.py", "    if not result.rows:", "    if False:", PREDICT,
           "no readable image at all is an error (exit 2)"),
    Mutant("src/cnnlab/train/predict.py", "            values, indices = row.topk(min(top_k, len(row)))",
           "            values, indices = row.topk(min(5, len(row)))", PREDICT, "--top-k sets the classes per image"),
    Mutant("src/cnnlab/train/predict.py", "    for start in range(0, len(files), batch):\n        images, names = [], []\n"
           "        for path in files[start:start + batch]:", "    for start in range(0, len(files), 64):\n"
           "        images, names = [], []\n        for path in files[start:start + 64]:", PREDICT,
           "--batch sets how many images run together"),
    Mutant("src/cnnlab/train/predict.py", "        write_text(out, text)", "        print_fn(text)", PREDICT,
           "--out writes the file instead of printing"),
]
