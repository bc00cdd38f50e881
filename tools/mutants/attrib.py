"""Deliberate bugs in integrated gradients, input x gradient, the SmoothGrad family and RISE (see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

REFERENCES = "tests/explain/test_attribution_references.py"
IG = "src/cnnlab/explain/methods/integrated_gradients.py"
SMOOTH = "src/cnnlab/explain/methods/smoothgrad.py"
RISE = "src/cnnlab/explain/methods/rise.py"
CHUNKS = "src/cnnlab/explain/chunks.py"

MUTANTS = [
    Mutant(IG, "return total * (x - start)", "return total * x", REFERENCES,
           "integrated gradients multiply by the path's length, x - baseline"),
    Mutant(IG, "total.index_add_(0, image, gradient * weights[step].view(-1, 1, 1, 1))",
           "total.index_add_(0, image, gradient / len(weights))", REFERENCES,
           "Gauss-Legendre steps carry their quadrature weights"),
    Mutant(IG, "return torch.tensor(0.5 * (1 + nodes)), torch.tensor(0.5 * weights)",
           "return torch.tensor(0.5 * (1 + nodes)), torch.tensor(weights)", REFERENCES,
           "Gauss-Legendre weights are rescaled from [-1, 1] to [0, 1]"),
    Mutant(IG, "return torch.tensor(0.5 * (1 + nodes)), torch.tensor(0.5 * weights)",
           "return torch.tensor(0.5 * nodes), torch.tensor(0.5 * weights)", REFERENCES,
           "Gauss-Legendre nodes are moved from [-1, 1] to [0, 1]"),
    Mutant(IG, '"riemann_left": torch.linspace(0, 1 - 1 / steps, steps)',
           '"riemann_left": torch.linspace(1 / steps, 1, steps)', REFERENCES, "each Riemann rule has its own nodes"),
    Mutant(IG, "weights[[0, -1]] /= 2", "weights[[0, -1]] /= 1", REFERENCES, "the trapezoid rule halves its end weights"),
    Mutant(IG, "return x.mean(dim=(2, 3), keepdim=True).expand_as(x)", "return torch.zeros_like(x)", REFERENCES,
           "the 'mean' baseline is each image's mean colour"),
    Mutant(IG, "generator=torch.Generator().manual_seed(seed))", "generator=torch.Generator().manual_seed(0))",
           REFERENCES, "the uniform baseline follows its seed"),
    Mutant(IG, ".sum(dim=1)\n", ".abs().sum(dim=1)\n", REFERENCES, "the map is the signed sum over channels"),
    Mutant("src/cnnlab/explain/methods/input_x_gradient.py", "return (x * input_gradient(model, x, target)).sum(dim=1)",
           "return input_gradient(model, x, target).sum(dim=1)", REFERENCES, "input x gradient multiplies by the input"),
    Mutant(SMOOTH, "noisy = x[image] + spread[image].view(-1, 1, 1, 1) * standard[sample]",
           "noisy = x[image] + spread[image].view(-1, 1, 1, 1) * standard[0]", REFERENCES,
           "every sample has its own noise"),
    Mutant(SMOOTH, "spread = noise * (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1))",
           "spread = noise * torch.ones(len(x), device=x.device)", REFERENCES,
           "the noise scales with each image's range, as in the paper"),
    Mutant(SMOOTH, "generator = torch.Generator().manual_seed(seed)", "generator = torch.Generator().manual_seed(0)",
           REFERENCES, "the noise follows its seed"),
    Mutant(SMOOTH, "return (mean_square - mean * mean).clamp(min=0)", "return mean_square.clamp(min=0)", REFERENCES,
           "VarGrad is the variance, not the mean square"),
    Mutant(SMOOTH, '"saliency": Base(lambda model, x, targets: input_gradient(model, x, targets).abs(), _max)',
           '"saliency": Base(lambda model, x, targets: input_gradient(model, x, targets), _max)', REFERENCES,
           "SmoothGrad of saliency averages |gradient|, as captum's Saliency (abs=True)"),
    Mutant(SMOOTH, '"input-x-gradient": Base(lambda model, x, targets: x * input_gradient(model, x, targets), _sum)',
           '"input-x-gradient": Base(lambda model, x, targets: x * input_gradient(model, x, targets), _max)',
           REFERENCES, "input x gradient sums its channels"),
    Mutant(SMOOTH, 'input_gradient(model, x, targets, "guided").abs()', "input_gradient(model, x, targets).abs()",
           REFERENCES, "the guided base passes gradients through guided ReLUs"),
    Mutant(RISE, "return total / (len(grids) * p)", "return total / len(grids)", REFERENCES,
           "RISE divides by the expected mask value p"),
    Mutant(RISE, "probability = model(x[image] * made[:, None]).float().softmax(dim=-1)",
           "probability = model(x[image] * made[:, None]).float()", REFERENCES,
           "RISE weights masks by the target's probability, not its logit"),
    Mutant(RISE, "grids = (torch.rand(masks, cells, cells, generator=generator) < p).float()",
           "grids = (torch.rand(masks, cells, cells, generator=generator) < 0.5).float()", REFERENCES,
           "cells are kept with probability p"),
    Mutant(RISE, 'mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)',
           'mode="nearest")[:, 0].clamp(0, 1)', REFERENCES, "masks are upsampled bilinearly (smooth edges)"),
    Mutant(RISE, "return torch.stack([s[r:r + size[0], c:c + size[1]] for s, (r, c) in zip(smooth, shifts.tolist())])",
           "return smooth[:, :size[0], :size[1]]", REFERENCES, "each mask is cropped at its own random shift"),
    Mutant(CHUNKS, "fit = int(budget_mb * 2**20 // max(1.0, HEADROOM * cost))",
           "fit = int(budget_mb * 2**20 // max(1.0, cost))", REFERENCES,
           "a pair is charged HEADROOM x its saved bytes"),
    Mutant(CHUNKS, "size = max(1, min(fit, max(MIN_PAIRS_PER_PASS", "size = max(1, min(fit * 4, max(MIN_PAIRS_PER_PASS",
           REFERENCES, "a pass never holds more pairs than the budget allows"),
    Mutant(CHUNKS, "logits = torch.cat([model(x[start:start + size]) for start in range(0, len(x), size)])",
           "logits = model(x)", REFERENCES, "predicted targets come from passes within the budget"),
    Mutant(CHUNKS, "yield pair % count, pair // count", "yield pair % count, pair % repeats", REFERENCES,
           "each pair's repeat is its own (repeat-major order)"),
    Mutant(CHUNKS, "logits = model(image.detach().clone().requires_grad_())",
           "logits = model(image.detach().requires_grad_())", REFERENCES,
           "a slice of the batch is not charged for the whole batch's storage"),
    Mutant(CHUNKS, "return targets_for(torch.empty(len(x), classes, device=x.device), target), size",
           "return targets_for(torch.empty(len(x), classes, device=x.device), None), size", REFERENCES,
           "the target given is the one explained"),
    Mutant("src/cnnlab/explain/registry.py", "        if not _loaded:", "        if not _METHODS:", REFERENCES,
           "the registry holds every method module's methods, also when some were imported first"),
]
