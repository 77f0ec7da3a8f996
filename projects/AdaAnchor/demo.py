#!/usr/bin/env python
"""Run a trained AdaAnchor model on images, a video or a webcam with Detectron2's DefaultPredictor and draw the
poses (the dataset's skeleton: ``keypoint_names`` and ``keypoint_connection_rules`` of DATASETS.TEST[0]).

    python projects/AdaAnchor/demo.py --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --input photo1.jpg "shots/*.jpg" folder/ --output vis/ --json vis/results.json \\
        MODEL.WEIGHTS output/synthetic_dekr_adaanchor/model_final.pth
    python projects/AdaAnchor/demo.py --config-file ... --video-input clip.mp4 --output vis/ MODEL.WEIGHTS ...
    python projects/AdaAnchor/demo.py --config-file ... --webcam MODEL.WEIGHTS ...

Exactly one source:

- ``--input``: image files, folders (their files, not hidden, in name order) and glob patterns (quoted, e.g.
  ``"imgs/*.jpg"``: expanded by this script with ``glob``, in sorted order; a pattern that matches nothing is
  reported and counts as skipped). Each image gets ``<output>/<name>.jpg`` with the poses drawn and
  ``<output>/<name>.json`` with its predictions (``image_id`` = the file name without extension).
- ``--video-input FILE``: the frames read with ``cv2.VideoCapture`` are drawn into a video with the input's fps
  and frame size, one output frame per decoded input frame: ``<output>/<video stem>.mp4`` if ``--output`` is a
  folder, ``--output`` itself if it ends in a video extension (.mp4, .m4v, .mov, .mkv: codec mp4v; .avi:
  MJPG). The video is written under a hidden temporary name beside it and renamed at the end, so a run that
  stops early leaves no complete-looking file.
- ``--webcam``: camera 0, shown with ``cv2.imshow`` until Esc or q (no ``--output``); if no camera opens the
  demo says so and exits with status 2.

``--json FILE`` also writes one COCO keypoint results file for all images or frames (a list of dicts with
``image_id``, ``category_id`` (the dataset's person category), ``keypoints``, ``score`` and ``bbox``; written
atomically). Images: a file whose name matches the basename of an image's ``file_name`` in the json of
DATASETS.TEST[0] (its metadata's ``json_file``, read if it exists; nothing is generated or downloaded) gets
that image's id; every other file gets its own id, max(dataset ids, 0) + 1, + 2, ... in input order (so the
same command gives the same ids); the log says which for each file. Video and webcam: ``image_id`` = the
frame index (from 0).

Predictions (the per-image json and ``--json``) are all the model returns (MODEL.*.TEST thresholds apply, e.g.
MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD); ``--confidence-threshold`` (alias ``--min-score``) and
``--keypoint-threshold`` only choose what is drawn. Frames larger than ``--max-draw-size`` are drawn at that
size, to keep memory bounded (video frames are then scaled back to the input's size). A progress bar with an
ETA is shown for images and videos when stderr is a terminal (none in logs and pipes). An image file that
cannot be used (missing, empty, not an image, undecodable) or a video frame that cannot be decoded is
reported, with the reason or the frame index, and skipped; the others are processed. Exit status: 0; 1 if
anything was skipped (a video whose frames stop before the count it announces included); 2 if the video or
the camera cannot be opened or written.
"""

import argparse
import glob
import json
import logging
import os
import sys
import tempfile
from collections import Counter

import cv2
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.structures import Instances
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import Visualizer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.engine import build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import instances_to_keypoint_results  # noqa: E402
from adaanchor.utils.files import write_json_atomically  # noqa: E402

logger = logging.getLogger("adaanchor.demo")

