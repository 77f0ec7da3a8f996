"""The Associative Embedding meta-architecture: losses for both anchors, inference outputs (flip test with
concatenated tags), and the tag read-out."""

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import adaanchor.modeling  # noqa: E402,F401
from adaanchor.modeling.associative_embedding import tags_at_cells  # noqa: E402
from test_dekr_model import _cfg as dekr_cfg  # noqa: E402
from test_dekr_model import _person, _training_input  # noqa: E402  (the same bottom-up inputs)


def _cfg(*opts):
    return dekr_cfg("synthetic_dekr_adaanchor.yaml", "MODEL.META_ARCHITECTURE", "AssociativeEmbedding",
                    "MODEL.HRNET.OUT_FEATURES", ["hr2"], *opts)  # fmt: skip


def test_tags_are_read_at_the_cells_of_the_points():
    tag_maps = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    points = torch.tensor([[[[0.5, 0.5], [3.9, 2.1]], [[1.2, 2.7], [-5.0, 9.0]]]])  # (B=1, N=2, K=2, 2)
    assert tags_at_cells(tag_maps, points).tolist() == [[[0.0, 12 + 2 * 4 + 3], [2 * 4 + 1, 12 + 2 * 4 + 0]]]


@pytest.mark.parametrize("adaanchor,tag_position", [(True, "keypoint"), (True, "anchor"), (False, "keypoint")])
def test_losses_for_both_anchors_and_inference_with_flip(adaanchor, tag_position):
    model = build_model(_cfg("MODEL.ADAANCHOR.ENABLED", adaanchor, "MODEL.AE.TEST.FLIP", True,
                             "MODEL.AE.TEST.DETECTION_THRESHOLD", 0.0, "MODEL.AE.TAG_POSITION", tag_position))  # fmt: skip
    assert model.tag_at_anchor == (tag_position == "anchor")
    model.train()
    with EventStorage():
        losses = model(
            [_training_input(128, [_person(20, 30), _person(60, 50)]), _training_input(128, [_person(5, 5)])]
        )
    keypoint_losses = {k for k in losses if k.startswith("loss_keypoint")}
    assert keypoint_losses == (
        {"loss_keypoint_confidence", "loss_keypoint_offset", "loss_keypoint_local_offset"}
        if adaanchor
        else {"loss_keypoint_heatmap"}
    )
    assert {"loss_tag_pull", "loss_tag_push"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8), "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256) and inst.pred_keypoints.shape[1:] == (14, 3)
    assert 0 < len(inst) <= 30 and torch.all(inst.scores[:-1] >= inst.scores[1:])


def test_keypoint_count_must_match_the_dataset():
    with pytest.raises(ValueError, match="MODEL.AE.NUM_KEYPOINTS is 17 but dataset 'synthetic_crowdpose_val' has 14"):
        build_model(_cfg("MODEL.AE.NUM_KEYPOINTS", 17))


def _save(model, folder, name):
    from adaanchor.engine.checkpoint import AdaAnchorCheckpointer

    AdaAnchorCheckpointer(model, save_dir=str(folder)).save(name)
    return str(folder / f"{name}.pth")


