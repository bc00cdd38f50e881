"""Deliberate bugs in the run directory's owner, resume and the training driver (see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

RESUME = "tests/train/test_resume.py"
RUNDIR = "tests/run/test_rundir.py"

MUTANTS = [
    Mutant("src/cnnlab/loop/resume.py", "    environment, epochs = {}, config.train.epochs\n",
           "    environment, epochs = {}, 10\n", RESUME, "--resume alone trains to the run's own epoch count"),
    Mutant("src/cnnlab/loop/resume.py", "        elif value != stored[name]:", "        elif False:", RESUME,
           "an option that would change the result is refused on --resume"),
    Mutant("src/cnnlab/run/lock.py", "                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)",
           "                pass", f"{RUNDIR} {RESUME}", "a second writer on the same run directory is refused"),
    Mutant("src/cnnlab/run/rundir.py", "            if write:\n                remove_stale_temporaries(path)",
           "            if write:\n                pass", RUNDIR, "stale temporaries are cleaned on the next open"),
    Mutant("src/cnnlab/run/rundir.py", "image_size=self.config.input_shape[1], seed=options.seed,",
           "image_size=self.config.input_shape[1], seed=0,", RUNDIR, "a run's splits use its own seed"),
    Mutant("src/cnnlab/run/config.py", "    if extra:\n        raise RunDirError", "    if False:\n        raise RunDirError",
           RUNDIR, "an unknown key in config.json is an error"),
    Mutant("src/cnnlab/run/config.py", "        if not isinstance(data, dict):", "        if False:", RUNDIR,
           "a config.json that is not an object is an error"),
    Mutant("src/cnnlab/loop/session.py", "    if state is None:\n        run.start_over()",
           "    if state is None:\n        pass", RESUME, "a run killed before its first checkpoint starts over"),
    Mutant("src/cnnlab/loop/trainer.py", "for i in range(0, n, batch_size)][self.batch:]", "for i in range(0, n, batch_size)]",
           RESUME, "a mid-epoch resume skips the batches already trained"),
    Mutant("src/cnnlab/loop/trainer.py", "        torch.set_rng_state(ranks[self.world.rank] if ranks and len(ranks) == self.world.size",
           "        (ranks[self.world.rank] if ranks and len(ranks) == self.world.size", RESUME,
           "resume restores the dropout generator"),
    Mutant("src/cnnlab/loop/trainer.py", "                self.callbacks.on_interrupt(epoch, batch)\n", "", RESUME,
           "Ctrl-C saves the state after the current batch"),
    Mutant("src/cnnlab/finetune/api.py", "            if state.get(\"phase\") == index:", "            if True:",
           RESUME, "a fine-tuning checkpoint at a phase boundary starts the next phase with a fresh optimiser"),
    Mutant("src/cnnlab/train/scratch_run.py", "            layer.rng.bit_generator.state = rng_state",
           "            pass", RESUME, "the NumPy engine's dropout generators are restored on resume"),
    Mutant("src/cnnlab/loop/callbacks.py", "        return {**super().state_dict(), \"best_weights\": self.best_weights}",
           "        return super().state_dict()", "tests/finetune/test_callbacks.py",
           "early stopping's best weights survive a checkpoint"),
    Mutant("src/cnnlab/run/config.py", "            if name in given and ignored:", "            if False:", RESUME,
           "options that would do nothing together are refused"),
    Mutant("src/cnnlab/run/rundir.py", "        device = resolve_device(device)\n        config = self.config",
           "        device = torch.device(\"cpu\")\n        config = self.config", RUNDIR,
           "commands load the model on the device asked for"),
    Mutant("src/cnnlab/cli.py", "            command = dict(self._child_parsers()).get(getattr(parsed, \"command\", None), self)",
           "            command = self", RESUME, "an unknown option is answered with the command's own options"),
    Mutant("src/cnnlab/models/backbones.py", "                    preset.interpolation.value, f\"torchvision",
           "                    \"bilinear\", f\"torchvision", "tests/finetune/test_backbones.py",
           "torchvision entries read their preprocessing from the weights' metadata"),
]