# Output video extension -> FourCC (each checked to write and read back with this OpenCV's FFmpeg backend).
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
# Consecutive unreadable frames after which a video is taken to have ended.
MAX_CONSECUTIVE_BAD_FRAMES = 10
WINDOW = "AdaAnchor"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", nargs="+", help="image files, folders or glob patterns (quoted: expanded here, sorted)"
    )
    source.add_argument("--video-input", metavar="FILE", help="a video file, read with cv2.VideoCapture")
    source.add_argument("--webcam", action="store_true", help="camera 0, shown in a window until Esc or q")
    parser.add_argument(
        "--output",
        help="folder for the drawings and predictions; with --video-input a folder or a video file name",
    )
    parser.add_argument("--json", metavar="FILE", help="one COCO keypoint results file for all inputs")
    parser.add_argument(
        "--confidence-threshold",
        "--min-score",
        dest="confidence_threshold",
        type=float,
        default=0.1,
        help="draw poses scoring at least this (--min-score: the former name)",
    )
    parser.add_argument("--keypoint-threshold", type=float, default=0.05, help="draw joints scoring at least this")
    parser.add_argument(
        "--max-draw-size",
        type=int,
        default=2048,
        help="draw images whose longest side exceeds this many px at that size (the predictions json keeps "
        "original-image px): matplotlib's canvas of an 8000 x 6000 photo alone takes gigabytes",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.webcam and args.output:
        parser.error("--webcam shows the frames in a window: --output is not used with it")
    if not args.webcam and not args.output:
        parser.error("--output is required with --input and --video-input")
    return args


def expand_inputs(inputs):
    """(files, unmatched patterns): each input file as given, each folder's files (not hidden) in name order,
    each glob pattern's matches in sorted order (a folder it matches expanded as a folder). A pattern that
    names an existing file is that file; one that matches nothing is returned in ``unmatched``."""
    paths, unmatched = [], []

    def folder_files(folder):
        return [
            os.path.join(folder, name)
            for name in sorted(os.listdir(folder))
            if not name.startswith(".") and os.path.isfile(os.path.join(folder, name))
        ]

    for path in inputs:
        if os.path.isdir(path):
            paths += folder_files(path)
        elif glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path))
            if not matches:
                unmatched.append(path)
            for match in matches:
                paths += folder_files(match) if os.path.isdir(match) else [match]
        else:
            paths.append(path)
    return paths, unmatched


def dataset_image_ids(metadata):
    """(file name -> image id, description) from the json of ``metadata`` (its ``json_file``, if it exists),
    keyed by the basename of each image's ``file_name``; names that occur twice are left out (ambiguous)."""
    json_file = metadata.get("json_file", None)
    if not json_file:
        return {}, f"dataset '{metadata.name}' has no json_file"
    if not PathManager.isfile(json_file):
        return {}, f"the json of dataset '{metadata.name}' ({json_file}) does not exist"
    with PathManager.open(json_file) as f:
        images = json.load(f).get("images", [])
    names = [os.path.basename(image["file_name"]) for image in images]
    counts = Counter(names)
    by_name = {name: image["id"] for name, image in zip(names, images) if counts[name] == 1}
    ambiguous = sum(1 for count in counts.values() if count > 1)
    note = f", {ambiguous} names listed more than once left out" if ambiguous else ""
    return by_name, f"dataset '{metadata.name}' ({json_file}: {len(by_name)} images{note})"


def assign_image_ids(paths, by_name):
    """path -> (image id, True if it is the dataset's): a file whose basename is in ``by_name`` gets that id,
    the others max(by_name's ids, 0) + 1, + 2, ... in the order of ``paths`` (a path listed twice: one id)."""
    next_id = max(by_name.values(), default=0) + 1
    ids = {}
    for path in paths:
        if path in ids:
            continue
        name = os.path.basename(path)
        if name in by_name:
            ids[path] = (by_name[name], True)
        else:
            ids[path] = (next_id, False)
            next_id += 1
    return ids


def video_output_path(output, video_path):
    """``output`` itself if it ends in a video extension (and is no folder), else ``<output>/<stem>.mp4``."""
    if os.path.splitext(output)[1].lower() in VIDEO_CODECS and not os.path.isdir(output):
        return output
    return os.path.join(output, os.path.splitext(os.path.basename(video_path))[0] + ".mp4")


def video_frames(capture, count, patience=MAX_CONSECUTIVE_BAD_FRAMES):
    """(index, frame) for each frame of ``capture``; frame None for one that could not be decoded while a
    later one could. Ends at the first failed read if ``count`` (the frames the video announces) is unknown
    (<= 0) or reached, else after ``patience`` consecutive failed reads or at ``count``: failures that no
    decoded frame follows are not yielded (the caller compares the last index with ``count``)."""
    index, pending = 0, []
    while True:
        ok, frame = capture.read()
        if ok and frame is not None:
            for bad in pending:
                yield bad, None
            pending = []
            yield index, frame
        elif count <= 0 or index >= count - 1 or len(pending) + 1 >= patience:
            return
        else:
            pending.append(index)
        index += 1


