import keras
import numpy as np
import pytest

from conftest import model_settings, slow_but, tiny_settings, titler_of, write_jsonl
from titlegen.data import END, START, UNK, Vocab
from titlegen.layers import PointerGenerator, TitleIds
from titlegen.model import build_model
from titlegen.trained import load_trained
from titlegen.train import train


def test_extended_ids_of_an_article_and_its_title():
    vocab = Vocab(list("天气好"), min_count=1)  # 天4 气5 好6; len 7
    ids, oovs = vocab.encode_extended("天晴气爽晴", 400)
    assert oovs == ["晴", "爽"] and ids == [4, 7, 5, 8, 7]
    assert vocab.encode_title("晴天雨", 400, oovs) == [START, 7, 4, UNK, END]  # 雨 is not in the article
    assert vocab.decode([START, 7, 4, 8, END], oovs) == "晴天爽"
    assert vocab.decode([4, 9], oovs) == "天"  # an id with no character behind it is dropped


def test_titler_encodes_text_as_the_decoder_reads_it():
    """Titler.encode, the one text -> ids step of generate, evaluate, serve and bench/decode.py: a
    copying model reads the articles' ids (unknown characters as UNK) and their extended ids."""
    vocab = Vocab(list("天气好"), min_count=1)  # 天4 气5 好6; len 7
    for copy in (False, True):
        settings = model_settings(vocab_size=len(vocab), char_size=8, hidden_size=16, copy=copy)
        inputs, oovs = titler_of(build_model(settings), vocab).encode(["天晴气爽晴", "好"])
        assert inputs["article"] == [[4, UNK, 5, UNK, UNK], [6]]
        assert (inputs.get("article_extended"), oovs) == (([[4, 7, 5, 8, 7], [6]], [["晴", "爽"], []]) if copy
                                                          else (None, [(), ()]))


def test_title_ids_read_extended_ids_as_unk():
    assert np.asarray(TitleIds(7)(np.array([[2, 6, 7, 9]]))).tolist() == [[2, 6, UNK, UNK]]


def test_pointer_generator_mixture_by_hand():
    # V = 5 (ids 0-4), 2 temporary ids (5, 6); one step; the article reads ids [4, 5, 4, 0]
    probs = np.array([[[0.0, 0.1, 0.1, 0.2, 0.6]]], dtype="float32")
    attention = np.array([[[0.5, 0.2, 0.3, 0.0]]], dtype="float32")  # the padding gets none
    article = np.array([[4, 5, 4, 0]])
    p_gen = np.array([[[0.25]]], dtype="float32")
    out = np.asarray(PointerGenerator(extra=2)([probs, attention, article, p_gen]))[0, 0]
    copied = [0.0, 0.0, 0.0, 0.0, 0.5 + 0.3, 0.2, 0.0]  # attention summed per character
    expected = 0.25 * np.array([0.0, 0.1, 0.1, 0.2, 0.6, 0.0, 0.0]) + 0.75 * np.array(copied)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.sum() == pytest.approx(1.0)


def oov_corpus(tmp_path):
    """Articles of a dozen common characters, each with one rare name character (seen once) that
    the title repeats: only copying can write it."""
    rng = np.random.default_rng(0)
    common, rare = list("春夏秋冬山水日月风雨花草"), [chr(0x4e00 + 500 + i) for i in range(80)]
    rows = []
    for i in range(80):
        body = "".join(rng.choice(common, 12))
        rows.append({"title": rare[i] + body[:3], "content": rare[i] + body})
    return write_jsonl(tmp_path / "train.jsonl", rows[:64]), write_jsonl(tmp_path / "dev.jsonl", rows[64:])


