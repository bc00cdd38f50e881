"""Deliberate bugs in multi-process training (see tools/mutate.py); each run spawns workers, so these are slow."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

TESTS = "tests/loop/test_distributed.py"

MUTANTS = [
    Mutant("src/cnnlab/loop/trainer.py", "loss = summed * (self.world.size / global_size)",
           "loss = summed / global_size", f"{TESTS} -k same_global_batch",
           "each rank's summed loss is scaled so that DDP's mean is the global batch's mean"),
    Mutant("src/cnnlab/loop/distributed.py", "return np.array_split(indices, self.size)[self.rank] if self.active else indices",
           "return indices", f"{TESTS} -k same_global_batch", "each rank trains on its own share"),
    Mutant("src/cnnlab/loop/distributed.py", "        dist.all_reduce(tensor)\n", "", f"{TESTS} -k same_global_batch",
           "losses and accuracies are summed over all ranks"),
    Mutant("src/cnnlab/loop/trainer.py", "for logits, y in self._logits(data, batch_size, self.world.shard(np.arange(len(data)))):",
           "for logits, y in self._logits(data, batch_size, np.arange(len(data))):", f"{TESTS} -k same_global_batch",
           "validation and test are split over the ranks, not counted once per rank"),
    Mutant("src/cnnlab/train/api.py", "    if world.restarted and has_config(out):\n        return resume_run(",
           "    if False:\n        return resume_run(", f"{TESTS} -k killed",
           "a restarted worker group resumes the run from its checkpoint"),
    Mutant("src/cnnlab/train/api.py", "print_fn, quiet, progress = (print_fn, quiet, progress) if world.is_main else (_silent, True, False)\n    splits",
           "print_fn, quiet, progress = print_fn, quiet, progress\n    splits", f"{TESTS} -k same_global_batch",
           "only rank 0 prints"),
    Mutant("src/cnnlab/loop/distributed.py", "        json.dump({\"message\": str(error), \"timestamp\": int(time.time())}, handle)",
           "        pass", f"{TESTS} -k failing_rank", "a failing rank's one-line error reaches the launcher"),
    Mutant("src/cnnlab/finetune/features.py", "                features = ArrayDataset(torch.cat(parts),",
           "                features = ArrayDataset(torch.cat(parts[:1] * len(parts)),", f"{TESTS} -k feature",
           "the feature cache gathers every rank's share"),
]
