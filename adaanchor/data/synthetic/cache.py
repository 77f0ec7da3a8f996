"""The cache of generated synthetic datasets: find a complete copy, or generate one, once, under a file lock.

Layout: ``<cache_dir>/<name>/`` is a dataset (see dataset.py), ``<cache_dir>/.<name>.lock`` the lock file,
``<cache_dir>/.<name>.tmp-*`` the temporary directory of a generation under way (or left by a crash).
The lock is an advisory ``fcntl.flock`` lock (POSIX; released by the OS when its holder dies), so several
processes (e.g. Detectron2's DDP workers) may call :func:`ensure_synthetic_dataset` at once: one generates,
the others wait and then reuse its copy.
"""

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Tuple

from .dataset import (
    ANNOTATIONS_NAME,
    GENERATOR_VERSION,
    IMAGES_DIRNAME,
    RECORD_NAME,
    dataset_params,
    format_summary,
    generate_synthetic_dataset,
    validate_arguments,
)

logger = logging.getLogger(__name__)

_OWN_ENTRIES = {ANNOTATIONS_NAME, IMAGES_DIRNAME, RECORD_NAME}


def default_cache_dir() -> Path:
    """$ADAANCHOR_CACHE, else $XDG_CACHE_HOME/adaanchor, else ~/.cache/adaanchor."""
    if os.environ.get("ADAANCHOR_CACHE"):
        return Path(os.environ["ADAANCHOR_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "adaanchor"
    return Path.home() / ".cache" / "adaanchor"


def read_dataset_record(dataset_dir) -> Optional[dict]:
    """The completion record of a dataset directory; None when absent or unreadable (not a complete copy)."""
    path = Path(dataset_dir) / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_complete_copy(dataset_dir, params: dict) -> bool:
    """True when ``dataset_dir`` holds a complete dataset generated with ``params`` by this generator version."""
    dataset_dir = Path(dataset_dir)
    record = read_dataset_record(dataset_dir)
    return (
        record is not None
        and record.get("generator_version") == GENERATOR_VERSION
        and record.get("params") == params
        and (dataset_dir / ANNOTATIONS_NAME).is_file()
        and (dataset_dir / IMAGES_DIRNAME).is_dir()
    )


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or name.startswith(".") or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"synthetic dataset: name must be a plain directory name, got {name!r}")


class _FileLock:
    """An exclusive flock on ``path`` (created if missing), blocking; logs when it has to wait."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def __enter__(self):
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process to finish the synthetic dataset (lock %s)", self.path)
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def _remove_leftovers(cache_dir: Path, name: str) -> None:
    """Remove temporary directories of earlier generations of ``name`` (called under the lock: nobody else is
    generating it, so they are left by crashed runs)."""
    for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
        for path in cache_dir.glob(pattern):
            logger.info("removing leftover %s", path)
            shutil.rmtree(path, ignore_errors=True)


def _ensure(cache_dir, name: str, *, num_images, seed, keypoints, max_size, workers, progress) -> Tuple[Path, bool]:
    """Like ensure_synthetic_dataset; also returns whether this call generated the copy."""
    validate_arguments(num_images, seed, keypoints, max_size)
    _check_name(name)
    cache_dir = Path(cache_dir).expanduser()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        error = PermissionError if isinstance(e, PermissionError) else OSError
        raise error(f"synthetic dataset: cannot create cache directory {cache_dir}: {e}") from e
    target = cache_dir / name
    params = dataset_params(num_images, seed, keypoints, max_size)
    if is_complete_copy(target, params):  # the common case, without taking the lock
        return target, False
    with _FileLock(cache_dir / f".{name}.lock"):
        if is_complete_copy(target, params):  # another process made it while we waited
            return target, False
        _remove_leftovers(cache_dir, name)
        if target.exists():
            if not target.is_dir():
                raise FileExistsError(f"synthetic dataset: {target} exists and is not a directory")
            foreign = sorted(p.name for p in target.iterdir() if p.name not in _OWN_ENTRIES)
            if foreign:
                raise FileExistsError(
                    f"synthetic dataset: {target} exists and is not a synthetic dataset (it holds {foreign[:5]}); "
                    "remove it or choose another name"
                )
            record = read_dataset_record(target)
            reason = "incomplete" if record is None else f"made with other parameters ({record.get('params')})"
            logger.info("synthetic dataset %s is %s: regenerating it", target, reason)
        logger.info("generating synthetic dataset %s with %s", target, params)
        summary = generate_synthetic_dataset(target, **params, workers=workers, progress=progress, overwrite=True)
        logger.info("%s", format_summary(summary, target))
        return target, True


def ensure_synthetic_dataset(
    cache_dir,
    name: str,
    *,
    num_images: int,
    seed: int,
    keypoints: str,
    max_size: int = 512,
    workers: Optional[int] = None,
    progress: bool = True,
) -> Path:
    """The directory of a complete synthetic dataset ``<cache_dir>/<name>``, generating it on first use.

    An existing copy is reused only if its completion record holds the same parameters and generator version;
    anything else there (a copy with other parameters, or a directory without the record, e.g. from an older
    crash) is replaced, and temporary directories left by crashed runs are removed. Safe to call from several
    processes at once: a file lock lets one generate while the others wait.

    Raises:
        ValueError: bad arguments; OSError (PermissionError): the cache directory cannot be written;
        FileExistsError: ``<cache_dir>/<name>`` holds files that a synthetic dataset does not have.
    """
    path, _ = _ensure(
        cache_dir, name, num_images=num_images, seed=seed, keypoints=keypoints, max_size=max_size,
        workers=workers, progress=progress,
    )  # fmt: skip
    return path
