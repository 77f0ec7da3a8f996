"""The Associative Embedding meta-architecture: losses for both anchors, inference outputs (flip test with
concatenated tags), and the tag read-out."""

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
