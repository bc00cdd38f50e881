"""Training with the NumPy engine: the same batches and losses as a torch loop, accuracy, the Trainer's bookkeeping."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from .scratch_reference import digits_28
from sklearn.model_selection import train_test_split

from cnnlab import scratch
from cnnlab.models import create_model


@pytest.fixture(scope="module")
def digits():
    images, labels = digits_28()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    return x_train, y_train, x_test, y_test


def _recipe(net):
    return scratch.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, decay=1e-6)


def test_one_epoch_gives_the_same_batch_losses_as_torch(digits):
    x, y = digits[0], digits[1]
    torch.manual_seed(0)
    torch_net = create_model("seed-cnn", 10, (1, 28, 28))
    net = scratch.build("seed-cnn", 10, (1, 28, 28))
    net.load_state_dict({name: value.numpy() for name, value in torch_net.state_dict().items()})

    torch_opt = torch.optim.SGD(torch_net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda t: 1 / (1 + 1e-6 * t))
    order = np.random.default_rng(0 + 0).permutation(len(x))  # epoch 0 of seed 0
    torch_losses = []
    for first in range(0, len(x), 100):
        rows = order[first:first + 100]
        torch_opt.zero_grad()
        loss = F.cross_entropy(torch_net(torch.tensor(x[rows])), torch.tensor(y[rows]))
        loss.backward()
        torch_opt.step()
        schedule.step()
        torch_losses.append(loss.item())

    losses = []
    trainer = scratch.ScratchTrainer(net, _recipe(net))
    history = trainer.fit(x, y, epochs=1, batch_size=100, shuffle=True, seed=0,
                          on_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    assert len(losses) == len(torch_losses) == -(-len(x) // 100)  # the last partial batch is kept
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-4)
    sizes = np.diff([*range(0, len(x), 100), len(x)])
    assert history[0]["loss"] == pytest.approx(np.dot(losses, sizes) / len(x), rel=1e-12)
    for name, value in torch_net.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[name], value.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_three_epochs_of_the_classic_recipe_learn_digits(digits):
    x_train, y_train, x_test, y_test = digits
    net = scratch.build("seed-cnn", 10, (1, 28, 28), seed=0)
    trainer = scratch.ScratchTrainer(net, _recipe(net))
    history = trainer.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=3, batch_size=100, seed=0)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert history[-1]["loss"] < history[0]["loss"]
    loss, accuracy = trainer.evaluate(x_test, y_test)
    assert accuracy > 0.8 and (loss, accuracy) == pytest.approx((history[-1]["val_loss"], history[-1]["val_accuracy"]))
    steps = 3 * -(-len(x_train) // 100)
    assert history[-1]["lr"] == pytest.approx(0.05 / (1 + 1e-6 * steps), rel=1e-12)
    probabilities = trainer.predict(x_test, batch_size=64)
    assert probabilities.shape == (len(x_test), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == y_test).mean() == pytest.approx(accuracy)


def test_fit_visits_batches_in_the_documented_order_and_stops_when_asked():
    x = np.arange(7, dtype=np.float32).reshape(7, 1, 1, 1) * np.ones((1, 1, 4, 4), dtype=np.float32)
    y = np.arange(7) % 2
    net = scratch.build("flatten-dense(2)", 2, (1, 4, 4))
    trainer = scratch.ScratchTrainer(net, scratch.SGD(net.parameters(), lr=0.01))
    seen = []
    trainer.train_step = lambda xb, yb: (seen.append(xb[:, 0, 0, 0].astype(int).tolist()), (0.0, 0))[1]

    def stop_after_two(epoch, logs):
        trainer.stop_training = epoch == 1

    history = trainer.fit(x, y, epochs=5, batch_size=3, seed=4, on_epoch_end=stop_after_two)
    expected = []
    for epoch in range(2):
        order = np.random.default_rng(4 + epoch).permutation(7).tolist()
        expected += [order[0:3], order[3:6], order[6:7]]
    assert seen == expected and len(history) == 2
    seen.clear()
    trainer.fit(x, y, epochs=1, batch_size=3, shuffle=False)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]


def test_dropout_masks_are_seeded_and_switch_off_in_evaluation():
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    first, second = (scratch.build("mnist-cnn", 10, (1, 28, 28), seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.forward(x, training=True), second.forward(x, training=True))
    assert not np.array_equal(first.forward(x, training=True), first.forward(x, training=False))
    np.testing.assert_array_equal(first.forward(x, training=False), first.forward(x, training=False))


@pytest.mark.parametrize("options, message", [({"lr": 0}, "'lr' parameter of SGD"),
                                              ({"lr": 0.1, "momentum": 1.0}, "'momentum' parameter"),
                                              ({"lr": 0.1, "decay": -1}, "'decay' parameter"),
                                              ({"lr": 0.1, "nesterov": True}, "nesterov")])
def test_sgd_rejects_bad_options_with_a_message_that_says_the_range(options, message):
    net = scratch.build("flatten-dense(2)", 2, (1, 2, 2))
    with pytest.raises(ValueError, match=message):
        scratch.SGD(net.parameters(), **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_accumulate_until_zero_grad_in_the_networks_dtype(dtype):
    net = scratch.build("seed-cnn", 10, (1, 28, 28), dtype=dtype)
    x, labels = np.random.default_rng(0).random((3, 1, 28, 28)), np.array([1, 2, 3])
    logits = net.forward(x, training=True)
    assert logits.dtype == dtype and all(p.value.dtype == dtype for p in net.parameters())
    net.backward(scratch.softmax_cross_entropy(logits, labels)[1])
    once = [p.grad.copy() for p in net.parameters()]
    net.backward(scratch.softmax_cross_entropy(net.forward(x, training=True), labels)[1])
    for param, grad in zip(net.parameters(), once):
        np.testing.assert_allclose(param.grad, 2 * grad, rtol=1e-5, err_msg=param.name)
    net.zero_grad()
    assert all(not p.grad.any() for p in net.parameters())


def test_the_engine_imports_without_torch():
    code = "import sys, cnnlab.scratch, cnnlab.spec; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_and_predict_run_with_dropout_off_as_torch_in_eval_mode():
    spec = "flatten-dense(32)-relu-dropout(0.9)-dense(classes)"
    net = scratch.build(spec, 3, (1, 6, 6), seed=0)
    x = np.random.default_rng(1).random((40, 1, 6, 6), dtype=np.float32)
    y = np.arange(40) % 3
    reference = create_model(spec, 3, (1, 6, 6))
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    with torch.no_grad():
        logits = reference.eval()(torch.from_numpy(x))
    trainer = scratch.ScratchTrainer(net, scratch.SGD(net.parameters(), lr=0.1))
    loss, accuracy = trainer.evaluate(x, y, batch_size=16)
    assert loss == pytest.approx(float(F.cross_entropy(logits, torch.from_numpy(y))), rel=1e-5)
    assert accuracy == pytest.approx(float((logits.argmax(1).numpy() == y).mean()))
    np.testing.assert_allclose(trainer.predict(x, batch_size=16), logits.softmax(1).numpy(), rtol=1e-5, atol=1e-6)
