"""Early stopping keeps the whole model while the Trainer sees only the head."""

import torch
from torch import nn

from cnnlab.train import EarlyStopping


class FakeTrainer:
    def __init__(self, model):
        self.model, self.stop_training, self.printed = model, False, []

    def print_fn(self, line):
        self.printed.append(line)


def test_best_weights_of_a_head_only_phase_restore_into_the_whole_model():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    stopping = EarlyStopping(patience=1, model=model)
    stopping.trainer = FakeTrainer(model[1])  # phase one: the Trainer trains only the head
    stopping.on_epoch_end(0, {"val_loss": 1.0})
    best = {k: v.clone() for k, v in model.state_dict().items()}
    stopping.trainer = FakeTrainer(model)  # phase two: the whole model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    stopping.on_epoch_end(1, {"val_loss": 2.0})
    stopping.on_train_end()
    assert stopping.trainer.stop_training and "Early stopping" in stopping.trainer.printed[0]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())


def test_best_weights_survive_a_checkpoint():
    model = nn.Linear(2, 2)
    stopping = EarlyStopping(patience=1, model=model)
    stopping.trainer = FakeTrainer(model)
    stopping.on_epoch_end(0, {"val_loss": 1.0})
    best = {k: v.clone() for k, v in model.state_dict().items()}
    restored = EarlyStopping(patience=1, model=model)
    restored.load_state_dict(stopping.state_dict())
    restored.trainer = FakeTrainer(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    restored.on_epoch_end(1, {"val_loss": 2.0})
    restored.on_train_end()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
