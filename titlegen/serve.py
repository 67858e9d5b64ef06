"""A trained model over HTTP: `python seq2seq_title.py serve` (docs/serve.md).

An ASGI application run by uvicorn. Its REST body is TF Serving's, so a client moves between this
server and TF Serving with the exported SavedModel (`export`) unchanged:

    POST /v1/models/NAME:predict  {"instances": ["文章", ...]} or {"instances": [{"articles": ...}]}
                                  -> {"predictions": [{"title": ..., "score": ...}, ...]}
    GET  /v1/models/NAME          the model's status, as TF Serving gives it
    GET  /v1/models/NAME/metadata the decoding settings, and where each came from (the model's
                                  folder, an override file, a flag)
    GET  /healthz                 {"status": "ok", ...} once the model is loaded, with titles and
                                  batches decoded so far
    GET  /                        a page to paste an article into and read its title

Concurrent requests are decoded together: each article joins one queue, and `Batcher` decodes at
most `batch_size` of them at a time, a batch waiting at most `wait_ms` for more once the decoder is free,
on one thread of its own (the event loop keeps answering meanwhile). A request's instances are
all checked before any is queued: one bad instance fails its request with 400 and the reason and
the index of the first bad one, as TF Serving fails a request with a bad instance; other requests
are not touched. A body over `max_bytes` is refused with 413, before it is read whole.
"""
import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from .text import article_error, clean

SERVING = "serving {name} on http://{host}:{port}/ (POST /v1/models/{name}:predict); Ctrl-C stops"  # the first line
DRAIN = 16  # an over-long body is read to this many times SERVE_MAX_BYTES before the connection is dropped
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve_page.html")


def serving_address(line):
    """(name, host, port) from the line `serve` prints first (SERVING), or None for another line."""
    found = re.fullmatch(r"serving (\S+) on http://(.+):(\d+)/ .*", line.strip())
    return (found[1], found[2], int(found[3])) if found else None


class BadRequest(Exception):
    def __init__(self, status, message, index=None):
        super().__init__(message)
        self.status, self.index = status, index


class Batcher:
    """Articles from any number of requests -> (title, score), decoded `batch_size` at a time by
    `titles_and_scores` (a Titler's) on one thread."""

    def __init__(self, titles_and_scores, batch_size, wait_ms):
        self.titles_and_scores, self.batch_size, self.wait = titles_and_scores, batch_size, wait_ms / 1000
        self.queue, self.task = None, None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self.batches = self.titles = 0  # decoded so far (/healthz says)

    def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        self.thread.shutdown()

    async def title(self, articles):
        """The (title, score) of each article, in order, once its batch is decoded."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in articles]
        for article, future in zip(articles, futures):
            self.queue.put_nowait((article, future))
        return await asyncio.gather(*futures)

    async def _next_batch(self):
        batch, loop = [await self.queue.get()], asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while len(batch) < self.batch_size:
            try:  # what is queued already goes at once; only an empty queue is waited on, until the deadline
                batch.append(self.queue.get_nowait() if not self.queue.empty()
                             else await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            try:
                titles, scores = await loop.run_in_executor(self.thread, self.titles_and_scores,
                                                            [a for a, _ in batch])
            except Exception as e:  # noqa: BLE001 (a decoding failure fails its batch's requests, not the server)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            self.batches, self.titles = self.batches + 1, self.titles + len(batch)
            for (_, future), title, score in zip(batch, titles, scores):
                if not future.done():  # a client that left has its future cancelled
                    future.set_result((title, score))


def instances_of(body, content_field):
    """A predict request's body (bytes) -> its articles, cleaned; a BadRequest (400) naming the
    first bad instance. Instances are strings, or objects holding the article under "articles"
    (the exported signature's input) or `content_field` (the corpus's field, "content");
    TF Serving's columnar {"inputs": [...]} is read too."""
    try:
        request = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f"the body is not UTF-8 JSON ({e}); send {{\"instances\": [\"文章内容\", ...]}}")
    if not isinstance(request, dict) or not any(k in request for k in ("instances", "inputs")):
        raise BadRequest(400, 'the body must be a JSON object with "instances": a list of articles')
    instances = request.get("instances", request.get("inputs"))
    if isinstance(instances, dict):  # columnar: {"inputs": {"articles": [...]}}
        instances = next((instances[k] for k in ("articles", content_field) if k in instances), None)
    if not isinstance(instances, list) or not instances:
        raise BadRequest(400, '"instances" must be a non-empty list of articles')
    return [_article(instance, i, content_field) for i, instance in enumerate(instances)]


def _article(instance, index, content_field):
    if isinstance(instance, dict):
        key = next((k for k in ("articles", content_field) if k in instance), None)
        if key is None:
            raise BadRequest(400, f'instances[{index}]: expected a string or an object with "articles" or '
                             f'"{content_field}"', index)
        instance = instance[key]
    if not isinstance(instance, str):
        raise BadRequest(400, f"instances[{index}]: an article must be a string, got {type(instance).__name__}",
                         index)
    error = article_error(instance)
    if error:
        raise BadRequest(400, f"instances[{index}]: the article {error}", index)
    return clean(instance)


