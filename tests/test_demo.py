"""projects/AdaAnchor/demo.py: DefaultPredictor on images, drawings and COCO-format predictions written,
unreadable images reported with the reason and skipped (exit status 1)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("detectron2")

from adaanchor.data.synthetic import PERSON_CATEGORY_ID  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_drawings_and_predictions_and_reports_bad_files(tmp_path):
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "street.jpg"), image)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/demo.py", "--config-file", "configs/synthetic_dekr_adaanchor.yaml",
         "--input", str(tmp_path / "street.jpg"), str(tmp_path / "broken.jpg"), "--output", str(tmp_path / "vis"),
         "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]  # one image could not be read
    log = proc.stdout + proc.stderr
    assert (
        "Cannot read image" in log
        and "broken.jpg: not an image (not in an image format Pillow recognises): skipped" in log
    )
    drawing = cv2.imread(str(tmp_path / "vis" / "street.jpg"))
    assert drawing is not None and drawing.shape == image.shape
    predictions = json.loads((tmp_path / "vis" / "street.json").read_text())
    assert predictions and all(len(p["keypoints"]) == 14 * 3 and p["image_id"] == "street" for p in predictions)
    assert all(p["category_id"] == PERSON_CATEGORY_ID for p in predictions)  # the synthetic dataset's category
    assert not (tmp_path / "vis" / "broken.json").exists()


def _demo(tmp_path, *args, timeout=300):
    """The demo in a subprocess (stdout and stderr are pipes, not a terminal): (exit status, log)."""
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/demo.py", "--config-file", "configs/synthetic_dekr_adaanchor.yaml",
         *map(str, args), "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0",
         "DATASETS.SYNTHETIC.CACHE_DIR", str(tmp_path / "cache")],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def demo():
    sys.path.insert(0, str(REPO / "projects" / "AdaAnchor"))
    try:
        import demo
    finally:
        sys.path.pop(0)
    return demo


RESULT_KEYS = {"image_id", "category_id", "keypoints", "score", "bbox"}


def test_demo_globs_folders_and_one_json_with_the_dataset_image_ids(tmp_path):
    """A glob, a folder and a pattern matching nothing; --json: the image of DATASETS.TEST's json keeps its
    id (a generated two-image synthetic_crowdpose_val, through DATASETS.SYNTHETIC.CACHE_DIR), the others get
    own ids above the dataset's, in input order; the --min-score alias; no progress bar in a pipe."""
    from adaanchor.data.synthetic import ensure_synthetic_dataset

    val = Path(
        ensure_synthetic_dataset(str(tmp_path / "cache"), "synthetic_crowdpose_val", num_images=2, seed=0,
                                 keypoints="crowdpose", max_size=128, progress=False)
    )  # fmt: skip
    images = json.loads((val / "annotations.json").read_text())["images"]
    assert [(i["id"], i["file_name"]) for i in images] == [(1, "000001.jpg"), (2, "000002.jpg")]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "more").mkdir()
    (tmp_path / "imgs" / "000002.jpg").write_bytes((val / "images" / "000002.jpg").read_bytes())
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "imgs" / "street.jpg"), (rng.random((96, 128, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "more" / "zebra.png"), (rng.random((64, 80, 3)) * 255).astype(np.uint8))
    (tmp_path / "imgs" / "notes.txt").write_text("not matched by *.jpg")
    status, log = _demo(
        tmp_path, "--input", tmp_path / "imgs" / "*.jpg", tmp_path / "more", tmp_path / "none" / "*.png",
        "--output", tmp_path / "vis", "--json", tmp_path / "all.json", "--min-score", "0.0",
    )  # fmt: skip
    assert status == 1, log[-3000:]  # the pattern matching nothing counts as skipped
    assert f"No file matches {tmp_path / 'none' / '*.png'}: skipped" in log
    expected_ids = {"000002": 2, "street": 3, "zebra": 4}
    for name, image_id in expected_ids.items():
        which = "from synthetic_crowdpose_val" if name == "000002" else "own id"
        assert f"drawn (score >= 0.0), image_id {image_id} ({which})" in log, name
        assert (tmp_path / "vis" / f"{name}.jpg").is_file()
    assert not (tmp_path / "vis" / "notes.json").exists()
    results = json.loads((tmp_path / "all.json").read_text())
    assert isinstance(results, list) and results
    assert all(set(r) == RESULT_KEYS and len(r["keypoints"]) == 14 * 3 for r in results)
    assert {r["category_id"] for r in results} == {PERSON_CATEGORY_ID}
    for name, image_id in expected_ids.items():  # the per-image files and the one json agree
        per_image = json.loads((tmp_path / "vis" / f"{name}.json").read_text())
        mine = [r for r in results if r["image_id"] == image_id]
        assert len(mine) == len(per_image) > 0, name
        assert [r["keypoints"] for r in mine] == [p["keypoints"] for p in per_image]
    assert {r["image_id"] for r in results} == set(expected_ids.values())
    # not a terminal: no progress bar (tqdm's "\r" redraws and "image/s" rates) mixed into the log lines
    assert "\r" not in log and "image/s" not in log and "images:" not in log


def test_demo_annotates_a_video_frame_for_frame(tmp_path):
    """--video-input: <output>/<stem>.mp4 with the input's frame count, size and fps (read back with
    cv2.VideoCapture), no temporary file left; --json image_id = frame index."""
    fps, size, count = 12.0, (160, 120), 6
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    rng = np.random.default_rng(1)
    for _ in range(count):
        writer.write((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))
    writer.release()
    status, log = _demo(
        tmp_path, "--video-input", tmp_path / "clip.avi", "--output", tmp_path / "vis", "--json", tmp_path / "v.json"
    )
    assert status == 0, log[-3000:]
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["clip.mp4"]  # no hidden temporary left
    capture = cv2.VideoCapture(str(tmp_path / "vis" / "clip.mp4"))
    assert capture.isOpened()
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == count and all(f.shape == (size[1], size[0], 3) for f in frames)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(fps)
    assert f"{count} frames written, 0 skipped" in log
    results = json.loads((tmp_path / "v.json").read_text())
    assert all(set(r) == RESULT_KEYS and r["category_id"] == PERSON_CATEGORY_ID for r in results)
    assert sorted({r["image_id"] for r in results}) == list(range(count))


class FakeCapture:
    """cv2.VideoCapture's read(): a frame for each True of ``decodable``, then failures."""

    def __init__(self, decodable):
        self.decodable, self.index = list(decodable), 0

    def read(self):
        ok = self.index < len(self.decodable) and self.decodable[self.index]
        self.index += 1
        return (True, np.full((4, 4, 3), self.index, np.uint8)) if ok else (False, None)


def _frames(demo, decodable, count, **kwargs):
    return [(i, None if f is None else int(f[0, 0, 0]) - 1) for i, f in demo.video_frames(FakeCapture(decodable), count, **kwargs)]  # fmt: skip


def test_video_frames_reports_undecodable_frames_by_index_and_stops_at_the_end(demo):
    ok, bad = True, False
    assert _frames(demo, [ok] * 4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    # a frame that fails mid-stream: yielded as None with its index, the next frames keep theirs
    assert _frames(demo, [ok, bad, bad, ok, ok], 5) == [(0, 0), (1, None), (2, None), (3, 3), (4, 4)]
    # failures up to the announced count that no frame follows: not yielded (the caller reports the stop)
    assert _frames(demo, [ok, ok, bad, bad], 4) == [(0, 0), (1, 1)]
    # unknown count (0): the first failure ends the video; `patience` consecutive failures end it too
    assert _frames(demo, [ok, bad, ok], 0) == [(0, 0)]
    assert _frames(demo, [ok] + [bad] * 3 + [ok], 5, patience=3) == [(0, 0)]
    assert _frames(demo, [ok] + [bad] * 2 + [ok], 4, patience=3) == [(0, 0), (1, None), (2, None), (3, 3)]
    # more frames than announced: all read
    assert len(_frames(demo, [ok] * 5, 3)) == 5


def test_image_ids_and_video_output_names(demo, tmp_path):
    from detectron2.data import Metadata

    data = {"images": [{"id": 7, "file_name": "sub/a.jpg"}, {"id": 9, "file_name": "b.jpg"},
                       {"id": 3, "file_name": "x/c.jpg"}, {"id": 4, "file_name": "y/c.jpg"}]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(data))
    by_name, source = demo.dataset_image_ids(Metadata(name="toy", json_file=str(tmp_path / "gt.json")))
    assert by_name == {"a.jpg": 7, "b.jpg": 9} and "1 names listed more than once left out" in source
    assert demo.dataset_image_ids(Metadata(name="toy", json_file=str(tmp_path / "no.json"))) == (
        {},
        f"the json of dataset 'toy' ({tmp_path / 'no.json'}) does not exist",
    )
    ids = demo.assign_image_ids(["in/z.jpg", "other/a.jpg", "in/c.jpg", "in/z.jpg", "q.png"], by_name)
    assert ids == {"in/z.jpg": (10, False), "other/a.jpg": (7, True), "in/c.jpg": (11, False), "q.png": (12, False)}
    assert demo.assign_image_ids(["a.jpg", "b.jpg"], {}) == {"a.jpg": (1, False), "b.jpg": (2, False)}
    assert demo.video_output_path("vis", "clips/walk.avi") == "vis/walk.mp4"
    assert demo.video_output_path("vis/out.AVI", "clips/walk.mp4") == "vis/out.AVI"
    (tmp_path / "looks.mp4").mkdir()  # a folder named like a video is a folder
    assert demo.video_output_path(str(tmp_path / "looks.mp4"), "w.mkv") == str(tmp_path / "looks.mp4" / "w.mp4")


def test_demo_arguments(demo):
    base = ["--config-file", "c.yaml", "--output", "vis"]
    assert demo.parse_args(base + ["--input", "a.jpg", "--min-score", "0.3"]).confidence_threshold == 0.3
    args = demo.parse_args(base + ["--input", "a.jpg", "--confidence-threshold", "0.4", "MODEL.WEIGHTS", "m.pth"])
    assert args.confidence_threshold == 0.4 and args.opts == ["MODEL.WEIGHTS", "m.pth"]
    for wrong in (base + ["--input", "a.jpg", "--video-input", "v.mp4"], base[:2] + ["--input", "a.jpg"],
                  base + ["--webcam"], base):  # fmt: skip
        with pytest.raises(SystemExit):
            demo.parse_args(wrong)


def test_progress_bar_only_on_a_terminal_with_an_eta(demo, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(demo.progress(range(3), unit="frame", desc="frames")) == [0, 1, 2]
        text = stream.getvalue()
        assert ("3/3" in text and "00:00<00:00" in text) == shown and (text == "") != shown, text


def test_skeleton_is_drawn_from_the_dataset_metadata(demo):
    """Visualizer connects the joints named by DATASETS.TEST's keypoint_connection_rules."""
    import argparse

    import torch
    from detectron2.data import Metadata, MetadataCatalog
    from detectron2.structures import Instances

    metadata = MetadataCatalog.get("synthetic_crowdpose_val")
    names = metadata.keypoint_names
    assert len(names) == 14 and metadata.keypoint_connection_rules
    assert all(a in names and b in names for a, b, _ in metadata.keypoint_connection_rules)
    # one person, its joints on a circle: a rule's line passes through the midpoint of its two joints
    angles = torch.arange(14) * (2 * np.pi / 14)
    keypoints = torch.stack([100 + 60 * angles.cos(), 100 + 60 * angles.sin(), torch.ones(14)], dim=1)
    instances = Instances((200, 200), pred_keypoints=keypoints[None], scores=torch.ones(1))
    args = argparse.Namespace(confidence_threshold=0.5, keypoint_threshold=0.05, max_draw_size=2048)
    image = np.full((200, 200, 3), 128, np.uint8)
    with_rules, drawn = demo.draw(image, instances, metadata, args)
    bare = Metadata(name="bare", keypoint_names=names)
    without_rules, _ = demo.draw(image, instances, bare, args)
    assert drawn == 1 and with_rules.shape == image.shape
    a, b, _ = metadata.keypoint_connection_rules[0]
    mid = ((keypoints[names.index(a), :2] + keypoints[names.index(b), :2]) / 2).round().int().tolist()
    assert (with_rules[mid[1], mid[0]] != 128).any() and (without_rules[mid[1], mid[0]] == 128).all()


def test_webcam_without_a_camera_says_so(tmp_path):
    capture = cv2.VideoCapture(0)
    if capture.isOpened():
        capture.release()
        pytest.skip("this machine has a camera")
    status, log = _demo(tmp_path, "--webcam", timeout=120)
    assert status == 2, log[-3000:]
    assert "--webcam: cannot open camera 0 (cv2.VideoCapture(0)): no camera, or it is in use" in log


@pytest.mark.parametrize(
    "config,keep_all",
    [("configs/synthetic_krcnn_adaanchor.yaml", ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]),
     ("configs/synthetic_ae_adaanchor.yaml",
      ["MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0", "MODEL.AE.TEST.DETECTION_THRESHOLD", "0.0"])],
)  # fmt: skip
def test_demo_draws_the_poses_of_the_other_hosts_on_a_real_image(tmp_path, shared_data, config, keep_all):
    """Keypoint R-CNN and Associative Embedding (untrained, every candidate kept) on a real CrowdPose image."""
    image = shared_data / "crowdpose" / "103319.jpg"
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/demo.py", "--config-file", config, "--input", str(image),
         "--output", str(tmp_path / "vis"), "--confidence-threshold", "0.0", *keep_all],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawing, original = cv2.imread(str(tmp_path / "vis" / "103319.jpg")), cv2.imread(str(image))
    assert drawing.shape == original.shape
    assert (np.abs(drawing.astype(int) - original).max(axis=2) > 80).sum() > 500  # lines drawn, not JPEG noise
    predictions = json.loads((tmp_path / "vis" / "103319.json").read_text())
    assert predictions and all(set(p) == RESULT_KEYS and len(p["keypoints"]) == 14 * 3 for p in predictions)
