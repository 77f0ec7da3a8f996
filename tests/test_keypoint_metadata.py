"""Keypoint metadata: the built-in specs are consistent and broken metadata fails with a named field."""

import pytest

from adaanchor.data.keypoints import (
    COCO_SPEC,
    CROWDPOSE_SPEC,
    KeypointSpec,
    get_keypoint_spec,
    validate_keypoint_metadata,
)


def test_builtin_specs():
    assert COCO_SPEC.num_keypoints == 17 and len(COCO_SPEC.oks_sigmas) == 17
    assert CROWDPOSE_SPEC.num_keypoints == 14 and len(CROWDPOSE_SPEC.skeleton) == 15
    assert get_keypoint_spec("ochuman") is COCO_SPEC
    # flip indices are an involution that swaps left and right
    for spec in (COCO_SPEC, CROWDPOSE_SPEC):
        idx = spec.flip_indices
        assert [idx[i] for i in idx] == list(range(spec.num_keypoints))
        for i, j in enumerate(idx):
            a, b = spec.keypoint_names[i], spec.keypoint_names[j]
            assert a.replace("left", "X").replace("right", "X") == b.replace("left", "X").replace("right", "X")
    # CrowdPose: head and neck are not counted in num_keypoints, and unpaired under flip
    assert CROWDPOSE_SPEC.counted_mask.sum() == 12
    head, neck = CROWDPOSE_SPEC.keypoint_names.index("head"), CROWDPOSE_SPEC.keypoint_names.index("neck")
    assert CROWDPOSE_SPEC.flip_indices[head] == head and CROWDPOSE_SPEC.flip_indices[neck] == neck
    # every link is in range, and the CrowdPose skeleton touches every keypoint
    assert {i for link in CROWDPOSE_SPEC.skeleton_indices for i in link} == set(range(14))


def test_unknown_spec_lists_known_names():
    with pytest.raises(KeyError, match="crowdpose"):
        get_keypoint_spec("mpii")


NAMES = ("nose", "left_eye", "right_eye")


@pytest.mark.parametrize(
    "flip_map, skeleton, sigmas, message",
    [
        ((("left_eye", "right_eye"),), ((0, 1),), (0.1, 0.1), "oks_sigmas has 2 values for 3"),
        ((), ((0, 1),), (0.1, 0.1, 0.1), "incomplete: 'left_eye' and 'right_eye'"),
        ((("left_eye", "right_eye"), ("right_eye", "nose")), (), (0.1,) * 3, "not symmetric"),
        ((("left_eye", "left_eye"),), (), (0.1,) * 3, "with itself"),
        ((("left_eye", "mouth"),), (), (0.1,) * 3, "unknown keypoint 'mouth'"),
        ((("left_eye", "right_eye"),), ((0, 3),), (0.1,) * 3, "skeleton index 3 out of range"),
        ((("left_eye", "right_eye"),), (("nose", "chin"),), (0.1,) * 3, "skeleton names unknown keypoint 'chin'"),
        ((("left_eye", "right_eye"),), (), (0.1, float("nan"), 0.1), "positive and finite"),
    ],
)
def test_validation_names_dataset_and_field(flip_map, skeleton, sigmas, message):
    with pytest.raises(ValueError, match="dataset 'mine'") as info:
        validate_keypoint_metadata("mine", NAMES, flip_map, skeleton, sigmas)
    assert message in str(info.value)


def test_spec_validates_on_construction():
    with pytest.raises(ValueError, match="dataset 'faces'.*oks_sigmas"):
        KeypointSpec("faces", NAMES, (("left_eye", "right_eye"),), (), (0.1,))
