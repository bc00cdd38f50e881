"""Model-randomisation sanity check (Adebayo et al., 2018) on EfficientNet-Lite0 with its ImageNet weights.

A map that explains the model must change when the model's top layers are
re-initialised; an edge detector would not. Rank correlation between the
trained and randomised maps must drop well below that of two runs on the
trained model (which are identical). Measured: Grad-CAM 0.08, saliency 0.27
with the classifier, head and last three blocks re-initialised; guided
backprop 1.00 with only the classifier re-initialised, 0.81 with the rest.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage import data

from cnnlab import explain


def test_randomising_the_top_layers_changes_gradcam_and_saliency(pretrained_efficientnet):
    loaded = pretrained_efficientnet
    photo = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1).float() / 255
    x = loaded.prepare(photo)[None]
    assert loaded.class_names[int(loaded.predict(x).argmax())] == "Egyptian cat"
    network = loaded.network
    target = 285  # Egyptian cat, explained in every model
    top = randomised_copy(network, lambda model: [model.classifier, model.conv_head, model.bn2,
                                                  *model.blocks[-3:].modules()])
    for method in (explain.gradcam, explain.saliency):
        trained_map = method(network, x, target)[0].flatten().numpy()
        assert spearmanr(trained_map, method(network, x, target)[0].flatten().numpy())[0] > 0.999
        assert spearmanr(trained_map, method(top, x, target)[0].flatten().numpy())[0] < 0.5, method.__name__
    # Adebayo et al.'s finding for guided backprop, reproduced: it barely notices a randomised classifier.
    head = randomised_copy(network, lambda model: [model.classifier])
    trained_map = explain.guided(network, x, target)[0].flatten().numpy()
    assert spearmanr(trained_map, explain.guided(head, x, target)[0].flatten().numpy())[0] > 0.9


def randomised_copy(network: torch.nn.Module, choose) -> torch.nn.Module:
    """A copy of `network` whose modules `choose(copy.model)` are re-initialised."""
    twin = copy.deepcopy(network)
    torch.manual_seed(0)
    for module in choose(twin.model):
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return twin