@pytest.mark.parametrize("version", slow_but("2018", "2018", "2019"))
def test_copy_model_learns_to_copy_an_out_of_vocabulary_character(tmp_path, version):
    train_path, dev_path = oov_corpus(tmp_path)
    settings = tiny_settings(train_path, dev_path, min_count=2, char_size=16, hidden_size=32, copy=True,
                             version=version, epochs=25, steps_per_epoch=None, learning_rate=2e-2,
                             max_title_len=6, monitor="loss")
    model, vocab, config = train(settings, str(tmp_path / "model"), log=lambda _: None)
    assert config["best"]["epoch"] == 25  # the saved weights are the returned model's
    settings = load_trained(str(tmp_path / "model"))[2].model
    assert settings.copy and "copy_gate" in {layer.name for layer in model.layers}
    articles = ["亮春夏秋冬山水日月", "晶风雨花草山水日月"]  # 亮 and 晶 were never seen in training
    assert not any(c in vocab.char2id for c in "亮晶")
    naive = titler_of(model, vocab, "naive", 3, 6)(articles)
    assert [t[0] for t in naive] == ["亮", "晶"]  # copied, and written back as the real characters
    assert titler_of(model, vocab, "incremental", 3, 6)(articles) == naive

    loaded, loaded_vocab, _ = load_trained(str(tmp_path / "model"))
    assert titler_of(loaded, loaded_vocab, "incremental", 3, 6)(articles) == naive


def test_copy_off_is_the_blogs_model():
    plain, copying = (build_model(model_settings(12, char_size=8, hidden_size=16, copy=copy)) for copy in (False, True))
    assert sorted(plain.input) == ["article", "title_in"] and plain.output.shape[-1] == 12
    assert sorted(copying.input) == ["article", "article_extended", "title_in"] and copying.output.shape[-1] == 12 + 400
    names = {layer.name for layer in plain.layers}
    assert not names & {"copy_gate", "pointer", "title_ids"}


def test_covered_attention_by_hand():
    from titlegen.layers import covered_attention, coverage_loss
    scores = np.array([[[2.0, 0.0], [2.0, 0.0], [2.0, 0.0]]], dtype="float32")  # three steps, two keys
    a, coverage = covered_attention(scores, np.zeros((1, 1, 2), "float32"), -1.0)  # covered keys lose score
    a, coverage = np.asarray(a)[0], np.asarray(coverage)[0]

    def softmax(x):
        return np.exp(x) / np.exp(x).sum()
    a0 = softmax(np.array([2.0, 0.0]))  # nothing covered yet
    a1 = softmax(np.array([2.0, 0.0]) - a0)
    a2 = softmax(np.array([2.0, 0.0]) - a0 - a1)
    np.testing.assert_allclose(a, [a0, a1, a2], rtol=1e-5)
    np.testing.assert_allclose(coverage, [[0, 0], a0, a0 + a1], rtol=1e-5, atol=1e-7)
    # the loss counts steps whose input is a real character other than END: here the first two
    loss = coverage_loss(a[None], coverage[None], np.array([[START, 5, END]]))
    expected = (np.minimum(a0, [0, 0]).sum() + np.minimum(a1, a0).sum()) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("version, copy", slow_but(("2019", True), ("2018", False), ("2018", True), ("2019", False),
                                                   ("2019", True)))
def test_coverage_decoders_agree_and_reload(tmp_path, version, copy):
    keras.utils.set_random_seed(5)
    settings = model_settings(40, char_size=16, hidden_size=32, version=version, copy=copy, coverage=1.0)
    model = build_model(settings)
    attention = model.get_layer("interact" if version == "2018" else "attention")
    attention.coverage_weight.assign(-2.0)  # a strong coverage effect, so a wrong coverage shows
    vocab = Vocab([chr(0x4e00 + i) for i in range(36)], 1)
    rng = np.random.default_rng(0)
    articles = ["".join(chr(0x4e00 + i) for i in rng.integers(0, 36, n)) + "亮" for n in (5, 30, 12)]
    naive = titler_of(model, vocab, "naive", 3, 10)(articles)
    assert titler_of(model, vocab, "incremental", 3, 10)(articles) == naive
    options = {"min_title_len": 2, "no_repeat_ngram": 2, "length_penalty": 0.8}  # every option at once, 5 beams
    assert (titler_of(model, vocab, "incremental", 5, 10, **options)(articles)
            == titler_of(model, vocab, "naive", 5, 10, **options)(articles))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert titler_of(loaded, vocab, "incremental", 3, 10)(articles) == naive
