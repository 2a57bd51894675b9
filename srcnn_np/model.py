"""The SRCNN forward pass on top of the kernels, and the image-level `upscale`.

    lr (H, W) float32
    -> bicubic_upsample            (sH, sW)
    -> conv1 9x9 1->64 + ReLU      (sH, sW, 64)
    -> conv2 5x5 64->32 + ReLU     (sH, sW, 32)
    -> conv3 5x5 32->1             (sH, sW)       not clipped
"""
from dataclasses import dataclass

import numpy as np

from . import kernels
from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .weights import Weights, load_weights

MODES = ("rgb", "y")


@dataclass(frozen=True)
class KernelWeights:
    """Weights in the kernels' layout: (KH, KW, Cin, Cout) float32, C-contiguous."""

    w1: np.ndarray  # (9, 9, 1, 64)
    b1: np.ndarray  # (64,)
    w2: np.ndarray  # (5, 5, 64, 32)
    b2: np.ndarray  # (32,)
    w3: np.ndarray  # (5, 5, 32, 1)
    b3: np.ndarray  # (1,)
    scale: int

    @classmethod
    def from_weights(cls, w: Weights):
        def hwio(oihw):
            return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0), dtype=np.float32)

        return cls(hwio(w.conv1_weight), w.conv1_bias, hwio(w.conv2_weight), w.conv2_bias,
                   hwio(w.conv3_weight), w.conv3_bias, w.scale)


def forward_stages(lr: np.ndarray, kw: KernelWeights) -> dict:
    """Every stage of the network for one (H, W) float32 channel, channels-last."""
    up = kernels.bicubic_upsample(np.ascontiguousarray(lr, dtype=np.float32), kw.scale)
    conv1 = kernels.conv2d(up[:, :, None], kw.w1, kw.b1, True)
    conv2 = kernels.conv2d(conv1, kw.w2, kw.b2, True)
    out = kernels.conv2d(conv2, kw.w3, kw.b3, False)[:, :, 0]
    return {"upsampled": up, "conv1": conv1, "conv2": conv2, "output": out}


def srcnn_forward(lr: np.ndarray, kw: KernelWeights) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32, the network's raw (unclipped) output."""
    return forward_stages(lr, kw)["output"]


def to_float01(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1] (floats are taken as already in [0, 1])."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535)
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError("image holds NaN or inf values")
        return a
    raise TypeError(f"unsupported image dtype {a.dtype}: use uint8, uint16 or float")


def resolve_weights(weights, scale: int = 2) -> KernelWeights:
    """None (shipped weights for `scale`), a path, a Weights or a KernelWeights -> KernelWeights."""
    if isinstance(weights, KernelWeights):
        return weights
    if not isinstance(weights, Weights):
        weights = load_weights(weights, scale=scale)
    return KernelWeights.from_weights(weights)


def upscale(image: np.ndarray, weights=None, *, mode: str = "rgb", scale: int = 2) -> np.ndarray:
    """Super-resolve an image by the weights' scale.

    image: (H, W) or (H, W, C) uint8, uint16 or float (in [0, 1]); C = 1 gray, 2 gray+alpha,
           3 RGB, 4 RGBA.
    weights: None for the shipped weights of `scale`, a path to a weights file, or Weights.
    mode: "rgb" runs every colour channel through the net (the seed's behaviour); "y" runs only
          the BT.601 luminance and upsamples chroma bicubically (about 3x faster).
    Alpha is always upsampled bicubically, never through the net.
    Returns (sH, sW) or (sH, sW, C) float32 clipped to [0, 1].
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    a = to_float01(image)
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C) with H, W >= 1, got shape {a.shape}")
    kw = resolve_weights(weights, scale)
    if a.ndim == 2:
        return np.clip(srcnn_forward(a, kw), 0.0, 1.0)
    C = a.shape[2]
    if C not in (1, 2, 3, 4):
        raise ValueError(f"image must have 1 to 4 channels, got {C}")
    colour = a[:, :, : 1 if C <= 2 else 3]
    out = np.empty((a.shape[0] * kw.scale, a.shape[1] * kw.scale, C), dtype=np.float32)
    if mode == "y" and colour.shape[2] == 3:
        ycc = rgb_to_ycbcr(colour)
        up = np.stack([srcnn_forward(ycc[:, :, 0], kw)]
                      + [bicubic(ycc[:, :, c], kw.scale) for c in (1, 2)], axis=2)
        out[:, :, :3] = ycbcr_to_rgb(up)
    else:
        for c in range(colour.shape[2]):
            out[:, :, c] = srcnn_forward(colour[:, :, c], kw)
    if C in (2, 4):
        out[:, :, C - 1] = bicubic(a[:, :, C - 1], kw.scale)
    return np.clip(out, 0.0, 1.0, out=out)


def bicubic(channel: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32 plain bicubic upsampling (no network)."""
    return kernels.bicubic_upsample(np.ascontiguousarray(channel, dtype=np.float32), scale)
