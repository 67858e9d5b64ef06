import json
import math

import pytest

from conftest import run_cli, tiny_settings, write_jsonl
from titlegen import train as train_module
from titlegen.errors import TitleError
from titlegen.metrics import corpus_scores, example_scores, has_repeated_bigram, lead, readability
from titlegen.runfolder import RunFolder
from titlegen.train import resume_settings


def test_scores_of_one_example_by_hand():
    s = example_scores("我爱北京", "我爱上海北京")
    # ROUGE-1: 4 of 4 predicted characters match, 4 of 6 reference ones: F = 2 * 1 * 2/3 / (1 + 2/3)
    assert s["rouge-1"] == pytest.approx(0.8, abs=1e-7)
    # ROUGE-2: bigrams 我爱 北京 match; P = 2/3, R = 2/5
    assert s["rouge-2"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5), abs=1e-7)
    # ROUGE-L: the longest common subsequence is 我爱北京
    assert s["rouge-l"] == pytest.approx(0.8, abs=1e-7)
    # BLEU: p1 = 1, p2 = 2/3, p3 = 0/2 and p4 = 0/1 smoothed to 0.1/2 and 0.1/1; brevity exp(1 - 6/4)
    assert s["bleu"] == pytest.approx(math.exp(-0.5) * (1 * 2 / 3 * 0.05 * 0.1) ** 0.25, rel=1e-9)


def test_corpus_scores_average_and_lowercase():
    scores = corpus_scores(["我爱北京", "", "ABC"], ["我爱上海北京", "标题", "abc"])
    assert scores["rouge-1"] == pytest.approx(100 * (0.8 + 0 + 1) / 3, abs=1e-5)  # the empty title scores 0
    assert scores["rouge-l"] == pytest.approx(100 * (0.8 + 0 + 1) / 3, abs=1e-5)


def test_lead_takes_the_mean_reference_length():
    titles, k = lead(["一二三四五", "甲乙丙丁戊己"], ["一二", "甲乙丙丁"])
    assert k == 3 and titles == ["一二三", "甲乙丙"]


def test_val_rouge_l_monitor_keeps_the_highest(tmp_path, corpus):
    _, _, config = train_module.train(
        tiny_settings(*corpus, epochs=3, steps_per_epoch=None, monitor="val_rouge_l", val_rouge_samples=4,
                      decoder="incremental"), str(tmp_path / "m"), log=lambda _: None)
    values = [h["val_rouge_l"] for h in config["history"]]
    assert len(values) == 3 and all(0 <= v <= 100 for v in values)
    with open(tmp_path / "m" / "metrics.csv", encoding="utf-8") as f:  # readability of the same dev titles
        header = f.readline().strip().split(",")
    assert header[:9] == ["epoch", "loss", "val_loss", "val_rouge_l", "val_lcs_f", "val_repeat", "val_bigram_repeat",
                          "val_new_double", "val_length"]
    assert all(0 <= h["val_repeat"] <= h["val_bigram_repeat"] <= 100 for h in config["history"])
    assert all(0 <= h["val_lcs_f"] <= 100 for h in config["history"])
    best = max(values)
    assert config["best"]["value"] == best
    assert config["best"]["epoch"] == max(i for i, v in enumerate(values, 1) if v == best)  # ties: the later


def test_patience_stops_early(tmp_path, corpus, monkeypatch):
    losses = iter([5.0, 4.0, 4.5, 4.6, 4.7, 4.8])
    monkeypatch.setattr(train_module, "dev_loss", lambda *args: next(losses))
    _, _, config = train_module.train(tiny_settings(*corpus, epochs=6, patience=2), str(tmp_path / "m"),
                                      log=lambda _: None)
    assert [h["val_loss"] for h in config["history"]] == [5.0, 4.0, 4.5, 4.6]  # 2 epochs after the best
    assert config["best"] == {"epoch": 2, "monitor": "val_loss", "value": 4.0}