def build_predictor(cfg):
    """DefaultPredictor with MODEL.WEIGHTS loaded by AdaAnchorCheckpointer (weights-only, the file named on
    failure). Without weights the initialisation is seeded by SEED, so the same command draws the same thing."""
    weights = cfg.MODEL.WEIGHTS
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    empty = cfg.clone()
    empty.defrost()
    empty.MODEL.WEIGHTS = ""
    predictor = DefaultPredictor(empty)
    predictor.cfg = cfg
    if weights:
        AdaAnchorCheckpointer(predictor.model).resume_or_load(weights, resume=False)
    return predictor


def scaled_for_drawing(image, instances, max_size):
    """(image, instances) resized so that the longest side is at most ``max_size`` px (unchanged if it is)."""
    height, width = image.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    if scale >= 1.0:
        return image, instances
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    scaled = Instances((size[1], size[0]))
    for name, value in instances.get_fields().items():
        if name == "pred_keypoints":
            value = value.clone()
            value[..., :2] *= torch.tensor([size[0] / width, size[1] / height])
        elif name == "pred_boxes":
            value = value.clone()
            value.scale(size[0] / width, size[1] / height)
        scaled.set(name, value)
    return small, scaled


def draw(image, instances, metadata, args):
    """(BGR drawing of the poses scoring >= --confidence-threshold, at most --max-draw-size px, number drawn)."""
    shown = instances[instances.scores >= args.confidence_threshold]
    drawn_image, drawn = scaled_for_drawing(image, shown, args.max_draw_size)
    visualizer = Visualizer(drawn_image[:, :, ::-1], metadata)
    visualizer.keypoint_threshold = args.keypoint_threshold
    return visualizer.draw_instance_predictions(drawn).get_image()[:, :, ::-1], len(shown)


def progress(iterable, **kwargs):
    """tqdm's bar with an ETA on stderr, only when stderr is a terminal (logs and pipes get none)."""
    return tqdm(iterable, disable=not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)


def run_images(args, predictor, metadata, results):
    """--input: the drawings and per-image json files; ``results`` collects the --json entries. Returns the
    number of inputs skipped."""
    paths, unmatched = expand_inputs(args.input)
    for pattern in unmatched:
        logger.error(f"No file matches {pattern}: skipped")
    ids = {}
    if args.json:
        by_name, source = dataset_image_ids(metadata)
        ids = assign_image_ids(paths, by_name)
        first_own = max(by_name.values(), default=0) + 1
        logger.info(
            f"--json image ids: those of {source} for the files it lists (by file name), own ids from "
            f"{first_own} in input order for the others"
        )
    os.makedirs(args.output, exist_ok=True)
    failed = len(unmatched)
    for path in progress(paths, unit="image", desc="images"):
        try:
            image = read_image(path, format="BGR")  # BGR, as DefaultPredictor expects
        except ImageReadError as e:
            logger.error(f"Cannot read image {path}: {e.reason} ({e.detail}): skipped")
            failed += 1
            continue
        try:
            instances = predictor(image)["instances"].to("cpu")
        except Exception as e:  # reported, and the other images are still processed
            logger.exception(f"Inference failed on {path} ({image.shape[1]} x {image.shape[0]} px): {e}: skipped")
            failed += 1
            continue
        drawing, num_drawn = draw(image, instances, metadata, args)
        name = os.path.splitext(os.path.basename(path))[0]
        cv2.imwrite(os.path.join(args.output, f"{name}.jpg"), drawing)
        with open(os.path.join(args.output, f"{name}.json"), "w") as f:
            json.dump(instances_to_keypoint_results(instances, name, metadata), f)
        id_note = ""
        if args.json:
            image_id, from_dataset = ids[path]
            results += instances_to_keypoint_results(instances, image_id, metadata)
            id_note = f", image_id {image_id} ({f'from {metadata.name}' if from_dataset else 'own id'})"
        logger.info(
            f"{path}: {len(instances)} poses, {num_drawn} drawn (score >= {args.confidence_threshold}){id_note}"
        )
    return failed


