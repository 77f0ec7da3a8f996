"""Crash-safe file writes (framework-free): a file is absent, complete as before, or complete as new."""

import contextlib
import io
import json
import os
import tempfile

__all__ = ["atomic_write", "write_json_atomically"]


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path``: ``path``
    is absent, its previous complete content or the new complete content, never a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    _fsync_dir(directory)


def write_json_atomically(path: str, obj) -> None:
    """Write ``obj`` as json to ``path`` with :func:`atomic_write` (streamed: no second copy in memory)."""

    def write(binary):
        text = io.TextIOWrapper(binary, encoding="utf-8")
        json.dump(obj, text)
        text.flush()
        text.detach()  # leave the binary file open for atomic_write's fsync

    atomic_write(path, write)
