"""`serve`: the real server, in its own process on a free loopback port, against `generate`'s titles,
the exported SavedModel's answers to the same REST body, hostile bodies, and SIGTERM in flight."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ALPHABET, ROOT, run_cli
from titlegen.serve import listen, serving_address

ARTICLES = ["春夏秋冬山水", "日月风雨", "花草春夏秋冬日月", "山水花草风雨", "冬", "秋冬春夏" * 30, "雨风月日水山冬秋夏春"]
MAX_LEN = "8"


class Server:
    """`python seq2seq_title.py serve ... --port 0` in a subprocess; its address read off its first line."""

    def __init__(self, model, *flags, max_len=MAX_LEN):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "serve", "--model", model, "--port", "0",
             *(["--max-len", max_len] if max_len else []), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        line = self.process.stdout.readline()
        address = serving_address(line)
        assert address, line + self.process.stderr.read()
        self.name, host, port = address
        self.url = f"http://{host}:{port}"

    def request(self, path, body=None, method=None):
        """(status, parsed JSON or text) of one request; body: bytes, or anything JSON."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()  # escapes: a lone surrogate too
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                status, text, kind = response.status, response.read().decode(), response.headers["content-type"]
        except urllib.error.HTTPError as e:
            status, text, kind = e.code, e.read().decode(), e.headers["content-type"]
        return status, json.loads(text) if kind == "application/json" else text

    def predict(self, body):
        return self.request(f"/v1/models/{self.name}:predict", body)

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=120)
        return self.process.returncode, out, err


@pytest.fixture(scope="module")
def server(cli_model):
    s = Server(cli_model[0], "--batch-wait", "50")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def generated(cli_model, tmp_path_factory):
    """generate --file's titles of ARTICLES, in batches of GENERATE_BATCH_SIZE."""
    path = tmp_path_factory.mktemp("g") / "articles.txt"
    path.write_text("\n".join(ARTICLES) + "\n", encoding="utf-8")
    result = run_cli("generate", "--file", str(path), "--model", cli_model[0], "--max-len", MAX_LEN)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_predict_gives_generates_titles_for_every_body_form(server, generated):
    assert server.request("/healthz")[0] == 200
    assert server.request(f"/v1/models/{server.name}") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    bodies = [{"instances": ARTICLES}, {"instances": [{"content": a} for a in ARTICLES]},
              {"instances": [{"articles": a} for a in ARTICLES]}, {"inputs": {"articles": ARTICLES}}]
    answers = [server.predict(body) for body in bodies]
    assert all(status == 200 for status, _ in answers)
    for _, answer in answers:
        assert [p["title"] for p in answer["predictions"]] == generated
        assert [p["score"] for p in answer["predictions"]] == [p["score"] for p in answers[0][1]["predictions"]]
    assert all(set(t) <= set(ALPHABET) and 0 < len(t) <= int(MAX_LEN) for t in generated)
    assert all(p["score"] < 0 for p in answers[0][1]["predictions"])


def test_concurrent_requests_are_decoded_together_with_the_same_titles(server, generated):
    before = server.request("/healthz")[1]
    answers = [None] * (3 * len(ARTICLES))

    def ask(i):
        answers[i] = server.predict({"instances": [ARTICLES[i % len(ARTICLES)]]})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a[1]["predictions"][0]["title"] for a in answers] == [generated[i % len(ARTICLES)]
                                                                   for i in range(len(answers))]
    after = server.request("/healthz")[1]
    assert after["titles"] - before["titles"] == len(answers)
    assert after["batches"] - before["batches"] < len(answers) / 2  # 21 requests within 50 ms: a few batches


def test_a_bad_instance_fails_its_request_alone_with_its_reason_and_index(server, generated):
    bad = {"instances": ["春夏", "\udae5 北京", "日月"]}
    results = {}
    threads = [threading.Thread(target=lambda: results.update(bad=server.predict(bad))),
               threading.Thread(target=lambda: results.update(good=server.predict({"instances": ARTICLES[:2]})))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["bad"] == (400, {"index": 1, "error": "instances[1]: the article is not valid UTF-8 text (a lone "
                                    "surrogate '\\udae5' at character 0); pass it as UTF-8"})
    assert [p["title"] for p in results["good"][1]["predictions"]] == generated[:2]
    assert server.predict({"instances": ["春", "  \x01 "]}) == (400, {"index": 1, "error": (
        "instances[1]: the article is empty (nothing but spaces or control characters)")})
    assert server.predict({"instances": [{"title": "x"}]}) == (400, {"index": 0, "error": (
        'instances[0]: expected a string or an object with "articles" or "content"')})
    assert server.predict({"instances": [3]})[1]["error"] == "instances[0]: an article must be a string, got int"
    assert server.predict(b"\xff\xfe{")[0] == 400 and "not UTF-8 JSON" in server.predict(b"\xff\xfe{")[1]["error"]
    assert server.predict({"articles": ["春"]}) == (400, {"error": 'the body must be a JSON object with '
                                                                  '"instances": a list of articles'})
    assert server.predict({"instances": []})[0] == 400
    big = server.predict({"instances": ["春" * (5 << 20)]})
    assert big == (413, {"error": "the request is over 4194304 bytes (SERVE_MAX_BYTES); send fewer articles "
                                  "per request"})
    assert server.request("/v1/models/other:predict", {"instances": ["春"]})[0] == 404
    assert server.request(f"/v1/models/{server.name}:predict", method="GET")[0] == 405
    status, page = server.request("/")
    assert status == 200 and "<textarea" in page and "http" not in page.split("<body>")[1]  # no external assets


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(JSON_VALUES.map(lambda v: json.dumps({"instances": v}).encode()),
                 JSON_VALUES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)))
