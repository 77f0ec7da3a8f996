"""ensure_synthetic_dataset: reuse of complete copies only, crash leftovers, concurrent callers."""

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from adaanchor.data.synthetic import default_cache_dir, ensure_synthetic_dataset, is_complete_copy
from adaanchor.data.synthetic.cache import _ensure
from adaanchor.data.synthetic.dataset import GENERATOR_VERSION, dataset_params

PARAMS = dict(num_images=3, seed=1, keypoints="crowdpose", max_size=128)


def _ensure_flag(cache_dir, name="tiny", **kw):
    params = {**PARAMS, **kw}
    return _ensure(cache_dir, name, workers=1, progress=False, **params)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAANCHOR_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ADAANCHOR_CACHE")
    assert default_cache_dir() == tmp_path / "x" / "adaanchor"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "adaanchor"


def test_generates_once_then_reuses(tmp_path):
    path, generated = _ensure_flag(tmp_path)
    assert generated and path == tmp_path / "tiny"
    assert is_complete_copy(path, dataset_params(**PARAMS))
    stamp = (path / "annotations.json").stat().st_mtime_ns
    again, generated = _ensure_flag(tmp_path)
    assert again == path and not generated
    assert (path / "annotations.json").stat().st_mtime_ns == stamp
    # the public function returns the same directory
    assert ensure_synthetic_dataset(tmp_path, "tiny", progress=False, **PARAMS) == path


def test_other_parameters_or_version_regenerate(tmp_path):
    path, _ = _ensure_flag(tmp_path)
    _, generated = _ensure_flag(tmp_path, seed=2)
    assert generated
    assert json.loads((path / "synthetic_dataset.json").read_text())["params"]["seed"] == 2
    record = json.loads((path / "synthetic_dataset.json").read_text())
    record["generator_version"] = GENERATOR_VERSION + "-old"
    (path / "synthetic_dataset.json").write_text(json.dumps(record))
    _, generated = _ensure_flag(tmp_path, seed=2)
    assert generated


def test_partial_copy_is_not_reused(tmp_path):
    """A crash that left images and a json but no completion record, and a leftover temp dir."""
    target = tmp_path / "tiny"
    (target / "images").mkdir(parents=True)
    (target / "images" / "000001.jpg").write_bytes(b"truncated")
    (target / "annotations.json").write_text('{"images": [')
    leftover = tmp_path / ".tiny.tmp-crashed"
    (leftover / "images").mkdir(parents=True)
    assert not is_complete_copy(target, dataset_params(**PARAMS))
    path, generated = _ensure_flag(tmp_path)
    assert generated
    assert json.loads((path / "annotations.json").read_text())["images"][0]["file_name"] == "000001.jpg"
    assert len(list((path / "images").iterdir())) == 3
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.lock", "tiny"]


def test_only_a_temp_dir_from_a_crash(tmp_path):
    (tmp_path / ".tiny.tmp-dead" / "images").mkdir(parents=True)
    (tmp_path / ".tiny.tmp-dead" / "synthetic_dataset.json").write_text("{}")
    path, generated = _ensure_flag(tmp_path)
    assert generated and is_complete_copy(path, dataset_params(**PARAMS))
    assert not (tmp_path / ".tiny.tmp-dead").exists()


def test_foreign_directory_is_left_alone(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        _ensure_flag(tmp_path)
    assert (tmp_path / "tiny" / "thesis.tex").read_text() == "precious"


def test_a_file_in_the_way_is_left_alone(tmp_path):
    (tmp_path / "tiny").write_text("precious")
    with pytest.raises(FileExistsError, match="not a directory"):
        _ensure_flag(tmp_path)
    assert (tmp_path / "tiny").read_text() == "precious"


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", ".."])
def test_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        _ensure_flag(tmp_path, name=name)


def test_unwritable_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create cache directory"):
        _ensure_flag(blocker / "cache")


CONCURRENT = {**PARAMS, "num_images": 12}


def _worker(cache_dir, barrier, queue):
    barrier.wait()  # both call at the same moment, while neither copy exists
    path, generated = _ensure(cache_dir, "shared", workers=1, progress=False, **CONCURRENT)
    queue.put((str(path), generated, os.getpid()))


def test_concurrent_callers_generate_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {r[0] for r in results} == {str(tmp_path / "shared")}
    assert sorted(r[1] for r in results) == [False, True]
    assert is_complete_copy(Path(results[0][0]), dataset_params(**CONCURRENT))
