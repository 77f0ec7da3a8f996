"""What the bottom-up meta-architectures (DEKR, Associative Embedding) share with each other: input
normalisation and padding, the train / inference dispatch, and people -> Detectron2 ``Instances``."""

from typing import Dict, List, Tuple

import torch
from torch import nn

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.bottom_up_base")

from detectron2.structures import Boxes, ImageList, Instances  # noqa: E402

from adaanchor.bottom_up import keypoint_boxes  # noqa: E402


class BottomUpMetaArch(nn.Module):
    """Base of the bottom-up meta-architectures.

    Subclasses set ``self.backbone`` and implement ``predict_maps(images) -> {name: (B, C, h, w)}``,
    ``losses(batched_inputs, maps) -> {name: scalar}`` and ``poses(image, input_size)`` -> (poses (N, K, 3) x, y
    input px and joint score, scores (N,)) for one normalised, padded (1, 3, Hp, Wp) image. Outputs: training,
    the loss dict; inference, ``[{"instances": Instances}]`` at the original ``height`` x ``width`` with
    ``pred_keypoints`` (original-image px, Detectron2's continuous convention), ``scores``, ``pred_boxes`` (the
    keypoint extent) and ``pred_classes`` (zeros).
    """

    def __init__(self, pixel_mean, pixel_std):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[dict]) -> ImageList:
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=getattr(self.backbone, "padding_constraints", None),
        )

    def forward(self, batched_inputs: List[dict]):
        images = self.preprocess_image(batched_inputs)
        if not self.training:
            return self.inference(batched_inputs, images)
        return self.losses(batched_inputs, self.predict_maps(images.tensor))

    def poses(self, image: torch.Tensor, input_size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def input_poses(self, inputs: dict, image: torch.Tensor, input_size: Tuple[int, int]):
        """``poses`` of one input dict's image (a subclass may read more of the dict, e.g. annotations)."""
        return self.poses(image, input_size)

    def inference(self, batched_inputs: List[dict], images: ImageList) -> List[Dict[str, Instances]]:
        results = []
        for i, x in enumerate(batched_inputs):
            input_h, input_w = images.image_sizes[i]
            out_h, out_w = x.get("height", input_h), x.get("width", input_w)
            poses, scores = self.input_poses(x, images.tensor[i : i + 1], (input_h, input_w))
            # input px -> original image px (continuous coordinates: a plain scaling)
            poses[..., :2] = poses[..., :2] * poses.new_tensor([out_w / input_w, out_h / input_h])
            result = Instances((out_h, out_w))
            result.pred_keypoints = poses
            result.scores = scores
            result.pred_boxes = Boxes(keypoint_boxes(poses[..., :2]))
            result.pred_classes = torch.zeros(len(scores), dtype=torch.long, device=scores.device)
            results.append({"instances": result})
        return results
