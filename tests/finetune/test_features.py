"""The feature cache: features computed once give the head exactly what the whole network would."""

import pytest
import torch
from torch.nn import functional as F

from cnnlab.data.datasets import ArrayDataset
from cnnlab.data.preprocess import Preprocess
from cnnlab.finetune.features import FeatureCache, extract_features, headless
from cnnlab.finetune.freeze import apply_freeze, frozen_in_eval, parse_freeze
from cnnlab.models.backbones import get_backbone


@pytest.fixture(params=["efficientnet_lite0", "resnet18", "timm:test_convnext"])
def frozen_backbone(request, convnext_weights, resnet18_weights):
    entry = get_backbone(request.param)
    torch.manual_seed(0)
    weights = {"resnet18": str(resnet18_weights), "timm:test_convnext": str(convnext_weights)}.get(request.param)
    model = entry.create(weights, num_classes=3)
    apply_freeze(model, entry.classifier, parse_freeze("backbone"))
    return model, entry


def test_cached_features_give_the_same_head_gradients(frozen_backbone):
    model, entry = frozen_backbone
    preprocess = Preprocess(entry.mean, entry.std)
    generator = torch.Generator().manual_seed(1)
    data = ArrayDataset(torch.rand(6, 3, 32, 32, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2]))
    head = model.get_submodule(entry.classifier)

    model.train()  # as the Trainer leaves it; frozen_in_eval keeps the frozen backbone in eval mode
    with frozen_in_eval(model):
        uncached_loss = F.cross_entropy(model(preprocess(data.x)), data.y)
    uncached_loss.backward()
    uncached = [p.grad.clone() for p in head.parameters()]
    head.zero_grad()

    features = extract_features(model, entry.classifier, data, preprocess, batch_size=4)
    assert features.x.shape == (6, head.in_features) and torch.equal(features.y, data.y)
    cached_loss = F.cross_entropy(head(features.x), features.y)
    cached_loss.backward()
    torch.testing.assert_close(cached_loss, uncached_loss, rtol=1e-5, atol=1e-6)
    for cached, expected in zip((p.grad for p in head.parameters()), uncached):
        torch.testing.assert_close(cached, expected, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert model.training, "extract_features restores the model's mode"


def test_headless_restores_the_head_even_on_error(frozen_backbone):
    model, entry = frozen_backbone
    head = model.get_submodule(entry.classifier)
    with pytest.raises(RuntimeError):
        with headless(model, entry.classifier):
            raise RuntimeError("boom")
    assert model.get_submodule(entry.classifier) is head


def test_file_data_is_extracted_through_a_loader(image_folder):
    from cnnlab.data import load_data

    entry = get_backbone("efficientnet_lite0")
    model = entry.create(num_classes=3)
    splits = load_data(f"folder:{image_folder}", image_size=32, channels=3)
    cache = FeatureCache(model, entry.classifier, Preprocess(entry.mean, entry.std), batch_size=4)
    features = cache.get("train", splits.train)
    assert features.x.shape == (len(splits.train), 1280) and torch.equal(features.y, splits.train.targets)
    assert cache.get("train", splits.train) is features and cache.get("val", None) is None
    in_memory = ArrayDataset(splits.train.load(), splits.train.targets)
    expected = extract_features(model, entry.classifier, in_memory, Preprocess(entry.mean, entry.std))
    torch.testing.assert_close(features.x, expected.x, rtol=1e-4, atol=1e-5)


def test_a_head_trains_on_features_in_the_cuda_layout():
    from cnnlab.loop.trainer import Trainer

    head = torch.nn.Linear(8, 2)
    trainer = Trainer(head, torch.optim.SGD(head.parameters(), lr=0.1), verbose=False)
    trainer.channels_last = True  # as on CUDA: image batches go channels_last, feature vectors must pass as they are
    features = ArrayDataset(torch.rand(10, 8), torch.tensor([0, 1] * 5))
    assert len(trainer.fit(features, features, epochs=1, batch_size=4)) == 1


def test_features_are_extracted_in_eval_mode_whatever_mode_the_model_was_in():
    from collections import OrderedDict

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = torch.nn.Sequential(OrderedDict(body=body, head=torch.nn.Linear(4, 2)))
    batch_norm = body[1]
    batch_norm.running_mean.uniform_(-1, 1)
    batch_norm.running_var.uniform_(0.5, 2)
    statistics = {k: v.clone() for k, v in batch_norm.state_dict().items()}
    data = ArrayDataset(torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 3, torch.zeros(10))
    with torch.no_grad():
        expected = body.eval()(data.x)
    model.train()  # BatchNorm in training mode would normalise by each batch and update its running statistics
    features = extract_features(model, "head", data, Preprocess(), batch_size=4)
    torch.testing.assert_close(features.x, expected)
    assert all(torch.equal(v, statistics[k]) for k, v in batch_norm.state_dict().items())
    assert model.training and batch_norm.training
