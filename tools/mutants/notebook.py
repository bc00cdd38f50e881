"""Deliberate bugs in interpret, samples, progress bars, --help and the docs' commands; each must make a test fail
(see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

INTERPRET = "tests/test_interpret.py"

MUTANTS = [
    Mutant("src/cnnlab/interpretation.py",
           "return scores.confusion_matrix(self.labels, self.predicted, len(self.class_names))",
           "return scores.confusion_matrix(self.predicted, self.labels, len(self.class_names))",
           INTERPRET, "the confusion matrix's rows are the true classes"),
    Mutant("src/cnnlab/interpretation.py", 'order = np.argsort(-losses, kind="stable")',
           'order = np.argsort(losses, kind="stable")', INTERPRET, "top_losses are the highest losses, highest first"),
    Mutant("src/cnnlab/interpretation.py", "float(self.probabilities[i, self.predicted[i]])",
           "float(self.probabilities[i, self.labels[i]])", INTERPRET,
           "a top loss's probability is that of the predicted class"),
    Mutant("src/cnnlab/interpretation.py", "        if n >= min_count]", "        if n >= 1]", INTERPRET,
           "most_confused leaves out pairs seen fewer than min_count times"),
    Mutant("src/cnnlab/interpretation.py", "evaluate(run, loaded, data, samples=None)",
           "evaluate(run, loaded, data, samples=100)", INTERPRET, "the whole test split is interpreted, not a sample"),
    Mutant("src/cnnlab/interpretation.py",
           "return confusion_figure(scores.row_normalised(matrix) if normalize else matrix, self.class_names, normalize)",
           "return confusion_figure(matrix, self.class_names, normalize)", INTERPRET,
           "plot_confusion_matrix(normalize=True) divides each row by its total"),
    Mutant("src/cnnlab/interpretation.py", "for axis, item, image in zip(axes, chosen, images):",
           "for axis, item, image in zip(axes, chosen[::-1], images):", INTERPRET,
           "each top-loss image carries its own caption"),
    Mutant("src/cnnlab/progress.py", "    terminal = sys.stderr.isatty()", "    terminal = True", "tests/test_progress.py",
           "off a terminal the iterable comes back as it is: no bar in logs"),
    Mutant("src/cnnlab/progress.py", "    terminal = sys.stderr.isatty()", "    terminal = False", "tests/test_progress.py",
           "on a terminal a bar is drawn"),
    Mutant("src/cnnlab/finetune/features.py",
           'for x in progress(batches, total=-(-len(data) // batch_size), desc="backbone features"):',
           "for x in batches:", "tests/test_progress.py", "the feature pass shows its progress on a terminal"),
    Mutant("src/cnnlab/report/api.py", 'in progress(builders, desc="report")]', "in builders]",
           "tests/report/test_progress_bar.py", "the report's sections show their progress on a terminal"),
    Mutant("src/cnnlab/samples.py", "pictures = {name: ((digits.images[i] * 255 / 16)", "pictures = {name: ((digits.images[i] * 255 / 15)",
           "tests/test_samples.py", "sample digits are sklearn's, scaled from 0..16 to 0..255"),
    Mutant("src/cnnlab/samples.py", "photos.stereo_motorcycle()[0]", "photos.stereo_motorcycle()[1]",
           "tests/test_samples.py", "motorcycle.png is the left image of the stereo pair, the one regions.json boxes"),
    Mutant("src/cnnlab/errors.py", "return self.strerror if self.errno is not None and self.strerror else",
           "return super().__str__() if self.errno is not None and self.strerror else",
           "tests/test_samples.py", "a disk error is one line without OSError's [Errno N] prefix"),
    Mutant("src/cnnlab/cli.py", 'if o.startswith("--") and o != "--help"}', 'if o.startswith("--")}',
           "tests/test_cli_help.py -k unknown_option", "--help is never offered as the option meant"),
    Mutant("src/cnnlab/cli.py", 'help="halve lr after N epochs without progress (default: off)")',
           'help="halve lr after N epochs without progress")', "tests/test_cli_help.py -k default",
           "every option's help says its default"),
    Mutant("src/cnnlab/cli.py", '_option(p, "--device", shown=d["device"], help="auto, cpu or cuda; auto: cuda when '
           'present")', '_option(p, "--device", shown=d["device"], help="auto: cuda when present")',
           "tests/test_cli_help.py -k choices", "every option's help lists the values it takes"),
    Mutant("src/cnnlab/cli.py", '    p.add_argument("--samples", type=int, default=1000,',
           '    p.add_argument("--sample", type=int, default=1000,', "tests/test_docs_commands.py -k report.md",
           "the options in the docs' usage lines are the command's own"),
    Mutant("README.md", "cnnlab train: error: unrecognized arguments: --epohcs 3. Similar: '--epochs', '--nproc', "
           "'--decay'.", "cnnlab train: error: unrecognized arguments: --epohcs 3. Similar: '--epochs'.",
           "tests/test_docs_commands.py -k README", "a documented error line is the one the command prints"),
]
