"""Early stopping and checkpoints keep the whole model while the Trainer sees only the head."""

import torch
from torch import nn

from cnnlab.finetune.callbacks import FullModelCheckpoint, FullModelEarlyStopping


class FakeTrainer:
    def __init__(self, model):
        self.model, self.stop_training, self.printed = model, False, []

    def print_fn(self, line):
        self.printed.append(line)

    def state_dict(self):
        return {"model": self.model.state_dict(), "epoch": 1}


def test_best_weights_of_a_head_only_phase_restore_into_the_whole_model():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    stopping = FullModelEarlyStopping(model, patience=1)
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


def test_checkpoint_holds_the_whole_model(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    checkpoint = FullModelCheckpoint(tmp_path, model)
    checkpoint.trainer = FakeTrainer(model[1])
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert set(state["model"]) == set(model.state_dict()) and state["epoch"] == 1
    assert (tmp_path / "best.safetensors").is_file()