@pytest.mark.parametrize("flip", [False, True])
def test_one_tagger_protocol_groups_with_the_tags_of_the_heatmap_twin(tmp_path, flip):
    torch.manual_seed(0)
    tagger_weights = _save(build_model(_cfg("MODEL.ADAANCHOR.ENABLED", False)), tmp_path, "tagger")
    opts = ("MODEL.AE.TEST.DETECTION_THRESHOLD", 0.0, "MODEL.AE.TEST.FLIP", flip)
    model = build_model(_cfg(*opts, "MODEL.AE.TEST.TAGGER_WEIGHTS", tagger_weights)).eval()
    own = build_model(_cfg(*opts)).eval()
    own.load_state_dict(model.state_dict())
    (tagger,) = model._tagger
    assert not tagger.training and not any(k.startswith("_tagger") for k in model.state_dict())
    saved = torch.load(tagger_weights, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in tagger.state_dict().items())

    image = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        with_tagger, with_own = model.candidates(image, (96, 128)), own.candidates(image, (96, 128))
        expected_maps = tagger.test_time.maps(tagger.predict_maps, image, (96, 128), stride=4, size_divisibility=32)
    np.testing.assert_array_equal(with_tagger.positions, with_own.positions)  # the same keypoints and scores ...
    np.testing.assert_array_equal(with_tagger.scores, with_own.scores)
    assert not np.allclose(with_tagger.tags, with_own.tags)  # ... grouped by other tags: the tagger's
    tags = expected_maps[0][0]["tags"]
    runs = 2 if flip else 1
    assert with_tagger.tags.shape[-1] == runs and tags.shape[1] == 14 * runs
    positions = torch.as_tensor(with_tagger.positions).float()  # (K, D, 2) feature px
    for r in range(runs):
        expected = tags_at_cells(tags[:, r * 14 : (r + 1) * 14], positions.transpose(0, 1)[None])[0].T
        np.testing.assert_allclose(with_tagger.tags[..., r], expected.numpy(), rtol=1e-6)
    poses, scores = model.poses(image, (96, 128))  # = grouping these candidates
    expected_poses, expected_scores = model.group(with_tagger)
    assert torch.equal(poses, expected_poses) and torch.equal(scores, expected_scores)


def test_a_tagger_checkpoint_of_another_model_is_rejected_naming_the_key(tmp_path):
    from adaanchor.engine.checkpoint import CheckpointLoadError

    wrong = _save(build_model(dekr_cfg("synthetic_dekr_heatmap.yaml")), tmp_path, "dekr")
    with pytest.raises(CheckpointLoadError, match="MODEL.AE.TEST.TAGGER_WEIGHTS: .*does not fit the model"):
        build_model(_cfg("MODEL.AE.TEST.TAGGER_WEIGHTS", wrong))
    with pytest.raises(CheckpointLoadError, match="MODEL.AE.TEST.TAGGER_WEIGHTS: .*not found"):
        build_model(_cfg("MODEL.AE.TEST.TAGGER_WEIGHTS", str(tmp_path / "missing.pth")))


def test_ground_truth_tags_group_by_the_nearest_annotated_person():
    from detectron2.structures import Instances, Keypoints

    model = build_model(_cfg("MODEL.AE.TEST.GROUND_TRUTH_TAGS", True, "MODEL.AE.TEST.DETECTION_THRESHOLD", 0.0)).eval()
    people = torch.zeros(2, 14, 3)
    people[0, :, :2], people[1, :, :2], people[:, :, 2] = torch.tensor([20.0, 30.0]), torch.tensor([100.0, 60.0]), 2
    image = torch.randn(1, 3, 96, 128)
    found = model.candidates(image, (96, 128), people)
    near_second = np.linalg.norm(found.positions * 4 - [100.0, 60.0], axis=-1) < np.linalg.norm(
        found.positions * 4 - [20.0, 30.0], axis=-1
    )  # feature px * stride = input px
    assert found.tags.shape[-1] == 1 and np.array_equal(found.tags[..., 0], near_second.astype(float))
    inputs = {"image": torch.zeros(3, 96, 128, dtype=torch.uint8), "height": 96, "width": 128}
    with pytest.raises(ValueError, match="GROUND_TRUTH_TAGS: the input has no ground-truth 'instances'"):
        with torch.no_grad():
            model([inputs])
    inputs["instances"] = Instances((96, 128), gt_keypoints=Keypoints(people))
    with torch.no_grad():
        (out,) = model([inputs])
    assert len(out["instances"]) >= 2  # at least one person per annotated person's tag
    with pytest.raises(ValueError, match="choose one tagger"):
        build_model(_cfg("MODEL.AE.TEST.GROUND_TRUTH_TAGS", True, "MODEL.AE.TEST.TAGGER_WEIGHTS", "x.pth"))
