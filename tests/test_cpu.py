"""oneDNN: on by default wherever TensorFlow would leave it off, the user's setting wins, and the
losses and titles it gives agree with those of TensorFlow's own kernels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

ONEDNN_ON = "oneDNN custom operations are on"  # what TensorFlow logs at start-up when they are

TRAIN_AND_TITLE = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import make_corpus, tiny_settings, write_jsonl
from titlegen.decoders import Titler
from titlegen.trained import load_trained
from titlegen.train import train
train_path = write_jsonl(sys.argv[1] + "/train.jsonl", make_corpus(96, seed=1))
dev_path = write_jsonl(sys.argv[1] + "/dev.jsonl", make_corpus(8, seed=2))
settings = tiny_settings(train_path, dev_path, epochs=8, steps_per_epoch=None, batch_size=8, char_size=16,
                         hidden_size=32, decoder="incremental")
model, vocab, config = train(settings, sys.argv[1] + "/model", log=lambda _: None)
model, vocab, stored = load_trained(sys.argv[1] + "/model")
titles = Titler(model, vocab, settings.decode)([r["content"] for r in make_corpus(12, seed=5)])
print(json.dumps({{"losses": [h["loss"] for h in config["history"]], "val": [h["val_loss"] for h in config["history"]],
                  "titles": titles}}))
"""


def python(code, env_changes, *args):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


def test_onednn_is_on_by_default_and_the_users_setting_wins():
    code = f"import sys; sys.path.insert(0, {ROOT!r}); import titlegen, tensorflow"
    default = python(code, {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert default.returncode == 0 and ONEDNN_ON in default.stderr, default.stderr[-2000:]
    off = python(code, {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert off.returncode == 0 and ONEDNN_ON not in off.stderr, off.stderr[-2000:]


@pytest.mark.slow
def test_onednn_and_tensorflows_own_kernels_train_and_title_alike(tmp_path):
    runs = {}
    for flag in ("0", "1"):
        folder = tmp_path / f"onednn_{flag}"
        folder.mkdir()
        result = python(TRAIN_AND_TITLE.format(root=ROOT, tests=os.path.join(ROOT, "tests")),
                        {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": flag}, str(folder))
        assert result.returncode == 0, result.stderr[-3000:]
        runs[flag] = json.loads(result.stdout.splitlines()[-1])
    off, on = runs["0"], runs["1"]
    assert off["losses"][-1] < off["losses"][0]  # it learned something, so the titles mean something
    # 96 Adam steps: the kernels sum in other orders, float32 rounding apart, no more
    np.testing.assert_allclose(on["losses"], off["losses"], rtol=1e-4)
    np.testing.assert_allclose(on["val"], off["val"], rtol=1e-4)
    assert on["titles"] == off["titles"]
    assert len(set(on["titles"])) > 1
