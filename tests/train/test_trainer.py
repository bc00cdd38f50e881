import math

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.train import EarlyStopping, ReduceLROnPlateau, TrainConfig, Trainer
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


def test_early_stopping_sets_the_flag_and_restores_best_weights(blobs):
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    trainer = make_trainer(epochs=50, callbacks=[stopper], lr=1e-9, decay=0.0)  # too small to improve
    trainer.fit(blobs, blobs, epochs=50, batch_size=16)
    assert trainer.stop_training
    assert len(trainer.history) < 50


def test_reduce_lr_on_plateau_halves_the_rate(blobs):
    trainer = make_trainer(epochs=1, decay=0.0, callbacks=[ReduceLROnPlateau(patience=1, factor=0.5)])
    callback = trainer.callbacks.callbacks[0]
    callback.on_epoch_end(0, {"val_loss": 1.0})
    callback.on_epoch_end(1, {"val_loss": 2.0})
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert trainer.scheduler.base_lrs == [pytest.approx(0.025)]


def test_bf16_autocast_trains_close_to_fp32(blobs):
    results = {}
    for precision in ("fp32", "bf16"):
        trainer = make_trainer(epochs=3, precision=precision)
        trainer.fit(blobs, epochs=3, batch_size=16)
        results[precision] = trainer.history[-1]["loss"]
    assert results["bf16"] == pytest.approx(results["fp32"], rel=0.1)


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        make_trainer(precision="fp16")


def test_training_leaves_no_hooks_and_restores_mode(blobs):
    trainer = make_trainer(epochs=1)
    trainer.model.eval()
    trainer.evaluate(blobs)
    assert not trainer.model.training
