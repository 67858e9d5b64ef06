"""TF_CONFIG for several training processes on this one machine (MultiWorkerMirroredStrategy), as
tests/test_workers.py and bench/workers.py start them; docs/training.md writes it out for several
machines. No TensorFlow."""
import json
import socket


def local_tf_configs(n):
    """The TF_CONFIG value (JSON text) of each of n worker processes on 127.0.0.1, worker 0 the
    chief, each on a TCP port nobody was listening on a moment ago."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}}) for i in range(n)]
