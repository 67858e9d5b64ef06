"""Files written whole or not at all, and a file's hash (no TensorFlow)."""
import contextlib
import hashlib
import json
import os


@contextlib.contextmanager
def replacing(path, tmp=None):
    """A temporary path (`tmp`, else path + ".tmp") to write the new `path` to; once the `with`
    ends without an error it replaces `path` in one rename, so a crash never leaves half a file."""
    tmp = tmp or f"{path}.tmp"
    yield tmp
    os.replace(tmp, path)


def write_json(path, obj):
    """Write JSON whole or not at all."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
