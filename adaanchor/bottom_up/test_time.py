"""The test-time loop of bottom-up models: multi-scale inputs and the flip test (torch only).

A model is seen through ``predict(images) -> {name: (1, C, h, w) map}`` at one stride. The flip test runs it on
the mirrored input too and brings every output back with its own flip function (a heatmap reorders its
types, an offset field also negates x, a tag map may be kept beside the plain one), so the loop knows no map
names. Lengths: input px for images, feature-map px inside the maps.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["FlipTest", "TestTimeAugmentation", "rescale_and_pad", "shift_flipped_image"]

Maps = Dict[str, torch.Tensor]


@dataclass
class FlipTest:
    """How each output of a mirrored run comes back to the original frame.

    Attributes:
        back: output name -> function taking the mirrored run's (1, C, h, w) map to the original frame.
        concatenate: outputs whose two runs are concatenated along channels (e.g. AE tags) instead of
            averaged (everything else).
        shift: left shift of the mirrored input, input px (see :func:`shift_flipped_image`).
    """

    back: Dict[str, Callable[[torch.Tensor], torch.Tensor]]
    concatenate: Tuple[str, ...] = ()
    shift: int = 0

    def merge(self, plain: Maps, mirrored: Maps) -> Maps:
        """One set of maps from the plain and the mirrored run."""
        out = {}
        for name, value in plain.items():
            if name not in self.back:
                raise KeyError(f"flip test: no flip function for the output '{name}'")
            back = self.back[name](mirrored[name])
            out[name] = torch.cat([value, back], dim=1) if name in self.concatenate else (value + back) / 2
        return out


@dataclass
class TestTimeAugmentation:
    """Multi-scale and flip test around a model's ``predict``.

    Attributes:
        scales: input scale factors; the caller merges the detections of all scales.
        flip: the flip test, or None.
    """

    __test__ = False  # not a pytest test class, despite its name

    scales: Tuple[float, ...] = (1.0,)
    flip: Optional[FlipTest] = field(default=None)

    def maps(
        self,
        predict: Callable[[torch.Tensor], Maps],
        image: torch.Tensor,
        input_size: Tuple[int, int],
        *,
        stride: int,
        size_divisibility: int,
    ) -> List[Tuple[Maps, Tuple[float, float]]]:
        """The maps of one image at every scale, cropped to the cells that cover the image.

        Args:
            predict: the model's network, (1, 3, H, W) normalised input -> maps at ``stride``.
            image: (1, 3, Hp, Wp) normalised input, padded; the image occupies the top-left ``input_size``.
            input_size: (h, w) of the image inside the padded tensor, input px.
            stride: the maps' stride, input px per feature px.
            size_divisibility: the network's input size multiple (scaled inputs are zero-padded to it).
        Returns:
            per scale, (maps, (x ratio, y ratio) of the scaled input to the input).
        """
        h, w = input_size
        out = []
        for scale in self.scales:
            scaled, ratio = rescale_and_pad(image[..., :h, :w], scale, size_divisibility)
            maps = predict(scaled)
            if self.flip is not None:
                mirrored = predict(shift_flipped_image(scaled.flip(-1), self.flip.shift))
                maps = self.flip.merge(maps, mirrored)
            # keep the cells that cover the image, not the padding (cell j covers input px [j t, (j + 1) t))
            rows, cols = math.ceil(h * ratio[1] / stride), math.ceil(w * ratio[0] / stride)
            out.append(({k: v[..., :rows, :cols] for k, v in maps.items()}, ratio))
        return out


def rescale_and_pad(image: torch.Tensor, scale: float, divisibility: int) -> Tuple[torch.Tensor, Tuple[float, float]]:
    """Resize (1, 3, h, w) by ``scale`` and zero-pad to ``divisibility``; returns it and the (x, y) ratios."""
    h, w = image.shape[-2:]
    if scale != 1.0:
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        image = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=False)
    new_h, new_w = image.shape[-2:]
    d = max(1, divisibility)
    pad_h, pad_w = (-new_h) % d, (-new_w) % d
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
    return image, (new_w / w, new_h / h)


def shift_flipped_image(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift a horizontally flipped batch (B, C, H, W) left by ``shift`` px (zeros enter at the right).

    Why: a stride-2 3x3 convolution with padding 1 centres output i on input pixel 2i, so a stride-t
    network centres feature cell j on input pixel t*j, not on the cell centre t*j + (t-1)/2. Mirroring
    the input moves that bias to the other side: an object at pixel X shows up, in the mirrored-back
    outputs, at the cell of pixel X - (t - 1). Shifting the mirrored input left by t - 1 px (HRNet and
    ResNet stems: t = 4, shift 3) aligns the two runs.
    """
    if shift <= 0:
        return images
    shifted = torch.zeros_like(images)
    shifted[..., : images.shape[-1] - shift] = images[..., shift:]
    return shifted
