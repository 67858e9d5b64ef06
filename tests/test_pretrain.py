"""Pretraining on the articles alone (PRETRAIN_EPOCHS): the pseudo pairs worked out by hand, and a run
that pretrains, then trains on titles, killed with -9 in either stage and resumed as the run never
killed."""
import csv
import os
import signal

import numpy as np
import pytest

from conftest import TINY_CONFIG, make_corpus, train_cli, write_jsonl
from titlegen.pretrain import PseudoCorpus, pseudo_pair, sentences, unigram_f
from titlegen.runfolder import METRICS_FILE, STEPS_FILE
from titlegen.sources import Corpus

ARTICLE = "戊己庚。甲乙丙。甲乙丁！"


def test_pseudo_pairs_of_a_three_sentence_article_by_hand():
    """Each sentence's ROUGE-1 F against the other two: 戊己庚。 shares only 。 with 甲乙丙。甲乙丁！ (2·1 /
    (4 + 8) = 1/6); 甲乙丙。 shares 甲, 乙 and 。 with 戊己庚。甲乙丁！ (2·3 / 12 = 1/2); 甲乙丁！ shares 甲 and 乙
    (2·2 / 12 = 1/3). The gap sentence is the second; the lead sentence the first. The pseudo title
    drops its closing mark; the pseudo article keeps the others in order."""
    assert sentences(ARTICLE) == ["戊己庚。", "甲乙丙。", "甲乙丁！"]
    assert [unigram_f(s, r) for s, r in [("戊己庚。", "甲乙丙。甲乙丁！"), ("甲乙丙。", "戊己庚。甲乙丁！"),
                                          ("甲乙丁！", "戊己庚。甲乙丙。")]] == pytest.approx([1 / 6, 1 / 2, 1 / 3])
    assert pseudo_pair(ARTICLE, "gap") == ("甲乙丙", "戊己庚。甲乙丁！")
    assert pseudo_pair(ARTICLE, "lead") == ("戊己庚", "甲乙丙。甲乙丁！")
    assert pseudo_pair("甲乙丙。", "gap") is None and pseudo_pair("甲乙丙", "lead") is None  # one sentence: no pair
    assert pseudo_pair("甲乙\n丙丁。戊己丙", "gap") == ("丙丁", "甲乙戊己丙")  # a line break ends a sentence too


def test_a_source_without_titles_gives_pairs(tmp_path):
    path = write_jsonl(tmp_path / "articles.jsonl", [{"content": ARTICLE}, {"content": "一句话"},
                                                     {"text": "不读", "content": "春夏。秋冬。春秋！"}])
    pairs = list(PseudoCorpus(Corpus(path, "jsonl", (None, "content")), "gap").records())
    # 春夏。秋冬。春秋！: each sentence shares two characters with the rest (2·2 / 9 each): the first wins the tie
    assert [(p.title, p.content) for p in pairs] == [("甲乙丙", "戊己庚。甲乙丁！"), ("春夏", "秋冬。春秋！")]


def sentenced_corpus(n, seed):
    """make_corpus's articles cut into sentences of four to nine characters."""
    rng = np.random.default_rng(seed)
    rows = make_corpus(n, seed=seed)
    for row in rows:
        text, cut = row["content"], []
        while text:
            k = int(rng.integers(4, 10))
            cut.append(text[:k] + "。")
            text = text[k:]
        row["content"] = "".join(cut)
    return rows


def rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["step:5", "epoch_end:2"])
def test_pretraining_then_titles_resume_after_kill_9_as_never_killed(tmp_path, kill_at):
    """Two pretraining epochs (gap sentences of the training articles), then two on titles: killed with
    -9 in pretraining (step:5, three batches after a checkpoint) or at the switch (epoch_end:2), then
    resumed: every batch's loss and the kept weights as in the run never killed."""
    tiny = tmp_path / "tiny.py"
    tiny.write_text(TINY_CONFIG + "BATCH_SIZE = 8\nEPOCHS = 2\nCHECKPOINT_STEPS = 2\nSHUFFLE = True\n"
                    "PRETRAIN_EPOCHS = 2\n", encoding="utf-8")
    data = ["--train", write_jsonl(tmp_path / "train.jsonl", sentenced_corpus(40, 1)),
            "--dev", write_jsonl(tmp_path / "dev.jsonl", sentenced_corpus(4, 2))]
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    result = train_cli([str(tiny), *data, "--out", whole])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "titles: 2 epochs of teacher forcing from the pretrained weights" in result.stdout
    metrics = rows(os.path.join(whole, METRICS_FILE))
    assert [(r["epoch"], r["stage"]) for r in metrics] == [("1", "pretrain"), ("2", "pretrain"), ("3", "teacher"),
                                                          ("4", "teacher")]
    steps = rows(os.path.join(whole, STEPS_FILE))
    assert len(steps) == 2 * 5 + 2 * 5  # 40 pairs (every article has sentences) and 40 titles, batches of 8

    result = train_cli([str(tiny), *data, "--out", killed], kill_at=kill_at)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = train_cli([str(tiny), "--out", killed, "--resume"])
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-2000:]
    for name in (STEPS_FILE, "model.weights.h5"):
        with open(os.path.join(whole, name), "rb") as a, open(os.path.join(killed, name), "rb") as b:
            assert a.read() == b.read(), name
    assert [r["stage"] for r in rows(os.path.join(killed, METRICS_FILE))] == [r["stage"] for r in metrics]
