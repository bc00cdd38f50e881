import json

import pytest
import torch

from cnnlab.errors import RunDirError
from cnnlab.train.rundir import atomic_write, load_model, load_run, write_json


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})

    def explode(path):
        open(path, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_run_directory_errors_say_what_is_missing(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunDirError, match="no config.json"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        load_run(tmp_path)
    write_json(tmp_path / "config.json", {"model": "seed-cnn", "num_classes": 10, "class_names": list("0123456789"),
                                          "input_shape": [1, 28, 28]})
    with pytest.raises(RunDirError, match="no model.safetensors"):
        load_run(tmp_path)


def test_pretrained_efficientnet_lite0_knows_the_cat():
    from skimage import data

    loaded = load_model("pretrained:efficientnet_lite0")
    assert loaded.input_shape == (3, 224, 224) and len(loaded.class_names) == 1000
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float() / 255
    probabilities = loaded.predict(loaded.prepare(image)[None])[0]
    assert loaded.class_names[int(probabilities.argmax())] == "Egyptian cat"
    assert probabilities.max() == pytest.approx(0.77, abs=0.02)
