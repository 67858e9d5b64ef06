import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, on_one_and_two_replicas, tiny_settings
from titlegen.data import TitleError
from titlegen.trained import load_trained
from titlegen.train import train

def test_two_replica_mirrored_strategy_gives_the_single_device_loss():
    out = on_one_and_two_replicas("from titlegen.devices import make_train_step",
                                  "make_train_step(model, optimizer, strategy)", "step(batch)")
    assert out["one"]["replicas"] == 1 and out["two"]["replicas"] == 2
    # the loss of the first batch, and after one Adam step on it the second
    np.testing.assert_allclose(out["two"]["losses"], out["one"]["losses"], rtol=1e-6)
    assert out["one"]["losses"][1] < out["one"]["losses"][0]
    for a, b in zip(out["one"]["weights"], out["two"]["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)


def test_mixed_precision_trains_in_float16_with_float32_probabilities(tmp_path, corpus):
    runs = {}
    for mixed in (False, True):
        model, _, config = train(tiny_settings(*corpus, mixed_precision=mixed, steps_per_epoch=None, epochs=2),
                                 str(tmp_path / f"m{mixed}"), log=lambda _: None)
        runs[mixed] = [h["loss"] for h in config["history"]]
        assert model.get_layer("decoder_1").compute_dtype == ("float16" if mixed else "float32")
        assert model.get_layer("probs").compute_dtype == "float32"
        assert model.get_layer("embedding").variable_dtype == "float32"  # float32 master weights
    assert keras.mixed_precision.global_policy().name == "float32"  # left as it was
    assert all(np.isfinite(runs[True])) and runs[True][1] < runs[True][0]
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-2)  # float16 rounding, not another model
    model, _, _ = load_trained(str(tmp_path / "mTrue"))  # the weights reload as a float32 model
    assert model.get_layer("decoder_1").compute_dtype == "float32"


def test_tensorboard_and_metrics_files(tmp_path, corpus):
    out = str(tmp_path / "m")
    train(tiny_settings(*corpus, tensorboard=True, epochs=2), out, log=lambda _: None)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(out, "tensorboard")))
    with open(os.path.join(out, "metrics.csv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    assert header == "epoch,loss,val_loss,seconds,articles_per_s" and [r.split(",")[0] for r in rows] == ["1", "2"]


def test_unknown_strategy_is_an_error():
    with pytest.raises(TitleError, match="STRATEGY must be one of auto, mirrored, multiworker, got 'horovod'"):
        tiny_settings("t", "d", strategy="horovod")


MULTIWORKER = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import tiny_settings
from titlegen.train import train
model, vocab, config = train(tiny_settings(*sys.argv[1:3], strategy="multiworker", epochs=2), sys.argv[3],
                             log=lambda _: None)
print(json.dumps([h["loss"] for h in config["history"]]))
"""


@pytest.mark.slow
def test_multiworker_strategy_trains_as_a_single_worker(tmp_path, corpus):
    """Without TF_CONFIG, MultiWorkerMirroredStrategy is one worker: the run is the one-device run."""
    _, _, config = train(tiny_settings(*corpus, epochs=2), str(tmp_path / "one"), log=lambda _: None)
    script = MULTIWORKER.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    result = subprocess.run([sys.executable, "-c", script, *corpus, str(tmp_path / "multi")], capture_output=True,
                            text=True, timeout=300,
                            env={**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(json.loads(result.stdout.splitlines()[-1]), [h["loss"] for h in config["history"]],
                               rtol=1e-6)
    assert os.path.exists(tmp_path / "multi" / "model.weights.h5")  # the only worker is the chief: it writes
