"""Fault injection, data (issue 9, item 3): missing, truncated, corrupt and empty images; grayscale, RGBA and
16-bit PNGs; images without people and with 100 people; zero-area boxes; a json without categories.

Rule under test (README, "Data"): problems in a json stop the run at load, naming the file and the id;
an image that cannot be read is named in a warning and skipped in training (counted in one line at the end
of training) and stops an evaluation."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("detectron2")

from faults_support import CONFIG, make_tiny_source, tiny_opts, write_split  # noqa: E402
from faults_support import Capture as _Capture  # noqa: E402

from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.data.keypoint_json import KeypointJsonError, load_keypoint_json  # noqa: E402

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_tiny_source(tmp_path_factory.mktemp("faults_data_source"))


def _register(name, json_file, image_root):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_keypoint_dataset(name, str(json_file), str(image_root), "crowdpose")


def _mapper(train_name, is_train=True):
    from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper
    from adaanchor.engine import build_cfg

    cfg = build_cfg(CONFIG, tiny_opts("DATASETS.TRAIN", f'("{train_name}",)', "DATASETS.TEST", "()"))
    return cfg, BottomUpDatasetMapper(cfg, is_train=is_train)


def _split(source, tmp_path, ids=(1, 2), edit=None, name="faults_data"):
    data = write_split(source, tmp_path / "ann.json", tmp_path / "images", ids, edit=edit)
    _register(name, tmp_path / "ann.json", tmp_path / "images")
    return data


# --------------------------------------------------------------------------------------------- bad files


def test_missing_image_file_is_skipped_in_training_and_stops_an_evaluation(source, tmp_path):
    data = write_split(source, tmp_path / "ann.json", tmp_path / "images", [1, 2])
    (tmp_path / "images" / data["images"][0]["file_name"]).unlink()
    with _Capture("adaanchor.data.keypoint_json") as log:
        dicts = load_keypoint_json(str(tmp_path / "ann.json"), str(tmp_path / "images"), 14, missing_images="skip")
    assert [d["image_id"] for d in dicts] == [2]
    assert "skipping 1 image(s) whose file is missing (id 1: " in log.text and "000001.jpg" in log.text
    with pytest.raises(KeypointJsonError, match=r"1 image file\(s\) missing \(id 1: .*000001.jpg"):
        load_keypoint_json(str(tmp_path / "ann.json"), str(tmp_path / "images"), 14, missing_images="error")


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncated", "undecodable"),  # a JPEG cut in half
        ("garbage", "not an image"),  # bytes that are no image format
        ("zero_bytes", "empty"),  # a zero-size file
        ("deleted", "missing"),  # deleted after the dataset was loaded
    ],
)
def test_unreadable_training_image_is_named_skipped_and_counted(source, tmp_path, damage, reason):
    from adaanchor.data.skips import reset_skip_counts, skip_counts

    _split(source, tmp_path)
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get("faults_data")
    path = Path(dicts[0]["file_name"])
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a jpeg" * 10)
    elif damage == "zero_bytes":
        path.write_bytes(b"")
    else:
        path.unlink()
    _, mapper = _mapper("faults_data")
    reset_skip_counts()
    with _Capture("adaanchor.data.bottom_up_mapper") as log:
        assert mapper(dicts[0]) is None  # Detectron2's loader draws another sample
        assert mapper(dicts[1]) is not None
    assert f"Skipping unreadable training image image id {dicts[0]['image_id']} ({path}): {reason}" in log.text
    assert skip_counts()[reason] == 1 and sum(skip_counts().values()) == 1
    # an evaluation image that cannot be read stops the evaluation, naming it
    _, test_mapper = _mapper("faults_data", is_train=False)
    with pytest.raises(RuntimeError, match=rf"Cannot read evaluation image image id 1 \(.*000001.jpg\): {reason}"):
        test_mapper(dicts[0])


def test_zero_size_image_in_the_json_stops_at_load_naming_file_and_id(source, tmp_path):
    def zero_width(data):
        data["images"][1]["width"] = 0

    write_split(source, tmp_path / "ann.json", tmp_path / "images", [1, 2], edit=zero_width)
    with pytest.raises(KeypointJsonError, match=r"ann.json: image id 2: invalid width/height 0/"):
        load_keypoint_json(str(tmp_path / "ann.json"), str(tmp_path / "images"), 14)


# ---------------------------------------------------------------------------------------- odd image modes


def _write_png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_grayscale_rgba_and_16_bit_pngs_read_as_8_bit_three_channel_images(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    assert np.array_equal(
        read_image(str(_write_png(tmp_path / "g.png", gray)), "RGB"), np.repeat(gray[..., None], 3, 2)
    )
    bgra = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgb = read_image(str(_write_png(tmp_path / "rgba.png", bgra)), "RGB")
    assert np.array_equal(rgb, bgra[:, :, 2::-1])  # alpha dropped, colours kept
    # 16-bit grayscale: before, Pillow's conversion clipped it to all-white; now scaled to 8 bit
    gray16 = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
    image = read_image(str(_write_png(tmp_path / "g16.png", gray16)), "BGR")
    expected = np.rint(gray16 * (255.0 / 65535.0)).astype(np.uint8)
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert np.array_equal(image[:, :, 0], expected) and image.mean() < 200
    # 16-bit colour: reduced to 8 bit (Pillow takes the high byte), channel order kept
    bgr16 = rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    image = read_image(str(_write_png(tmp_path / "c16.png", bgr16)), "BGR")
    assert np.abs(image.astype(int) - (bgr16 >> 8)).max() <= 1


def test_training_maps_grayscale_rgba_and_16_bit_images(source, tmp_path):
    data = _split(source, tmp_path, ids=(1, 2, 3))
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get("faults_data")
    for record, convert in zip(dicts, ("gray", "rgba", "16bit")):
        bgr = cv2.imread(record["file_name"])
        array = {
            "gray": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
            "rgba": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
            "16bit": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257,
        }[convert]
        png = Path(record["file_name"]).with_suffix(".png")
        _write_png(png, array)
        record["file_name"] = str(png)
    _, mapper = _mapper("faults_data")
    for record in dicts:
        out = mapper(record)
        assert out is not None and out["image"].shape == (3, 128, 128), record["file_name"]
        assert out["image"].float().mean() < 250  # not the all-white image of a clipped 16-bit PNG
    assert len(data["images"]) == 3


# ---------------------------------------------------------------------------- people: none, many, zero area


def _training_losses(cfg, mapped):
    import torch
    from detectron2.utils.events import EventStorage

    from adaanchor.engine import AdaAnchorTrainer

    torch.manual_seed(0)
    model = AdaAnchorTrainer.build_model(cfg)
    model.train()
    with EventStorage(0):
        losses = model(mapped)
    assert losses, "no losses"
    return {k: float(v.detach()) for k, v in losses.items()}


def test_images_without_people_and_with_100_people_train_with_finite_losses(source, tmp_path):
    def crowd(data):
        people = [a for a in data["annotations"] if a["image_id"] == 2]
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]  # image 1: no one
        rng = np.random.default_rng(0)
        next_id = max(a["id"] for a in data["annotations"]) + 1
        width, height = data["images"][1]["width"], data["images"][1]["height"]
        while sum(a["image_id"] == 2 for a in data["annotations"]) < 100:  # image 2: 100 people
            copy = json.loads(json.dumps(people[len(data["annotations"]) % len(people)]))
            shift = rng.uniform(-10, 10, size=2)
            kp = copy["keypoints"]
            for k in range(0, len(kp), 3):
                if kp[k + 2]:
                    kp[k] = float(np.clip(kp[k] + shift[0], 0, width - 1))
                    kp[k + 1] = float(np.clip(kp[k + 1] + shift[1], 0, height - 1))
            copy["id"], next_id = next_id, next_id + 1
            data["annotations"].append(copy)

    _split(source, tmp_path, edit=crowd)
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get("faults_data")
    assert [len(d["annotations"]) for d in dicts] == [0, 100]
    cfg, mapper = _mapper("faults_data")
    mapped = [mapper(d) for d in dicts]
    assert len(mapped[0]["instances"]) == 0 and len(mapped[1]["instances"]) > 50
    for batch in ([mapped[0]], mapped):  # a batch of no one at all, and the crowd
        losses = _training_losses(cfg, batch)
        assert all(math.isfinite(v) for v in losses.values()), losses


def test_zero_area_bbox_is_counted_at_load_and_trains_with_finite_losses(source, tmp_path):
    def zero_area(data):
        for ann in data["annotations"][:3]:
            ann["bbox"][2] = 0
            ann.pop("area", None)

    with _Capture("adaanchor.data.keypoint_json") as log:
        _split(source, tmp_path, edit=zero_area)
        from detectron2.data import DatasetCatalog

        dicts = DatasetCatalog.get("faults_data")
    assert "ann.json: 3 persons with labelled keypoints and a zero-area bbox" in log.text
    cfg, mapper = _mapper("faults_data")
    losses = _training_losses(cfg, [mapper(d) for d in dicts])
    assert all(math.isfinite(v) for v in losses.values()), losses


def test_json_without_categories_trains_but_cannot_be_an_evaluation_set(source, tmp_path):
    """Training needs no categories (one person class); evaluation does (pycocotools' results index copies
    them), so as DATASETS.TEST it is refused at start-up, naming the file, before any training."""
    from adaanchor.engine import AdaAnchorTrainer, build_cfg
    from adaanchor.engine.validation import StartupValidationError

    data = _split(source, tmp_path, edit=lambda d: d.pop("categories"))
    assert "categories" not in data
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get("faults_data")
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == {0}
    cfg, mapper = _mapper("faults_data")
    assert all(mapper(d) is not None for d in dicts)
    AdaAnchorTrainer.validate(cfg)  # as a training set: fine
    cfg = build_cfg(CONFIG, tiny_opts("DATASETS.TRAIN", '("faults_data",)', "DATASETS.TEST", '("faults_data",)'))
    with pytest.raises(
        StartupValidationError, match=r"DATASETS.TEST dataset 'faults_data' .*ann.json has no 'categories'"
    ):
        AdaAnchorTrainer.validate(cfg)


def test_training_reports_skipped_samples_at_the_end(source, tmp_path):
    """One iteration over two images, one of them corrupt: training runs and its last lines count the skip."""
    from adaanchor.engine import AdaAnchorTrainer, build_cfg

    _split(source, tmp_path, ids=(1, 2))
    (tmp_path / "images" / "000001.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    cfg = build_cfg(CONFIG, tiny_opts(
        "DATASETS.TRAIN", '("faults_data",)', "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "1",
        "SOLVER.IMS_PER_BATCH", "2", "OUTPUT_DIR", str(tmp_path / "out"),
    ))  # fmt: skip
    trainer = AdaAnchorTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with _Capture("adaanchor") as log:
        trainer.train()
    assert "Skipping unreadable training image image id 1" in log.text
    summary = [m for m in log.messages if m.startswith("Training skipped")]
    assert summary and summary[-1].startswith("Training skipped") and "undecodable" in summary[-1]
    assert int(summary[-1].split()[2]) >= 1  # a batch of 2 drawn from 2 images meets the corrupt one
