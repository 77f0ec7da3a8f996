"""Fault injection, security hygiene and the CUDA check script (issue 9, items 3 and 4): nothing is
downloaded (no download call in the code; a tiny train + evaluate + predict run with the network cut off;
URLs refused as weights); the CUDA script is executable, parses and says so where CUDA is unavailable."""

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from faults_support import REPO  # noqa: E402

pytestmark = pytest.mark.faults

# Calls that fetch from the network (the weights of ImageNet / model-zoo models, datasets).
DOWNLOAD_CALLS = re.compile(
    r"urlopen|urllib\.request|urlretrieve|import requests|requests\.(get|post)|http\.client|"
    r"model_zoo\.get_checkpoint_url|get_checkpoint_url|torch\.hub|load_state_dict_from_url|download_url|"
    r"gdown|wget|curl |socket\.create_connection|HTTPURLHandler"
)
CHECK_CUDA = REPO / "projects" / "AdaAnchor" / "tools" / "check_cuda.sh"


def _code_files():
    roots = [REPO / "adaanchor", REPO / "projects"]
    files = [REPO / "train_net.py"] + [p for root in roots for p in root.rglob("*") if p.suffix in (".py", ".sh")]
    return [p for p in files if p.is_file()]


def test_no_code_path_calls_a_download_function():
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _code_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if DOWNLOAD_CALLS.search(line) and not line.lstrip().startswith("#")
    ]
    assert not hits, "download calls:\n" + "\n".join(hits)


def test_weights_given_as_a_url_are_refused_not_downloaded(tmp_path):
    pytest.importorskip("detectron2")
    from torch import nn

    from adaanchor.engine.checkpoint import AdaAnchorCheckpointer, CheckpointLoadError

    for url in ("https://example.com/model.pth", "detectron2://ImageNetPretrained/MSRA/R-50.pkl"):
        with pytest.raises(CheckpointLoadError, match="is a URL: AdaAnchor downloads nothing"):
            AdaAnchorCheckpointer(nn.Linear(2, 2), str(tmp_path)).resume_or_load(url, resume=False)


def test_a_tiny_run_works_with_the_network_cut_off(tmp_path, monkeypatch):
    pytest.importorskip("detectron2")
    import numpy as np
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.engine import DefaultPredictor
    from faults_support import CONFIG, make_crowdpose_root, make_tiny_source, tiny_opts

    from adaanchor.data.datasets import register_keypoint_dataset
    from adaanchor.engine import AdaAnchorTrainer, build_cfg

    root = make_crowdpose_root(
        make_tiny_source(tmp_path / "source"), tmp_path / "datasets", train_ids=(1, 2), val_ids=(3,)
    )
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during a test that forbids it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    base = root / "crowdpose"
    for split in ("train", "val"):
        name = f"faults_offline_{split}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_keypoint_dataset(name, str(base / f"json/crowdpose_{split}.json"), str(base / "images"), "crowdpose")
    cfg = build_cfg(CONFIG, tiny_opts(
        "DATASETS.TRAIN", '("faults_offline_train",)', "DATASETS.TEST", '("faults_offline_val",)',
        "SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(tmp_path / "out"),
    ))  # fmt: skip
    AdaAnchorTrainer.validate(cfg)
    trainer = AdaAnchorTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()  # one iteration, then the evaluation on the val image
    assert (tmp_path / "out" / "inference" / "faults_offline_val" / "keypoint_results.json").is_file()
    DefaultPredictor(cfg)(np.zeros((64, 64, 3), np.uint8))
    assert not attempts


def test_check_cuda_script_is_executable_parses_and_exits_cleanly_without_cuda():
    assert CHECK_CUDA.is_file() and os.access(CHECK_CUDA, os.X_OK)
    subprocess.run(["bash", "-n", str(CHECK_CUDA)], check=True)
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: run the script itself (it trains; too long for the test suite)")
    proc = subprocess.run([str(CHECK_CUDA)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CUDA is not available" in proc.stdout and "nothing run" in proc.stdout
    assert not Path(REPO / "output").joinpath("check_cuda").exists()
