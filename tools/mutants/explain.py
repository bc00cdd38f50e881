"""Deliberate bugs in explanations; each must make a test fail (see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

MUTANTS = [
    Mutant("src/cnnlab/explain/cam.py", "return upsample(F.relu(combine(step.activation, step.gradient)),",
           "return upsample((combine(step.activation, step.gradient)),",
           "tests/explain/test_references.py", "Grad-CAM keeps only positive evidence (its ReLU)"),
    Mutant("src/cnnlab/explain/hooks.py", "grad.clamp_(min=0)  # in place", "grad  # in place",
           "tests/explain/test_references.py", "guided backprop passes only positive gradients"),
    Mutant("src/cnnlab/explain/base.py", "        model.eval()\n", "        pass\n",
           "tests/explain/test_contract.py", "explanations run the model in eval mode"),
    Mutant("src/cnnlab/explain/registry.py", "            if name not in allowed:",
           "            if False:", "tests/explain", "an option a method does not take is refused"),
]
