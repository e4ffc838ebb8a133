"""A torch-only video processor for the Qwen-Omni processors (no torchvision).

The stock `Qwen2VLVideoProcessor` imports torchvision, which cannot be installed beside the CPU torch here. This
class reproduces its math for already-sampled frames: `smart_resize` to a multiple of patch_size * merge_size,
bicubic antialiased resize of the uint8 frames (torchvision calls the same `interpolate` kernel on uint8 CPU
tensors), fused rescale + normalise, and the same patch layout (temporal_patch_size frames, merge_size x merge_size
spatial groups), returning `pixel_values_videos` and `video_grid_thw`. Frame sampling is not done here: the media
decoder already sampled the frames, and the caller passes the sampling `fps` to the processor for timing.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.video_processing_utils import VideoProcessorMixin

VIDEO_PROCESSOR_FILE = "video_preprocessor_config.json"

# Patch size per family: Qwen2.5-Omni's vision tower uses 14 px patches, Qwen3-Omni's 16 px.
PATCH_SIZE = {"qwen2_5_omni": 14, "qwen3_omni": 16}


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) divisible by `factor`, area within [min_pixels, max_pixels], aspect ratio kept (Qwen2-VL's rule)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"frame {height}x{width}: aspect ratio above 200 is not supported by the Qwen vision tower")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class TorchQwenVideoProcessor(VideoProcessorMixin):
    """Drop-in for `Qwen2VLVideoProcessor` on pre-sampled frames, using torch only."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(
        self,
        patch_size: int = 16,
        temporal_patch_size: int = 2,
        merge_size: int = 2,
        min_pixels: int = 128 * 32 * 32,
        max_pixels: int = 768 * 32 * 32,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        size = kwargs.pop("size", None) or {}
        min_pixels = int(size.get("shortest_edge", min_pixels))
        max_pixels = int(size.get("longest_edge", max_pixels))
        # Keys of the stock config we do not use (resample, do_resize, ...) are accepted and dropped so that a real
        # checkpoint's preprocessor_config.json loads unchanged.
        super().__init__()
        self.patch_size = int(patch_size)
        self.temporal_patch_size = int(temporal_patch_size)
        self.merge_size = int(merge_size)
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        self.image_mean = list(image_mean if image_mean is not None else OPENAI_CLIP_MEAN)
        self.image_std = list(image_std if image_std is not None else OPENAI_CLIP_STD)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_processor_type": type(self).__name__, "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size, "merge_size": self.merge_size,
            "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
            "image_mean": self.image_mean, "image_std": self.image_std,
        }

    def __call__(self, videos, **kwargs: Any) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def preprocess(self, videos, size: dict | None = None, return_tensors: str | None = "pt",
                   **kwargs: Any) -> BatchFeature:
        """videos: one or a list of (T, H, W, 3) uint8 arrays/tensors -> pixel_values_videos, video_grid_thw.

        `size` ({"shortest_edge": min_pixels, "longest_edge": max_pixels}) overrides the configured pixel range.
        Other processor kwargs (fps, return_metadata, ...) are accepted and ignored: frames arrive pre-sampled.
        """
        size = dict(size or {})
        min_pixels = int(size.get("shortest_edge") or self.min_pixels)
        max_pixels = int(size.get("longest_edge") or self.max_pixels)
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
            videos = [videos]
        patches, grids = [], []
        for video in videos:
            flat, grid = self._one(video, min_pixels, max_pixels)
            patches.append(flat)
            grids.append(grid)
        data = {"pixel_values_videos": torch.cat(patches, dim=0), "video_grid_thw": torch.tensor(grids)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _one(self, video, min_pixels: int, max_pixels: int) -> tuple[torch.Tensor, list[int]]:
        if isinstance(video, torch.Tensor):
            frames = video
        else:
            with warnings.catch_warnings():
                # Cached clips are read-only numpy arrays; the frames are only read here (permute, resize), so
                # sharing their memory is safe and torch's "not writable" warning does not apply.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                frames = torch.as_tensor(np.asarray(video))
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"video must be (T, H, W, 3) RGB frames, got shape {tuple(frames.shape)}")
        if frames.dtype != torch.uint8:
            raise ValueError(f"video frames must be uint8 (0..255), got {frames.dtype}")
        frames_TCHW = frames.permute(0, 3, 1, 2).contiguous()
        height, width = frames_TCHW.shape[-2:]
        factor = self.patch_size * self.merge_size
        new_h, new_w = smart_resize(height, width, factor, min_pixels, max_pixels)
        if (new_h, new_w) != (height, width):
            # uint8 in, uint8 out: the same rounding as torchvision's resize of uint8 video tensors.
            frames_TCHW = F.interpolate(frames_TCHW, size=(new_h, new_w), mode="bicubic", antialias=True,
                                        align_corners=False)
        # Fused rescale + normalise, as the stock backend does: (x - 255 * mean) / (255 * std).
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.image_std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        x_TCHW = (frames_TCHW.to(torch.float32) - mean) / std
        return self._patchify(x_TCHW)

    def _patchify(self, x_TCHW: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        tps, ps, ms = self.temporal_patch_size, self.patch_size, self.merge_size
        if pad := -x_TCHW.shape[0] % tps:
            # Odd frame counts repeat the last frame, like the stock processor.
            x_TCHW = torch.cat([x_TCHW, x_TCHW[-1:].expand(pad, -1, -1, -1)], dim=0)
        t, c, h, w = x_TCHW.shape
        gt, gh, gw = t // tps, h // ps, w // ps
        p = x_TCHW.view(gt, tps, c, gh // ms, ms, ps, gw // ms, ms, ps)
        # (gt, gh/ms, gw/ms, ms, ms, c, tps, ps, ps): merge groups contiguous, channel-major patch vectors.
        p = p.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return p.reshape(gt * gh * gw, c * tps * ps * ps), [gt, gh, gw]

    def num_video_tokens(self, num_frames: int, height: int, width: int) -> int:
        """LLM tokens one video of this size becomes (after the merge_size x merge_size merge)."""
        h, w = smart_resize(height, width, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels)
        gt = -(-num_frames // self.temporal_patch_size)
        return gt * (h // self.patch_size) * (w // self.patch_size) // self.merge_size**2
