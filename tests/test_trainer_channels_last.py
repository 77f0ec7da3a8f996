"""The trainer keeps CPU models channels-last: same losses, gradients and inference outputs as NCHW."""

import copy

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Instances, Keypoints  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import adaanchor.modeling  # noqa: E402,F401
from adaanchor.engine.trainer import use_channels_last  # noqa: E402
from test_dekr_model import _cfg as dekr_cfg  # noqa: E402


def _cfg(*opts):
    return dekr_cfg("synthetic_dekr_adaanchor.yaml", *opts)


def _batch(size=128):
    torch.manual_seed(1)
    inputs = []
    for x0 in (20, 60):
        inst = Instances((size, size))
        kpts = torch.tensor([[x0 + 6.0 * (k % 4), 30 + 6.0 * (k // 4), 2] for k in range(14)]).reshape(1, 14, 3)
        inst.gt_keypoints = Keypoints(kpts)
        inst.gt_areas = torch.full((1,), 2000.0)
        inputs.append({"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8), "instances": inst})
    return inputs


@pytest.mark.parametrize("adaanchor,block", [(True, "plain"), (False, "plain"), (True, "adaptive")])
def test_channels_last_model_matches_nchw(adaanchor, block):
    torch.manual_seed(0)
    nchw = build_model(_cfg("MODEL.ADAANCHOR.ENABLED", adaanchor, "MODEL.DEKR.OFFSET_BLOCK", block))
    nhwc = use_channels_last(copy.deepcopy(nchw), "cpu")
    convs = [p for p in nhwc.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    losses = []
    for model in (nchw, nhwc):
        model.train()
        with EventStorage():
            loss = model(_batch())
        sum(loss.values()).backward()
        losses.append(loss)
    for name in losses[0]:
        torch.testing.assert_close(losses[1][name], losses[0][name], rtol=1e-4, atol=1e-6)
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        err = (b.grad - a.grad).abs().max() / a.grad.abs().max().clamp(min=1e-12)
        # float32 NCHW itself is up to 1.4 % (of the largest entry) off a float64 run: rounding through the backward pass
        assert err < 5e-2, (name, float(err))
    outputs = []
    for model in (nchw, nhwc):
        model.eval()
        with torch.no_grad():
            image = _batch()[0]["image"]
            outputs.append(model([{"image": image, "height": 128, "width": 128}])[0]["instances"])
    assert len(outputs[0]) == len(outputs[1])
    torch.testing.assert_close(outputs[1].pred_keypoints, outputs[0].pred_keypoints, rtol=1e-3, atol=1e-2)


def test_gpu_models_are_left_as_they_are():
    model = torch.nn.Conv2d(3, 4, 3)
    use_channels_last(model, "cuda:0")
    assert model.weight.is_contiguous()
