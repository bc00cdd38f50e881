"""Deliberate bugs in the default layer, zero-map warnings, scales, options, stems and `explain`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

TESTS = "tests/explain/test_layers.py"
MUTANTS = [
    Mutant("src/cnnlab/explain/layers.py", "    start = convolutions[-1]\n", "    start = convolutions[0]\n",
           TESTS, "the default follows the last convolution, not the first"),
    Mutant("src/cnnlab/explain/layers.py", "        current = event.output\n        if event.kind",
           "        if event.kind", TESTS, "the map is followed through the activation after the convolution"),
    Mutant("src/cnnlab/explain/layers.py", 'if not _spatial(event.output) or "pool" in event.what.lower():',
           "if not _spatial(event.output):", TESTS, "the default stops before pooling"),
    Mutant("src/cnnlab/explain/layers.py", '        return None  # a question about the map',
           '        return False  # a question about the map', TESTS,
           "a size query on the map (x.dim()) does not end it"),
    Mutant("src/cnnlab/explain/layers.py", "            named = source = event.name  # a container",
           "            named = event.name  # a container", TESTS,
           "a functional activation is named after the module whose output feeds it"),
    Mutant("src/cnnlab/explain/layers.py", "        if name == self.target.activation:",
           "        if name != self.target.activation:", TESTS,
           "SOURCE+ACTIVATION captures the output of that activation"),
    Mutant("src/cnnlab/explain/layers.py", "    for size in (224, 64, 32, 28, 16):",
           "    for size in (224, 64):", TESTS, "without images a probe size the model takes is found"),
    Mutant("src/cnnlab/explain/cam.py",
           "    name, module = find_layer(model, layer, x)\n    with borrowed(model), Hooks() as hooks:\n"
           "        capture = hooks.capture(module)\n",
           "    name, module = find_layer(model, layer or 'conv2', x)\n    with borrowed(model), Hooks() as hooks:\n"
           "        capture = hooks.capture(module)\n", TESTS, "Grad-CAM uses the default layer when none is named"),
    Mutant("src/cnnlab/explain/api.py", "                    if not np.any(full):", "                    if False:",
           TESTS, "a zero map is reported"),
    Mutant("src/cnnlab/explain/render.py", '    if not np.any(array):\n        return "map is zero',
           '    if False:\n        return "map is zero', TESTS, "a zero map's caption says so"),
    Mutant("src/cnnlab/explain/render.py", "    colorbar(figure, right, limits, units)\n", "",
           TESTS, "an explanation figure has a colour bar in the method's units"),
    Mutant("src/cnnlab/explain/render.py", "        limits.setdefault(method, color_limits(list(maps),",
           "        limits.setdefault(method, color_limits(maps[0],", TESTS,
           "a contact sheet column shares one scale over all its maps"),
    Mutant("src/cnnlab/explain/render.py", 'limits = (0.0, 1.0) if scale == "fixed" else color_limits(probability)',
           'limits = color_limits(probability)', TESTS, "occlusion is drawn on [0, 1] by default"),
    Mutant("src/cnnlab/explain/api.py",
           "            split.setdefault(method.name, {})[name] = _typed(method, name, value)", "            pass",
           TESTS, "--option reaches the method"),
    Mutant("src/cnnlab/explain/api.py", "            methods[0].check({name: value})  # raises",
           "            continue  # raises", TESTS, "an option no method takes is refused"),
    Mutant("src/cnnlab/explain/api.py", "                stem = out / f\"{stems[index]}.{method.name}\"",
           "                stem = out / f\"{Path(images[index]).stem}.{method.name}\"", TESTS,
           "images with the same name keep their own outputs"),
    Mutant("src/cnnlab/explain/api.py", "            array = array.transpose(2, 0, 1)  # HWC",
           "            array = array.transpose(2, 1, 0)  # HWC", TESTS, "HWC arrays are read as HWC"),
    Mutant("src/cnnlab/explain/api.py", "images.astype(np.float32) / 255 if images.dtype == np.uint8",
           "images.astype(np.float32) / 1 if images.dtype == np.uint8", TESTS, "uint8 arrays are scaled to [0, 1]"),
    Mutant("src/cnnlab/explain/api.py",
           "        inputs = torch.stack([loaded.prepare(image) for image in originals]).to(loaded.device)",
           "        inputs = torch.stack(originals).to(loaded.device)", TESTS,
           "a run's images are prepared as its own are"),
    Mutant("src/cnnlab/progress.py", "    if iterable is not None and not terminal:", "    if False:", TESTS,
           "progress stays quiet off a terminal"),
]
