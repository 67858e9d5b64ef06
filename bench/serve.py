"""`serve` under load on loopback, beside `generate --file`'s batched titles/s, in one run.

    python bench/serve.py --model runs/lcsts_recipe            # 1, 8, 64 clients, then the hostile inputs
    python bench/serve.py --model DIR --clients 1,8,64 --articles 1000 --hostile 10000

1. `generate`'s decoder in this process on the dev articles, in batches of GENERATE_BATCH_SIZE
   (after a warm-up pass): titles/s, and one batch's decode time.
2. The server (`seq2seq_title.py serve`, config.py's settings) in its own process; for each count
   of clients, that many threads each keep one connection and send one article per request
   until the dev articles are all titled or `--seconds` have passed: titles/s, p50/p99 latency,
   failed requests, and titles that differ from step 1's.
3. `--hostile N` requests (8 clients) of the kinds a hostile client sends, each made good or bad on
   purpose (random Unicode, invalid UTF-8, bad JSON, lone surrogates, wrong types, huge bodies):
   answers by status, 5xx, and whether every good one was titled; then the same kinds as an N-line
   file through `generate --file --jsonl`: every good line titled, every bad one an error line.

A benchmark, not a test: the figures move 10-20% between runs; the clients share the CPU with the
server.
"""
import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.decoders import load_titler  # noqa: E402
from titlegen.serve import serving_address  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402

CLI = os.path.join(ROOT, "seq2seq_title.py")


def generate_rate(model, articles, size):
    """In-process titles/s of generate's decoder in batches of `size` (warmed), its titles, and
    the mean decode time of one full batch."""
    titler = load_titler(model, xla=False)  # as generate decodes: the model's own decoding
    batches = [articles[i:i + size] for i in range(0, len(articles), size)]
    [titler(b) for b in batches]
    start = time.perf_counter()
    titles = [t for b in batches for t in titler(b)]
    seconds = time.perf_counter() - start
    full = [b for b in batches if len(b) == size] or batches
    started = time.perf_counter()
    titler(full[0])
    return len(titles) / seconds, titles, time.perf_counter() - started


