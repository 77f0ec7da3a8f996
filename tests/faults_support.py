"""Helpers of the fault-injection suite (tests/test_faults_*.py, marked ``faults``): a tiny synthetic
keypoint dataset (CrowdPose skeleton, 128 px images) written as JSON + images that each test may break, and
a tiny training config."""

import copy
import json
import logging
import os
import socket
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/synthetic_dekr_adaanchor.yaml"
# A few iterations at 128 px, in the main process, every candidate kept at test time (an untrained model's
# confidence sits at the 0.01 prior), no augmentation (see the resume and two-process tests), no warm-up
# (Detectron2 stretches it over min(WARMUP_ITERS / MAX_ITER, 1) of a run, so runs of different lengths, as
# in the resume test, would see different learning rates from the first iteration).
TINY = [
    "INPUT.BOTTOM_UP.SIZE", "128", "INPUT.MIN_SIZE_TEST", "128", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "0",
    "DATALOADER.NUM_WORKERS", "0", "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0",
    "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "100000", "TEST.EVAL_PERIOD", "0",
]  # fmt: skip
NO_AUGMENTATION = [
    "INPUT.BOTTOM_UP.SCALE_RANGE", "(1.0, 1.0)", "INPUT.BOTTOM_UP.MAX_ROTATION", "0.0",
    "INPUT.BOTTOM_UP.MAX_TRANSLATION", "0.0", "INPUT.BOTTOM_UP.FLIP_PROB", "0.0",
]  # fmt: skip


def make_tiny_source(root: Path, num_images: int = 6) -> Path:
    """A synthetic CrowdPose-skeleton dataset of ``num_images`` small images under ``root`` (annotations.json,
    images/)."""
    from adaanchor.data.synthetic import ensure_synthetic_dataset

    return ensure_synthetic_dataset(
        str(root), "tiny", num_images=num_images, seed=0, keypoints="crowdpose", max_size=128, progress=False
    )


def write_split(source: Path, out_json: Path, image_dir: Path, image_ids, edit=None) -> dict:
    """Write the subset ``image_ids`` of ``source`` as ``out_json`` with its images copied into ``image_dir``;
    ``edit(data)`` may change the json first. Returns the json written."""
    data = json.loads((source / "annotations.json").read_text())
    ids = set(image_ids)
    data["images"] = [img for img in data["images"] if img["id"] in ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    image_dir.mkdir(parents=True, exist_ok=True)
    for img in data["images"]:
        shutil.copy(source / "images" / img["file_name"], image_dir / img["file_name"])
    data = copy.deepcopy(data)
    if edit is not None:
        edit(data)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(data))
    return data


def make_crowdpose_root(source: Path, root: Path, train_ids=(1, 2, 3, 4), val_ids=(5, 6)) -> Path:
    """A ``$DETECTRON2_DATASETS`` folder whose ``crowdpose_train`` / ``crowdpose_val`` are tiny subsets, so
    that ``train_net.py`` (and its spawned workers) find them without any registration code."""
    base = root / "crowdpose"
    write_split(source, base / "json" / "crowdpose_train.json", base / "images", train_ids)
    write_split(source, base / "json" / "crowdpose_val.json", base / "images", val_ids)
    return root


def tiny_opts(*extra):
    return [*TINY, *extra]


def free_dist_url() -> str:
    """A ``--dist-url`` on a free local port: Detectron2's default port is fixed per user, so two multi-process
    runs at once on one machine would collide (EADDRINUSE)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def run_train_net(out_dir, datasets_root, *args, opts=(), timeout=600, check=True):
    """``train_net.py`` on the tiny crowdpose_train / crowdpose_val under ``datasets_root``; returns the log."""
    if "--num-gpus" in args:
        args = (*args, "--dist-url", free_dist_url())
    command = [
        sys.executable, "tests/faults_train_net.py", "--config-file", CONFIG, *args,
        "OUTPUT_DIR", str(out_dir), "DATASETS.TRAIN", '("crowdpose_train",)', "DATASETS.TEST", '("crowdpose_val",)',
        *TINY, *opts,
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=REPO, env=train_env(datasets_root), capture_output=True, text=True, timeout=timeout
    )
    log = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, log[-5000:]
    return proc.returncode, log


def train_env(datasets_root, *python_paths):
    """The environment of a test subprocess; ``python_paths`` are folders of the repository to import from."""
    env = {**os.environ, "DETECTRON2_DATASETS": str(datasets_root), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    paths = [str(REPO)] + [str(REPO / p) for p in python_paths]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def resident_mib(field):
    """``VmRSS`` or ``VmHWM`` (the high-water mark) of this process in MiB, from /proc/self/status. Unlike
    ``ru_maxrss``, VmHWM starts afresh at exec, so a subprocess does not inherit its parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def logged_losses(log):
    """{iteration: {loss name: value}} from the ``LOSSES`` lines of tests/faults_train_net.py."""
    out = {}
    for line in log.splitlines():
        if line.startswith("LOSSES "):
            _, iteration, payload = line.split(" ", 2)
            out[int(iteration)] = json.loads(payload)
    return out


class Capture(logging.Handler):
    """Collects the messages of a logger and its children, also Detectron2-style loggers that do not
    propagate to pytest's caplog."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.messages, self._logger = [], logging.getLogger(name)

    def __enter__(self):
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record):
        self.messages.append(record.getMessage())

    @property
    def text(self):
        return "\n".join(self.messages)
