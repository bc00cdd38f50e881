"""Deliberate bugs in data, preprocessing and the behaviour around training (see tools/mutate.py).

The first group are the bugs that once passed the whole suite; the rest guard what was built to keep bad data
from passing silently.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

HOSTILE = "tests/test_hostile_inputs.py"
KERAS = "tests/data/test_keras_reference.py"
SCAN = "tests/data/test_folder_scan.py"
PIXELS = "tests/data/test_pixel_formats.py"
TRAINER = "tests/train/test_trainer.py"
OPTIM = "tests/train/test_optim.py"

MUTANTS = [
    # ---- behaviour bugs that used to pass every test
    Mutant("src/cnnlab/train/api.py", "make_preprocess(parse_augment(config.augment), splits.train)",
           "make_preprocess(parse_augment(config.augment), torch.cat([splits.train.x, splits.val.x, splits.test.x]))",
           "tests/train/test_fitted_statistics.py", "featurewise statistics are fitted on the training split only"),
    Mutant("src/cnnlab/loop/trainer.py", "        was_training = self.model.training\n        self.model.eval()",
           "        was_training = self.model.training\n        self.model.train()", f"{TRAINER} -k dropout_off",
           "the torch Trainer evaluates and predicts with dropout off"),
    Mutant("src/cnnlab/scratch/trainer.py", "logits = self.net.forward(x[first:first + batch_size], training=False)",
           "logits = self.net.forward(x[first:first + batch_size], training=True)",
           "tests/scratch/test_scratch_train.py -k dropout_off", "the NumPy engine evaluates with dropout off"),
    Mutant("src/cnnlab/scratch/trainer.py",
           "np.concatenate([softmax(self.net.forward(x[first:first + batch_size], training=False))",
           "np.concatenate([softmax(self.net.forward(x[first:first + batch_size], training=True))",
           "tests/scratch/test_scratch_train.py -k dropout_off", "the NumPy engine predicts with dropout off"),
    Mutant("src/cnnlab/device.py", 'return torch.bfloat16 if precision == "bf16" else torch.float16',
           'return None if precision == "bf16" else torch.float16', f"{TRAINER} -k precision",
           "--precision bf16 runs the convolutions in bf16, not silently in fp32"),
    Mutant("src/cnnlab/loop/trainer.py", "self.amp_dtype = autocast_dtype(precision, self.device)",
           'self.amp_dtype = autocast_dtype("fp32", self.device)', f"{TRAINER} -k precision",
           "the Trainer uses the precision it is given"),
    Mutant("src/cnnlab/explain/api.py",
           "targets = predicted if target_index is None else torch.full_like(predicted, target_index)",
           "targets = predicted", "tests/explain/test_cli.py -k target", "cnnlab explain --target explains that class"),
    Mutant("src/cnnlab/loop/callbacks.py", "            self._model().load_state_dict(self.best_weights)",
           "            pass", f"{TRAINER} -k early_stopping", "EarlyStopping restores the best epoch's weights"),
    Mutant("src/cnnlab/loop/optim.py", "0.5 * (1 + math.cos(math.pi * min(t, total) / total))",
           "0.5 * (1 - math.cos(math.pi * min(t, total) / total))", OPTIM, "the cosine schedule anneals to zero"),
    Mutant("src/cnnlab/loop/optim.py", "total_steps=total)", "total_steps=2 * total)", OPTIM,
           "one-cycle spans the whole run"),
    Mutant("src/cnnlab/loop/optim.py", 'torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam',
           'torch.optim.Adam if config.optimizer == "adamw" else torch.optim.AdamW', OPTIM,
           "adamw decouples weight decay, adam adds it to the gradient"),
    Mutant("src/cnnlab/loop/optim.py", "return optimizer(parameters, lr=config.base_lr, weight_decay=config.weight_decay)",
           "return optimizer(parameters, lr=config.base_lr)", OPTIM, "Adam and AdamW apply --weight-decay"),
    Mutant("src/cnnlab/loop/optim.py", "nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)",
           "nesterov=config.nesterov and config.momentum > 0)", OPTIM, "SGD applies --weight-decay"),
    Mutant("src/cnnlab/finetune/features.py", "    model.eval().to(device, memory_format",
           "    model.to(device, memory_format", "tests/finetune/test_features.py -k eval_mode",
           "the feature cache extracts with the backbone in eval mode"),
    Mutant("src/cnnlab/data/preprocess.py", "self.zca = ((eigenvectors * scale) @ eigenvectors.T).float()",
           "self.zca = (eigenvectors * scale).float()", KERAS, "ZCA whitening, not PCA whitening"),
    Mutant("src/cnnlab/data/preprocess.py", "scale = 1.0 / torch.sqrt(eigenvalues.clamp(min=0) + zca_epsilon)",
           "scale = 1.0 / (torch.sqrt(eigenvalues.clamp(min=0)) + zca_epsilon)", KERAS,
           "ZCA's epsilon sits inside the square root"),
    Mutant("src/cnnlab/data/preprocess.py", "            centre = flat.mean(dim=0)\n",
           "            centre = torch.zeros_like(flat[0])\n", KERAS, "ZCA centres each pixel on its training mean"),
    Mutant("src/cnnlab/data/augment.py", "flips &= torch.tensor([o.hflip, o.vflip], device=device)",
           "flips &= torch.tensor([o.vflip, o.hflip], device=device)", "tests/data/test_augment.py -k flip",
           "hflip mirrors left-right and vflip top-bottom"),
    Mutant("src/cnnlab/data/preprocess.py", "std = wide.std(dim=(0, 2, 3), correction=0)",
           "std = wide.std(dim=(0, 2, 3), correction=1)", f"{KERAS} -k featurewise",
           "featurewise std is the population std, as Keras'"),
    Mutant("src/cnnlab/data/preprocess.py", "x.std(dim=(1, 2, 3), keepdim=True, correction=0)",
           "x.std(dim=(1, 2, 3), keepdim=True)", f"{KERAS} -k samplewise",
           "samplewise std is the population std, as Keras'"),
    Mutant("src/cnnlab/data/augment.py", "featurewise_center=options.featurewise_center or options.featurewise_std,",
           "featurewise_center=options.featurewise_center,", f"{KERAS} -k featurewise",
           "featurewise-std centres as well, as Keras does"),
    # ---- the folder scan
    Mutant("src/cnnlab/data/folder.py",
           "if (target.st_dev, target.st_ino) in walked or (path.is_symlink() and _inside(path.resolve(), root)):",
           "if False:", f"{SCAN} {HOSTILE}", "a link loop inside a class folder adds nothing"),
    Mutant("src/cnnlab/data/folder.py", "            elif identity in seen:", "            elif False:",
           f"{SCAN} {HOSTILE}", "one file with several names (links) is counted once"),
    Mutant("src/cnnlab/data/folder.py", "            if kind:\n                scan.skipped",
           "            if False:\n                scan.skipped", f"{SCAN} -k special",
           "FIFOs, sockets and devices are listed and never opened"),
    Mutant("src/cnnlab/data/folder.py", "os.walk(class_dir, followlinks=True, onerror=_walk_error)",
           "os.walk(class_dir, followlinks=True)", f"{SCAN} -k unreadable", "an unreadable class folder is an error"),
    Mutant("src/cnnlab/data/folder.py", "    if empty:\n", "    if False:\n", f"{SCAN} -k without",
           "a class folder without a readable image is an error"),
    Mutant("src/cnnlab/data/specs.py", "        empty = not any(path.iterdir())\n    except OSError as error:",
           "        empty = not any(path.iterdir())\n    except ArithmeticError as error:",
           f"{HOSTILE} -k unreadable", "an unreadable data directory is one line, not a traceback"),
    Mutant("src/cnnlab/data/folder.py", "skipped=scan.skipped, digests=scan.digests)", "skipped=scan.skipped)",
           f"{SCAN} -k copies", "exact copies in different splits are found"),
    Mutant("src/cnnlab/loop/session.py", "        print_fn(describe_duplicates(splits.duplicates))", "        pass",
           f"{HOSTILE} -k copies", "cnnlab train reports exact copies across splits"),
    # ---- pixel formats and the pixel budget
    Mutant("src/cnnlab/data/images.py", "    if image.mode in _SIXTEEN_BIT_MODES:", "    if False:", PIXELS,
           "16-bit images are scaled by 65535, not clipped to 0/255"),
    Mutant("src/cnnlab/data/images.py", '    if image.mode == "F":', "    if False:", PIXELS,
           "float images keep their values"),
    Mutant("src/cnnlab/data/images.py", "or low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:", ":", PIXELS,
           "float images outside [0, 1] are refused, not clipped"),
    Mutant("src/cnnlab/data/images.py", 'bits = 16 if image.format == "PNG" else _tiff_bits(image)', "bits = 16",
           PIXELS, "32-bit integer images are scaled by their own range"),
    Mutant("src/cnnlab/data/images.py", "            if width * height > MAX_PIXELS:", "            if False:",
           f"{PIXELS} {HOSTILE}", "an image over the pixel budget is refused from its header"),
    Mutant("src/cnnlab/data/images.py", "                image.draft(image.mode, (size, size))",
           "                pass", PIXELS, "large JPEGs are decoded at reduced scale"),
    Mutant("src/cnnlab/data/images.py", "    kind = special_file_kind(mode)\n    if kind:",
           "    kind = special_file_kind(mode)\n    if False:", f"{HOSTILE} -k predict",
           "predict on a FIFO is refused without opening it"),
    Mutant("src/cnnlab/data/paths.py", 'return os.fsencode(path).decode("utf-8", "backslashreplace")',
           "return os.fsdecode(path)", f"{HOSTILE} -k UTF", "non-UTF-8 file names print under a strict UTF-8 stream"),
    # ---- sizes beyond memory
    Mutant("src/cnnlab/data/splits.py", "    if one_image:\n", "    if False:\n", f"{HOSTILE} -k memory",
           "an image size whose single image cannot fit is refused before loading"),
    Mutant("src/cnnlab/data/builtin.py", "    if needed:\n", "    if False:\n", f"{HOSTILE} -k memory",
           "an in-memory data set that cannot fit is refused before allocating"),
    # the dense row only: without the check, conv(1000000000,3) would allocate 36 GB before failing
    Mutant("src/cnnlab/spec.py", "    if reason:\n        raise ModelError", "    if False:\n        raise ModelError",
           f"{HOSTILE} -k dense", "a spec whose parameters cannot fit is refused before allocating"),
]