class Server:
    def __init__(self, model, flags=()):
        self.process = subprocess.Popen([sys.executable, CLI, "serve", "--model", model, "--port", "0", *flags],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if not serving_address(line):
            raise SystemExit(f"the server did not start: {line!r}")
        name, self.host, self.port = serving_address(line)
        self.path = f"/v1/models/{name}:predict"

    def decoded(self):
        """(titles, batches) the server has decoded so far, from /healthz."""
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
        connection.request("GET", "/healthz")
        health = json.loads(connection.getresponse().read())
        return health["titles"], health["batches"]

    def stop(self):
        self.process.terminate()
        return self.process.wait(120)


def load_clients(server, articles, clients, seconds):
    """`clients` threads, one connection each, one article per request, until every article is
    asked once or `seconds` pass: (titles {index: title}, latencies, failures, elapsed)."""
    order, lock, titles, latencies, failures = list(range(len(articles))), threading.Lock(), {}, [], [0]
    deadline = time.perf_counter() + seconds

    def client():
        connection = connect(server)
        while time.perf_counter() < deadline:
            with lock:
                if not order:
                    return
                i = order.pop(0)
            started = time.perf_counter()
            try:
                connection.request("POST", server.path, json.dumps({"instances": [articles[i]]}),
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                body = json.loads(response.read())
                ok = response.status == 200
            except (OSError, http.client.HTTPException, ValueError):
                ok, connection = False, connect(server)
            with lock:
                latencies.append(time.perf_counter() - started)
                if ok:
                    titles[i] = body["predictions"][0]["title"]
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return titles, latencies, failures[0], time.perf_counter() - start


def connect(server):
    """A keep-alive connection that sends each request at once, as curl and browsers do
    (TCP_NODELAY): http.client writes the headers and the body apart, and Nagle's rule would hold
    the body back until the server's delayed acknowledgement of the headers, 40 ms later."""
    connection = http.client.HTTPConnection(server.host, int(server.port), timeout=300)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def percentile(values, q):
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def hostile_items(n, seed=0):
    """n (text of one line or instance, good?) pairs, each made good or bad on purpose."""
    rng = random.Random(seed)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]

    def words(k):
        return "".join(rng.choice(han) for _ in range(k))

    def unicode_noise(k):  # a Han character, then any code points but surrogates: never blank, never JSON
        points = [rng.choice([rng.randrange(0x20, 0xD800), rng.randrange(0xE000, 0x110000), rng.randrange(0, 0x20)])
                  for _ in range(k)]
        return rng.choice(han) + "".join(map(chr, points)).replace("\n", " ").replace("\r", " ")

    kinds = [("plain", True, lambda: words(rng.randint(5, 300)).encode()),
             ("json", True, lambda: json.dumps({"content": words(rng.randint(5, 300))}).encode()),
             ("unicode", True, lambda: unicode_noise(rng.randint(1, 40)).encode("utf-8")),
             ("huge", True, lambda: words(200_000).encode()),
             ("surrogate", False, lambda: json.dumps({"content": "\udae5" + words(5)}).encode()),
             ("bad utf-8", False, lambda: b"\xff\xfe" + words(5).encode()[:7]),
             ("bad json", False, lambda: b'{"content": "' + words(5).encode()),
             ("wrong type", False, lambda: json.dumps({"content": rng.choice([42, None, ["春"], {"a": 1}, True])}).encode()),
             ("no content", False, lambda: json.dumps({"title": words(4)}).encode()),
             ("blank", False, lambda: rng.choice([b"", b"   ", b"\x01\x02", "\u3000 ".encode()]))]
    return [(name, good, make()) for name, good, make in (rng.choice(kinds) for _ in range(n))]


def request_body(name, raw):
    """A predict request carrying one hostile line as TF Serving's body (bad bytes stay bad bytes)."""
    if name in ("json", "surrogate", "no content", "wrong type"):
        return b'{"instances": [' + raw + b"]}"
    if name == "bad utf-8":  # inside the JSON string
        return b'{"instances": ["' + raw + b'"]}'
    if name == "bad json":
        return raw
    return json.dumps({"instances": [raw.decode("utf-8")]}).encode()


def hostile_requests(server, items, clients=8):
    """Each item as its own request: {status: count}, and the good items without a title."""
    statuses, untitled, lock, queue = {}, [0], threading.Lock(), list(enumerate(items))

    def client():
        connection = connect(server)
        while True:
            with lock:
                if not queue:
                    return
                _, (name, good, raw) = queue.pop()
            try:
                connection.request("POST", server.path, request_body(name, raw), {"Content-Type": "application/json"})
                response = connection.getresponse()
                status, body = response.status, response.read()
            except (OSError, http.client.HTTPException):
                status, body = "dropped", b""
                connection = connect(server)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if good and (status != 200 or "title" not in json.loads(body)["predictions"][0]):
                    untitled[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, untitled[0]


def hostile_file(model, items):
    """The items as one file through generate --file --jsonl: (good lines titled, good lines,
    bad lines reported as errors, bad lines, output lines, exit status, tracebacks)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hostile.txt")
        with open(path, "wb") as f:
            f.write(b"\n".join(raw.replace(b"\n", b" ") for _, _, raw in items) + b"\n")
        result = subprocess.run([sys.executable, CLI, "generate", "--file", path, "--model", model, "--jsonl"],
                                capture_output=True, text=True)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    good = [good for _, good, _ in items]
    titled = sum(1 for r, g in zip(rows, good) if g and "title" in r)
    reported = sum(1 for r, g in zip(rows, good) if not g and "error" in r)
    return titled, sum(good), reported, len(good) - sum(good), len(rows), result.returncode, \
        result.stderr.count("Traceback")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, config.OUTPUT_DIR))
    parser.add_argument("--articles", type=int, default=1000, help="dev articles (LCSTS's 1,000 by default)")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=60, help="at most this long per count of clients")
    parser.add_argument("--batch-wait", help="the server's --batch-wait (ms; default: config.SERVE_BATCH_WAIT)")
    parser.add_argument("--hostile", type=int, default=10000, help="hostile requests, and lines of the file; 0: none")
    args = parser.parse_args()
    print(f"machine: {describe()}; model {args.model}")
    articles = [r["content"] for r in read_jsonl(os.path.join(ROOT, config.DEV_PATH))][:args.articles]
    size = config.GENERATE_BATCH_SIZE
    generate_tps, generated, batch_seconds = generate_rate(args.model, articles, size)
    print(f"generate's decoder, batches of {size}, warmed: {generate_tps:.1f} titles/s; one batch of {size}: "
          f"{batch_seconds:.2f} s")
    server = Server(args.model, ["--batch-wait", args.batch_wait] if args.batch_wait else [])
    try:
        load_clients(server, articles[:size], size, args.seconds)  # warm the server's shapes
        print("| clients | titles | titles/s | × generate | p50 latency (s) | p99 latency (s) | p99 / one batch "
              "| mean batch | failed | titles unlike generate's |\n|---|---|---|---|---|---|---|---|---|---|")
        for clients in map(int, args.clients.split(",")):
            before = server.decoded()
            titles, latencies, failed, elapsed = load_clients(server, articles, clients, args.seconds)
            decoded, batches = (after - earlier for after, earlier in zip(server.decoded(), before))
            unlike = sum(1 for i, t in titles.items() if t != generated[i])
            p99 = percentile(latencies, 99)
            print(f"| {clients} | {len(titles)} | {len(titles) / elapsed:.1f} | {len(titles) / elapsed / generate_tps:.2f} "
                  f"| {percentile(latencies, 50):.3f} | {p99:.3f} | {p99 / batch_seconds:.2f} | {decoded / max(batches, 1):.1f} "
                  f"| {failed} | {unlike} |")
        if args.hostile:
            items = hostile_items(args.hostile)
            started = time.perf_counter()
            statuses, untitled = hostile_requests(server, items)
            good = sum(g for _, g, _ in items)
            server_errors = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
            print(f"{len(items)} hostile requests in {time.perf_counter() - started:.0f} s: "
                  f"{dict(sorted(statuses.items(), key=str))}; 5xx: {server_errors}; "
                  f"good ones untitled: {untitled} of {good}")
    finally:
        print(f"server exit status after SIGTERM: {server.stop()}")
    if args.hostile:
        titled, good, reported, bad, lines, status, tracebacks = hostile_file(args.model, items)
        print(f"generate --file of {len(items)} hostile lines: {lines} output lines, exit {status}, "
              f"{titled} of {good} good lines titled, {reported} of {bad} bad lines reported, "
              f"tracebacks: {tracebacks}")


if __name__ == "__main__":
    main()