def test_any_body_gets_titles_or_a_400_never_a_5xx(server, body):
    status, answer = server.predict(body)
    assert status in (200, 400), (status, answer)
    if status == 200:
        assert len(answer["predictions"]) == len(json.loads(body).get("instances", json.loads(body).get("inputs")))
    else:
        assert set(answer) <= {"error", "index"} and answer["error"]


def test_the_exported_savedmodel_answers_the_same_body_as_tf_serving_would(server, cli_model, tmp_path):
    import tensorflow as tf

    result = run_cli("export", "--model", cli_model[0], "--out", str(tmp_path / "exported"), "--max-len", MAX_LEN)
    assert result.returncode == 0, result.stderr
    loaded = tf.saved_model.load(str(tmp_path / "exported" / "1"))
    signature = loaded.signatures["serving_default"]
    body = {"instances": [{"articles": a} for a in ARTICLES]}
    # TF Serving's row format: each instance's named inputs batched into one tensor per input name,
    # each output row an object of the outputs by name (strings as UTF-8)
    inputs = {name: tf.constant([i[name] for i in body["instances"]]) for name in body["instances"][0]}
    outputs = signature(**inputs)
    rows = [{"title": t.decode(), "score": float(s)} for t, s in zip(outputs["title"].numpy(), outputs["score"].numpy())]
    status, answer = server.predict(body)
    assert status == 200 and [p["title"] for p in answer["predictions"]] == [r["title"] for r in rows]
    assert [p["score"] for p in answer["predictions"]] == pytest.approx([r["score"] for r in rows], abs=1e-3)
    plain = {name: tf.constant(ARTICLES) for name in signature.structured_input_signature[1]}  # plain strings
    assert [t.decode() for t in signature(**plain)["title"].numpy()] == [r["title"] for r in rows]


def test_sigterm_answers_the_requests_in_flight_then_exits(cli_model, generated):
    s = Server(cli_model[0], "--batch-wait", "1500", "--port", "0")
    answer = {}
    asking = threading.Thread(target=lambda: answer.update(r=s.predict({"instances": ARTICLES[:1]})))
    asking.start()
    time.sleep(0.5)  # the request waits in the batch for 1.5 s
    code, out, err = s.stop(signal.SIGTERM)
    asking.join()
    assert answer["r"] == (200, {"predictions": [{"title": generated[0], "score": answer["r"][1]["predictions"][0]["score"]}]})
    assert code == 0 and out.strip().endswith("stopped (SIGTERM); every request in flight was answered")
    assert "Traceback" not in err


def test_a_port_in_use_is_a_one_line_error(cli_model, server):
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("serve", "--model", cli_model[0], "--port", port)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass --port N (0: any free port) "
        "or --host ADDRESS")


def test_a_connection_it_accepts_sends_each_write_at_once():
    """TCP_NODELAY on every accepted connection: without it a kept-alive client's second request waits
    40 ms (Nagle's rule against a delayed acknowledgement), as it did on socket.create_server's socket."""
    import asyncio
    import socket

    async def accepted_nodelay():
        sock, seen = listen("127.0.0.1", 0), asyncio.get_running_loop().create_future()

        def connected(reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        server.close()
        return value

    assert asyncio.run(accepted_nodelay()) == 1
    plain = socket.create_server(("127.0.0.1", 0))  # what it replaced: asyncio leaves Nagle on
    try:
        assert plain.proto == 0
    finally:
        plain.close()


def test_the_first_line_gives_the_address_that_clients_read():
    """serve's first line (SERVING) read back by serving_address, the one parser tests and benches use."""
    from titlegen.serve import SERVING

    for host, port in (("127.0.0.1", 8501), ("::1", 0), ("0.0.0.0", 65535)):
        assert serving_address(SERVING.format(name="lcsts_recipe", host=host, port=port) + "\n") == ("lcsts_recipe", host, port)
    assert serving_address("Traceback (most recent call last):") is None
