import math

import pytest
import torch
from torch.nn import functional as F

from cnnlab.data import ArrayDataset
from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.train import Callback, EarlyStopping, ReduceLROnPlateau, TrainConfig, Trainer
from cnnlab.loop.optim import build_optimizer, build_scheduler

SPEC = "conv(4,3)-relu-maxpool(2)-flatten-dense(16)-relu-dropout(0.2)-dense(classes)"


def make_trainer(epochs=4, seed=0, callbacks=(), lines=None, **options):
    torch.manual_seed(seed)
    config = TrainConfig(model=SPEC, epochs=epochs, batch_size=16, seed=seed, **options)
    model = create_model(SPEC, 3, (1, 12, 12))
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=5)
    return Trainer(model, optimizer, scheduler, seed=seed, callbacks=callbacks, precision=config.precision,
                   print_fn=(lines.append if lines is not None else lambda _: None), progress=False)


def test_fit_learns_and_reports_each_epoch(blobs):
    lines = []
    trainer = make_trainer(epochs=6, lines=lines)
    history = trainer.fit(blobs, blobs, epochs=6, batch_size=16)
    assert len(history) == 6 and len(lines) == 6
    assert history[-1]["loss"] < history[0]["loss"]
    assert trainer.evaluate(blobs)["accuracy"] > 0.9
    assert lines[0].startswith("Epoch 1/6  loss ")
    assert "val_accuracy" in lines[-1]
    probabilities = trainer.predict(blobs.x)
    assert probabilities.shape == (90, 3)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(90))


def test_same_seed_same_run_other_seed_other_run(blobs):
    runs = []
    for seed in (0, 0, 1):
        trainer = make_trainer(epochs=2, seed=seed)
        trainer.fit(blobs, epochs=2, batch_size=16)
        runs.append(trainer.model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_resumed_run_equals_uninterrupted_run(blobs):
    whole = make_trainer(epochs=4)
    whole.fit(blobs, blobs, epochs=4, batch_size=16)
    first = make_trainer(epochs=4)
    first.fit(blobs, blobs, epochs=2, batch_size=16)
    state = first.state_dict()
    torch.manual_seed(123)  # whatever happened in between must not matter
    second = make_trainer(epochs=4, seed=0)
    second.load_state_dict(state)
    second.fit(blobs, blobs, epochs=4, batch_size=16)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert [round(h["loss"], 7) for h in whole.history] == [round(h["loss"], 7) for h in second.history]


def test_time_based_decay_matches_keras_formula(blobs):
    trainer = make_trainer(epochs=2, decay=0.01, lr=0.1)
    trainer.fit(blobs, epochs=2, batch_size=16)
    iterations = 2 * math.ceil(90 / 16)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + 0.01 * iterations))
    group = trainer.optimizer.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9


class Snapshots(Callback):
    """The model's weights at the end of every epoch, as the Trainer left them then."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append({k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()})


def test_early_stopping_sets_the_flag_and_restores_the_best_epochs_weights(blobs):
    # Validation labels are shifted by one class: the better the model fits training, the worse val_loss gets.
    misleading = ArrayDataset(blobs.x, (blobs.y + 1) % 3)
    snapshots = Snapshots()
    trainer = make_trainer(epochs=30, callbacks=[EarlyStopping(monitor="val_loss", patience=2), snapshots])
    trainer.fit(blobs, misleading, epochs=30, batch_size=16)
    assert trainer.stop_training and len(trainer.history) < 30
    losses = [h["val_loss"] for h in trainer.history]
    best = losses.index(min(losses))
    assert best < len(losses) - 1
    restored = trainer.model.state_dict()
    assert all(torch.equal(restored[k], snapshots.weights[best][k]) for k in restored)
    assert not all(torch.equal(restored[k], snapshots.weights[-1][k]) for k in restored)


def test_reduce_lr_on_plateau_halves_the_rate(blobs):
    trainer = make_trainer(epochs=1, decay=0.0, callbacks=[ReduceLROnPlateau(patience=1, factor=0.5)])
    callback = trainer.callbacks.callbacks[0]
    callback.on_epoch_end(0, {"val_loss": 1.0})
    callback.on_epoch_end(1, {"val_loss": 2.0})
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert trainer.scheduler.base_lrs == [pytest.approx(0.025)]


class ConvDtypes(Callback):
    """The dtypes of what comes into and out of every convolution while the Trainer runs."""

    def __init__(self):
        self.seen, self.handles = set(), []

    def on_train_begin(self):
        for module in self.trainer.model.modules():
            if isinstance(module, torch.nn.Conv2d):
                self.handles.append(module.register_forward_hook(self.record))

    def record(self, module, inputs, output):
        self.seen.add((inputs[0].dtype, output.dtype))

    def on_train_end(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_precision_asked_for_reaches_the_convolutions(tmp_path, precision, dtype):
    from cnnlab.train import train

    probe = ConvDtypes()
    train("digits", "conv(4,3)-relu-conv(4,3)-flatten-dense(classes)", out=tmp_path / "run", epochs=1,
          image_size=8, precision=precision, device="cpu", quiet=True, print_fn=lambda _: None, callbacks=[probe])
    outputs = {output for _, output in probe.seen}
    assert outputs == {dtype}  # the second convolution also takes its input in that dtype
    assert (dtype, dtype) in probe.seen


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        make_trainer(precision="fp16")


def test_evaluate_and_predict_run_with_dropout_off(blobs):
    torch.manual_seed(0)
    model = create_model("flatten-dense(32)-relu-dropout(0.9)-dense(classes)", 3, (1, 12, 12))
    trainer = Trainer(model, None, progress=False, verbose=False)
    model.train()
    with torch.no_grad():
        reference = model.eval()(blobs.x)
    model.train()
    metrics = trainer.evaluate(blobs, batch_size=32)
    assert metrics["loss"] == pytest.approx(float(F.cross_entropy(reference, blobs.y)), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(float((reference.argmax(1) == blobs.y).float().mean()))
    torch.testing.assert_close(trainer.predict(blobs.x), reference.softmax(dim=1))
    assert model.training  # and the mode it was in comes back


def test_training_leaves_no_hooks_and_restores_mode(blobs):
    trainer = make_trainer(epochs=1)
    trainer.model.eval()
    trainer.evaluate(blobs)
    assert not trainer.model.training