def run_video(args, predictor, metadata, results):
    """--video-input: the annotated video (through a temporary name); ``results`` collects the --json entries
    (image_id = frame index). Returns the number of frames skipped (or 2 if nothing could be written)."""
    if not os.path.isfile(args.video_input):
        reason = "not a file" if os.path.exists(args.video_input) else "no such file"
        logger.error(f"Cannot open video {args.video_input}: {reason}")
        return None
    capture = cv2.VideoCapture(args.video_input)
    if not capture.isOpened():
        capture.release()
        logger.error(f"Cannot open video {args.video_input}: OpenCV cannot read it (cv2.VideoCapture)")
        return None
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not fps or fps != fps or fps <= 0:
        logger.warning(f"{args.video_input} does not say its frame rate: writing 30 fps")
        fps = 30.0
    path = video_output_path(args.output, args.video_input)
    extension = os.path.splitext(path)[1].lower()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", suffix=extension, dir=directory)
    os.close(fd)
    codec = VIDEO_CODECS[extension]
    writer = cv2.VideoWriter(tmp_path, cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    try:
        if not writer.isOpened():
            logger.error(f"OpenCV cannot write a {codec} video to {path} ({width} x {height} px, {fps:g} fps)")
            return None
        logger.info(
            f"{args.video_input}: {count if count > 0 else 'unknown number of'} frames, {width} x {height} px, "
            f"{fps:g} fps -> {path} ({codec})"
        )
        skipped, written, poses, last = 0, 0, 0, -1
        frames = video_frames(capture, count)
        for index, frame in progress(frames, total=count if count > 0 else None, unit="frame", desc="frames"):
            last = index
            if frame is None:
                logger.error(f"Frame {index} of {args.video_input} cannot be decoded: skipped")
                skipped += 1
                continue
            if frame.shape[:2] != (height, width):
                size = f"{frame.shape[1]} x {frame.shape[0]} px"
                logger.error(f"Frame {index} of {args.video_input} is {size}, not {width} x {height}: skipped")
                skipped += 1
                continue
            instances = predictor(frame)["instances"].to("cpu")
            drawing, num_drawn = draw(frame, instances, metadata, args)
            if drawing.shape[:2] != frame.shape[:2]:  # drawn at --max-draw-size: back to the input's size
                drawing = cv2.resize(drawing, (width, height), interpolation=cv2.INTER_LINEAR)
            writer.write(drawing)
            written += 1
            poses += len(instances)
            if args.json:
                results += instances_to_keypoint_results(instances, index, metadata)
            logger.debug(f"frame {index}: {len(instances)} poses, {num_drawn} drawn")
        if count > 0 and last < count - 1:
            logger.error(
                f"{args.video_input} announces {count} frames, but frames {last + 1} to {count - 1} cannot be "
                f"read: stopped after frame {last}"
            )
            skipped += count - 1 - last
        writer.release()
        if written == 0:
            logger.error(f"No frame of {args.video_input} could be decoded: {path} not written")
            return None
        os.chmod(tmp_path, 0o644)  # mkstemp's 0600 otherwise
        os.replace(tmp_path, path)
        logger.info(f"{path}: {written} frames written, {skipped} skipped, {poses} poses")
        return skipped
    finally:
        writer.release()
        capture.release()
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)


def run_webcam(args, predictor, metadata, results, capture):
    """--webcam: frames of camera 0 drawn and shown until Esc or q. Returns 0, or None if it cannot show them."""
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                logger.error(f"Camera 0 delivered no frame after {index} frames: stopped")
                break
            instances = predictor(frame)["instances"].to("cpu")
            drawing, _ = draw(frame, instances, metadata, args)
            if args.json:
                results += instances_to_keypoint_results(instances, index, metadata)
            try:
                cv2.imshow(WINDOW, drawing)
            except cv2.error as e:
                logger.error(f"Cannot show a window (cv2.imshow; no display?): {e}")
                return None
            if (cv2.waitKey(1) & 0xFF) in (27, ord("q")):
                break
            index += 1
    finally:
        capture.release()
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass
    return 0


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="adaanchor")
    cfg = build_cfg(args.config_file, args.opts)
    camera = None
    if args.webcam:  # before the model is built: fail fast
        camera = cv2.VideoCapture(0)
        if not camera.isOpened():
            logger.error("--webcam: cannot open camera 0 (cv2.VideoCapture(0)): no camera, or it is in use")
            return 2
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model is randomly initialised")
    predictor = build_predictor(cfg)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused")
    results = []
    with logging_redirect_tqdm(loggers=[logging.getLogger("adaanchor")]):
        if args.input:
            skipped = run_images(args, predictor, metadata, results)
        elif args.video_input:
            skipped = run_video(args, predictor, metadata, results)
        else:
            skipped = run_webcam(args, predictor, metadata, results, camera)
    if skipped is None:
        return 2
    if args.json:
        write_json_atomically(args.json, results)
        logger.info(f"{args.json}: {len(results)} predictions")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