def test_time_limit_ends_before_an_epoch_that_would_end_past_it(tmp_path, corpus, monkeypatch):
    """A clock that moves 10 s at each reading: every epoch (training, then the dev pass) takes 20 s.
    TIME_LIMIT 1 min: after 3 epochs 60 s are spent and a 4th would end at 80, so the run stops;
    resumed with 1.5 min it trains a 4th (80 s) and stops before a 5th; resumed as it is, none."""
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: next(clock))
    out, lines = str(tmp_path / "m"), []
    _, _, record = train_module.train(tiny_settings(*corpus, epochs=9, time_limit=1), out, log=lines.append)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3] and record["history"][0]["seconds"] == 10
    assert lines[-1] == "  stopping: another epoch would end past TIME_LIMIT (1 min; 1.0 min trained)"
    state = RunFolder(out).read_state()
    assert (state.seconds, state.last_epoch_seconds, state.epoch) == (60, 20, 4)
    assert state.done == "another epoch would end past TIME_LIMIT (1 min)"
    _, _, record = train_module.train(resume_settings(out, time_limit=1.5), out, resume=True, log=lambda _: None)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert RunFolder(out).read_state().seconds == 80
    _, _, record = train_module.train(resume_settings(out), out, resume=True, log=lambda _: None)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    with pytest.raises(TitleError, match="TIME_LIMIT must be above 0, got 0"):
        train_module.train(tiny_settings(*corpus, time_limit=0), str(tmp_path / "n"), log=lambda _: None)


def test_cli_evaluate(tmp_path, cli_model):
    out, _ = cli_model
    rows = [{"title": "春夏秋", "content": "春夏秋冬山水日月"}, {"title": "风雨", "content": "风雨花草春夏"}]
    data = write_jsonl(tmp_path / "set.jsonl", rows)
    result = run_cli("evaluate", "--model", out, "--data", data, "--out", str(tmp_path / "pred.jsonl"))
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in open(tmp_path / "pred.jsonl", encoding="utf-8")]
    assert [p["reference"] for p in predictions] == ["春夏秋", "风雨"]
    saved = json.load(open(tmp_path / "pred.scores.json", encoding="utf-8"))
    assert saved["scores"]["model"] == pytest.approx(
        corpus_scores([p["prediction"] for p in predictions], ["春夏秋", "风雨"]))
    # LEAD-2 (mean reference length 2.5 rounds to 2): 春夏 and 风雨
    assert saved["scores"]["LEAD-2"] == pytest.approx(corpus_scores(["春夏", "风雨"], ["春夏秋", "风雨"]))
    assert "| LEAD-2 |" in result.stdout and "ROUGE-L" in result.stdout
    contents = [r["content"] for r in rows]
    assert saved["readability"]["model"] == readability([p["prediction"] for p in predictions], contents)
    assert saved["readability"]["references"] == {"repeat": 0.0, "bigram_repeat": 0.0, "new_double": 0.0,
                                                  "length": 2.5}
    assert "| references |  |  |  |  | 0.0 | 0.0 | 0.0 | 2.5 |" in result.stdout

    tsv = tmp_path / "set.tsv"  # the same set in CLGE's layout
    tsv.write_text("".join(f"{r['title']}\t{r['content']}\n" for r in rows), encoding="utf-8")
    result = run_cli("evaluate", "--model", out, "--data", str(tsv), "--out", str(tmp_path / "pred_tsv.jsonl"))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in open(tmp_path / "pred_tsv.jsonl", encoding="utf-8")] == predictions


def test_copy_shares_by_hand():
    from titlegen.metrics import copy_shares
    shares = copy_shares(["天晴", "雨"], ["天气晴朗", "多云"], {"天": 4, "雨": 5})
    assert shares == {"in_article": pytest.approx(100 * 2 / 3), "out_of_vocab": pytest.approx(100 / 3)}


def test_readability_by_hand():
    titles = ["注册制册制一年", "哈哈大笑", "啊啊啊", "北京上海北京", "ab ab", ""]
    # back to back (two or more characters, then the same): 册制册制 and "ab ab"? no: "ab " then "ab"
    # differ; 啊啊啊 holds only one-character repeats. So 1 of 6.
    # a bigram twice: 册制 (1st), 啊啊 (overlapping, 3rd), 北京 (4th), ab (5th): 4 of 6
    articles = ["注册制", "他哈哈大笑", "啊", "北京", "ab", ""]
    # a character twice in a row that its article never has so: 哈哈 stands in its article; 啊啊 does not
    # (the 3rd); no other title doubles a character: 1 of 6
    assert readability(titles, articles) == {"repeat": pytest.approx(100 / 6), "bigram_repeat": pytest.approx(400 / 6),
                                             "new_double": pytest.approx(100 / 6),
                                             "length": pytest.approx((7 + 4 + 3 + 6 + 5 + 0) / 6)}
    assert readability(["哈哈"], ["大笑"])["new_double"] == 100.0
    assert readability(["ab abab"], [""])["repeat"] == 100.0 and not has_repeated_bigram("一二三")
    assert readability([], []) == {"repeat": 0.0, "bigram_repeat": 0.0, "new_double": 0.0, "length": 0.0}