class App:
    """The ASGI application: routes, the body limit, JSON in and out; the model behind `batcher`."""

    def __init__(self, batcher, name, decoding, content_field="content", max_bytes=4 << 20, origins=None):
        self.batcher, self.name, self.content_field, self.max_bytes = batcher, name, content_field, max_bytes
        self.metadata = {"model_spec": {"name": name, "signature_name": "serving_default"},
                         "metadata": {"decoding": decoding, "decoding_from": origins or {},
                                      "batch_size": batcher.batch_size,
                                      "batch_wait_ms": batcher.wait * 1000}}
        with open(PAGE, encoding="utf-8") as f:
            self.page = f.read().replace("__MODEL__", json.dumps(name).replace("<", "\\u003c")).encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        if scope["type"] != "http":
            return
        try:
            status, kind, body = await self.route(scope, receive)
        except BadRequest as e:
            status, kind, body = e.status, "json", {"error": str(e), **({"index": e.index} if e.index is not None else {})}
        except Exception as e:  # noqa: BLE001 (never a traceback to the client)
            status, kind, body = 500, "json", {"error": f"{type(e).__name__}: {e}"}
        data = body if kind == "html" else json.dumps(body, ensure_ascii=False).encode("utf-8")
        content_type = b"text/html; charset=utf-8" if kind == "html" else b"application/json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.batcher.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.batcher.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def route(self, scope, receive):
        method, path, model = scope["method"], scope["path"], f"/v1/models/{self.name}"
        if (method, path) == ("POST", model + ":predict"):
            return await self.predict(receive)
        pages = {"/": ("html", self.page), model + "/metadata": ("json", self.metadata),
                 "/healthz": ("json", {"status": "ok", "model": self.name, "titles": self.batcher.titles,
                                       "batches": self.batcher.batches}),
                 model: ("json", {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                             "status": {"error_code": "OK", "error_message": ""}}]})}
        if method == "GET" and path in pages:
            return 200, *pages[path]
        if path in pages or path == model + ":predict":
            raise BadRequest(405, f"{method} is not served at {path}")
        raise BadRequest(404, f"no {path} here; POST {model}:predict with {{\"instances\": [\"文章内容\"]}}")

    async def predict(self, receive):
        articles = instances_of(await self.read_body(receive), self.content_field)
        results = await self.batcher.title(articles)
        return 200, "json", {"predictions": [{"title": t, "score": s} for t, s in results]}

    async def read_body(self, receive):
        """The request's body; past `max_bytes`, the rest is read and dropped (up to DRAIN times
        the limit) so that the client, still sending, reads the 413 instead of a reset connection."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "the client left before its request was read")
            size += len(message.get("body", b""))
            if size <= self.max_bytes:
                chunks.append(message.get("body", b""))
            if not message.get("more_body") or size > DRAIN * self.max_bytes:
                break
        if size > self.max_bytes:
            raise BadRequest(413, f"the request is over {self.max_bytes} bytes (SERVE_MAX_BYTES); "
                             "send fewer articles per request")
        return b"".join(chunks)


def listen(host, port):
    """A listening TCP socket on host:port (0: any free port); OSError when it cannot be had.

    Made with its protocol named (IPPROTO_TCP), not as socket.create_server makes it (protocol 0):
    asyncio sets TCP_NODELAY only on a socket whose protocol says TCP, and without it a response
    on a kept-alive connection waits 40 ms (Nagle's rule against the client's delayed
    acknowledgement of the headers, which uvicorn writes apart from the body)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class Stopped(Exception):
    """SIGINT or SIGTERM, once uvicorn has answered the requests in flight and passes it on."""


def _stop(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def serve(titler, name, settings, batch_size, content_field, sock, log=print, origins=None):
    """Answer on the bound socket `sock` until SIGINT or SIGTERM, which finish the requests in
    flight first (uvicorn's graceful shutdown); returns the signal's name. At most `batch_size`
    articles are decoded together; `settings` a settings.Serve (SERVE_BATCH_WAIT, SERVE_MAX_BYTES);
    `origins`: where each decoding setting came from, in words (the metadata and the page show it)."""
    import uvicorn

    batcher = Batcher(titler.titles_and_scores, batch_size, settings.serve_batch_wait)
    app = App(batcher, name, dataclasses.asdict(titler.options), content_field, settings.serve_max_bytes, origins)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=60,
                            access_log=False)
    host, port = sock.getsockname()[:2]
    log(SERVING.format(name=name, host=host, port=port))
    for number in (signal.SIGINT, signal.SIGTERM):  # what uvicorn restores and raises again after its shutdown
        signal.signal(number, _stop)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except Stopped as e:
        return str(e)
    return "the server's end"
